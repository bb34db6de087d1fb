"""The vendored scripts and styles are the ones VERSIONS names, byte for byte, with their licences."""

from __future__ import annotations

import hashlib
from pathlib import Path

from app.api.ui.blueprint import HERE

VENDOR = HERE / "static" / "vendor"


def test_every_vendored_file_matches_its_recorded_sha256_and_has_a_licence():
    entries = [line.split() for line in (VENDOR / "VERSIONS").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert {entry[0] for entry in entries} == {p.name for p in VENDOR.iterdir() if p.suffix in (".js", ".css")}
    for name, _package, version, licence, sha256 in entries:
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == sha256, name
        stem = Path(name).name.split("-")[0] + "-" + version
        assert (VENDOR / f"{stem}.LICENSE").exists(), (name, licence)
    assert any(entry[1] == "htmx.org" and entry[2].startswith("2.0.") for entry in entries)


def test_the_pages_load_nothing_from_another_host(client):
    page = client.get("/ui/login").get_data(as_text=True) + client.get("/ui/").get_data(as_text=True)
    assert "http://" not in page.replace("http://localhost", "") and "https://" not in page
