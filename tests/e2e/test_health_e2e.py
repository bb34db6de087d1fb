"""/health/ready through real gunicorn: unready while the database and the journal are both unusable
(a real full disk under both), ready again once it has room; /health/live answers throughout."""

from __future__ import annotations

import pytest
import requests
from llmock.scenarios import Reply

from app import migrate
from app.db import dispose_engines
from tests.e2e.calls import chat
from tests.faults import LoopDisk, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("audit-faults")]


@pytest.fixture
def loop_disk(tmp_path):
    disk = LoopDisk(tmp_path / "disk.img", tmp_path / "disk", size_mib=24)
    yield disk
    dispose_engines()
    disk.unmount()


def every_worker_says(base: str, status: int) -> bool:
    """Six probes on new connections (either worker may answer), each after a call that makes it write."""
    for number in range(6):
        chat(base, text=f"probe {number}", stream=False)
        if requests.get(base + "/health/ready", headers={"Connection": "close"}, timeout=5).status_code != status:
            return False
    return True


def test_ready_goes_unready_while_database_and_journal_are_unusable_and_back_after(
    loop_disk, upstream, start_gateway
):
    upstream.state.reset()
    upstream.state.scenarios.add(Reply(text="still answering", times=None))
    url = f"sqlite:///{loop_disk.path / 'gateway.db'}"
    migrate.upgrade(url)
    dispose_engines()
    env = {"DATABASE_URL": url, "DEFAULT_PROVIDER": "lm-studio", "LM_STUDIO_BASE_URL": upstream.base_url("openai"),
           "AUDIT_JOURNAL_DIR": str(loop_disk.path / "journal"), "REQUEST_TIMEOUT": "10000"}
    with start_gateway(env) as base:
        assert every_worker_says(base, 200)
        ready = requests.get(base + "/health/ready", timeout=5).json()
        assert ready == {"status": "ready", "active_provider": "lm-studio", "database": "ok", "journal": "ok"}

        loop_disk.fill()  # the database and its journal share the disk: neither can take a write
        assert wait_until(lambda: every_worker_says(base, 503), timeout_s=30)
        unready = requests.get(base + "/health/ready", timeout=5).json()
        assert unready == {"status": "unready", "active_provider": "lm-studio", "database": "down",
                           "journal": "unusable"}
        assert requests.get(base + "/health/live", timeout=5).json() == {"status": "ok"}
        assert chat(base, text="served even so", stream=False).answer == "still answering"  # AUDIT_FAILURE_MODE=open

        loop_disk.free()
        assert wait_until(lambda: every_worker_says(base, 200), timeout_s=30)
    upstream.state.reset()
