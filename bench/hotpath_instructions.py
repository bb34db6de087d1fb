"""Instructions per chat call on the hot path, counted with valgrind's callgrind (deterministic on a noisy host).

Runs ``count`` non-streaming calls through the Flask app (test client, mock provider, SQLite file,
persistence on or off, under gevent as in a worker) under callgrind for two counts; the difference
divided by the extra calls is the cost of one call, start-up excluded. Compare two checkouts by
running this file from each:

    python bench/hotpath_instructions.py [--persistence on|off] [--calls 100 300]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
from gevent import monkey
monkey.patch_all()  # as in a worker: one thread, so the count does not depend on thread scheduling
import os, sys, tempfile
sys.path.insert(0, {root!r})
os.environ.update(DATABASE_PATH={db!r}, ENABLE_PERSISTENCE={persistence!r}, LOG_LEVEL="ERROR",
                  DEFAULT_PROVIDER="mock", AUDIT_JOURNAL_DIR={journal!r})
from app import create_app
app = create_app()
client = app.test_client()
body = {{"model": "mock/bench", "messages": [{{"role": "system", "content": "Be brief."}},
        {{"role": "user", "content": "In two sentences, what does an LLM gateway do?"}}]}}
for number in range({count}):
    reply = client.post("/v1/chat/completions", json=body, headers={{"X-Session-Id": f"bench-{{number % 8}}"}})
    assert reply.status_code == 200, reply.data
audit = app.extensions["gateway"].chat.audit
if audit is not None:
    audit.flush()
"""


def instructions(count: int, persistence: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        db, journal = os.path.join(tmp, "gw.db"), os.path.join(tmp, "journal")
        script = CHILD.format(root=str(ROOT), db=db, persistence=persistence, journal=journal, count=count)
        # The schema first, outside the count.
        subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), db=db, persistence=persistence,
                                                           journal=journal, count=1)], check=True)
        out = os.path.join(tmp, "callgrind.out")
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", script],
            capture_output=True, text=True, check=True,
        )
        match = re.search(r"Collected : (\d+)", result.stderr)
        return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persistence", choices=("on", "off"), default="on")
    parser.add_argument("--calls", type=int, nargs=2, default=(100, 300))
    args = parser.parse_args()
    low, high = args.calls
    counts = {n: instructions(n, "true" if args.persistence == "on" else "false") for n in (low, high)}
    per_call = (counts[high] - counts[low]) / (high - low)
    print(f"{ROOT.name} persistence {args.persistence}: {per_call / 1e6:.3f}M instructions per call "
          f"({counts[low]:,} for {low} calls, {counts[high]:,} for {high})")


if __name__ == "__main__":
    main()
