"""``provider-cli export`` of a large history: peak memory (RSS) and rows per second.

Fills an SQLite file with ``bench/history_data.fill`` (bodies of ~1.5 KB JSON, like a busy
gateway's), then runs the installed ``provider-cli export`` in a child process per format and
reads the child's peak RSS from ``getrusage(RUSAGE_CHILDREN)``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.history_data import fill  # noqa: E402

LIMIT_MB = 150


# The child reports its own peak: RUSAGE_CHILDREN would also count what a forked child inherited.
_CHILD = """
import atexit, resource, sys
atexit.register(lambda: sys.__stderr__.write(f"maxrss_kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n"))
from app.cli import main
sys.argv = ["provider-cli", *sys.argv[1:]]
main()
"""


def export(url: str, fmt: str, out: Path) -> tuple[float, float, int]:
    """Run ``provider-cli export`` in a fresh process: (seconds, its peak RSS in MB, lines written)."""
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, "export", "--format", fmt, "-o", str(out)],
                          env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak_kb = int(done.stderr.rsplit("maxrss_kb=", 1)[1].split()[0])  # KB on Linux
    peak_mb = peak_kb / 1024
    with open(out, "rb") as handle:
        lines = sum(1 for _ in handle)
    return seconds, peak_mb, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000, help="responses (requests) to export")
    parser.add_argument("--dir", default=None, help="where the database and exports go (default: a temp dir)")
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="export-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "history.db"
    if not path.exists():
        started = time.perf_counter()
        fill(str(path), responses=args.rows)
        print(f"filled {args.rows:,} rows in {time.perf_counter() - started:.1f} s ({path})")
    url = f"sqlite:///{path}"
    worst = 0.0
    for fmt in ("csv", "jsonl"):
        out = work / f"export.{fmt}"
        seconds, peak_mb, lines = export(url, fmt, out)
        rows = lines - (1 if fmt == "csv" else 0)
        worst = max(worst, peak_mb)
        print(f"{fmt:5}: {rows:,} rows in {seconds:.1f} s ({rows / seconds:,.0f} rows/s), "
              f"{out.stat().st_size / 1e6:.0f} MB written, peak RSS {peak_mb:.0f} MB")
    verdict = "under" if worst < LIMIT_MB else "OVER"
    print(f"peak RSS {worst:.0f} MB: {verdict} the {LIMIT_MB} MB limit")
    return 0 if worst < LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
