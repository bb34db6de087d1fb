"""Import benchmark (issue 6): an original v1 database of 100,000 request_logs rows into a fresh one.

    .venv/bin/python bench/import_bench.py [--rows 100000] [--database-url URL]

Without --database-url the target is a new SQLite file next to the original, in a
temporary directory. The second import of the same file is timed too (it adds nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' v1 database builder
from app import migrate  # noqa: E402
from app.db import dispose_engines  # noqa: E402
from app.services.legacy.importer import DEFAULT_BATCH_SIZE, import_database  # noqa: E402
from tests.legacy_dbs import write_v1  # noqa: E402


def _rows(count: int) -> Iterator[tuple]:
    """Chats with usage, streams, errors and model lists, about as large as real ones."""
    for i in range(count):
        body = {"model": "qwen3-max", "stream": i % 10 == 5, "temperature": 0.7,
                "messages": [{"role": "system", "content": "You are a helpful assistant."},
                             {"role": "user", "content": f"Explain item {i} in two sentences, please."}]}
        answer = None
        if i % 10 not in (3, 5):
            answer = json.dumps({
                "id": f"chatcmpl-{i}", "object": "chat.completion", "created": 1761869496 + i,
                "model": "qwen3-max",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {
                    "role": "assistant", "content": f"Item {i} is an example of the import at scale."}}],
                "usage": {"prompt_tokens": 31, "completion_tokens": 14, "total_tokens": 45},
            })
        failed = i % 10 == 3
        yield (f"{1761869496793 + i}-{i:08x}", ("lm-studio", "qwen")[i % 2], "/v1/chat/completions", "POST",
               json.dumps(body), answer, 502 if failed else 200, 150 + i % 900,
               "connect ECONNREFUSED 127.0.0.1:1234" if failed else None, 1761869496 + i)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--database-url", help="an empty database to import into (default: new SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="import-bench-") as workdir:
        original = Path(workdir) / "original-v1.db"
        write_v1(original, _rows(args.rows))
        url = args.database_url or f"sqlite:///{Path(workdir) / 'gateway.db'}"
        migrate.upgrade(url)
        size_mb = original.stat().st_size / 1e6
        print(f"original: {args.rows:,} request_logs rows, {size_mb:.1f} MB; target: {url.split(':')[0]}")
        for run in ("first import", "second import"):
            started = time.perf_counter()
            summary = import_database(path=original, database_url=url, batch_size=args.batch_size)
            seconds = time.perf_counter() - started
            logs = summary.tables["request_logs"]
            print(f"{run}: read {logs.read:,}, imported {logs.imported:,}, duplicates {logs.duplicates:,}, "
                  f"{seconds:.2f} s, {logs.read / seconds:,.0f} rows/s")
        dispose_engines()


if __name__ == "__main__":
    main()
