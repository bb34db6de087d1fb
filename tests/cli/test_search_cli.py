"""``search reindex`` as a person and as a script run it: a progress bar on a terminal only, the same index."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import termios
import time

import pytest
import sqlalchemy as sa

from app.config import PROJECT_ROOT
from app.models import SearchDoc
from tests.factories import make_call, make_session

CALLS = 300
T0 = 1_767_225_600_000
PROVIDER_CLI = (sys.executable, "-c", "from app.cli import main; main()")
# What would make rich draw (or not draw) regardless of the terminal; the test decides alone.
RICH_OVERRIDES = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")


@pytest.fixture
def unindexed(db_session) -> list[int]:
    """A few hundred answered calls that no indexer has seen; call n asks where parcel n is."""
    session = make_session(db_session, "reindex")
    ids = []
    for n in range(CALLS):
        request = make_call(db_session, session, timestamp=T0 + n)
        request.openai_request = {"messages": [{"role": "user", "content": f"where is parcel {n:04d}?"}]}
        ids.append(request.id)
    db_session.commit()
    return ids


@pytest.fixture
def cli_env(database_url: str, tmp_path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in RICH_OVERRIDES}
    return {**env, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING", "TERM": "xterm-256color",
            "AUDIT_JOURNAL_DIR": str(tmp_path / "audit-journal")}


def in_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run provider-cli with stdout and stderr on a pseudo-terminal (100 columns): exit code, what it showed."""
    master, slave = os.openpty()
    termios.tcsetwinsize(slave, (24, 100))
    process = subprocess.Popen((*PROVIDER_CLI, *args), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                               env=env, cwd=PROJECT_ROOT)
    os.close(slave)  # the child holds the terminal now: reading gives EIO once it has exited
    shown = bytearray()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1)[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        return process.wait(timeout=10), shown.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def _everything_indexed(run, db_session, unindexed: list[int]) -> None:
    assert set(db_session.scalars(sa.select(SearchDoc.request_id))) == set(unindexed)
    assert run("search", "status").stdout == f"{CALLS} of {CALLS} calls indexed.\n"
    found = json.loads(run("history", "--search", '"parcel 0123"', "--json").stdout)
    assert [row["id"] for row in found["data"]] == [unindexed[123]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reindex_on_a_terminal_draws_a_progress_bar_up_to_every_call(run, db_session, unindexed, cli_env):
    code, shown = in_a_terminal("search", "reindex", env=cli_env)
    assert code == 0, shown
    assert "indexing" in shown and "━" in shown  # the bar's label and its line
    assert re.search(rf"(?<!\d)0/{CALLS}\b", shown), shown  # drawn empty first
    assert f"{CALLS}/{CALLS}" in shown, shown  # and full at the end
    assert f"Indexed {CALLS} calls.\r\n" in shown  # the terminal turns \n into \r\n
    _everything_indexed(run, db_session, unindexed)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reindex_through_a_pipe_draws_nothing_and_indexes_the_same(run, db_session, unindexed, cli_env):
    piped = subprocess.run((*PROVIDER_CLI, "search", "reindex"), stdin=subprocess.DEVNULL, env=cli_env,
                           cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert (piped.stdout, piped.stderr) == (f"Indexed {CALLS} calls.\n", "")
    _everything_indexed(run, db_session, unindexed)
