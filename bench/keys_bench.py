"""What gateway keys cost the hot path, side by side in one run.

Two gateways (gunicorn, gevent workers, persistence on, same database engine) in front of the
fast fake upstream: one called without a key (GATEWAY_KEYS=optional: the check is a header
scan), one with GATEWAY_KEYS=required, every call carrying a key with a budget, rpm and tpm
(admission: one UPDATE; settling: one more in the response row's transaction) and two tags.
Runs are interleaved (plain, keyed, plain, ...) so that this shared machine's noise hits both.

``python bench/keys_bench.py [--quick] [--database-url postgresql+psycopg://...]``
(SQLite files in a temporary directory by default; a PostgreSQL URL is used for both gateways.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import cpu_seconds, free_port, merge, wait_http  # noqa: E402
from loadgen import RunResult, closed_loop, run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PATH = "/v1/chat/completions"
PRICES = json.dumps({"bench": {"prompt": 0.15, "completion": 0.6}})


def start(port: int, upstream: int, database: str, *, keys: str, workers: int) -> subprocess.Popen:
    env = {
        **os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers),
        "DATABASE_URL": database, "LM_STUDIO_BASE_URL": f"http://127.0.0.1:{upstream}/v1",
        "LOG_LEVEL": "WARNING", "GATEWAY_KEYS": keys, "MODEL_PRICES": PRICES, "SEARCH_INDEXER": "false",
    }
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                               cwd=ROOT, env=env)
    wait_http(f"http://127.0.0.1:{port}/health")
    return process


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", help="PostgreSQL for both gateways (two databases are not needed: "
                                               "the keyed one uses its own key)")
    args = parser.parse_args()
    seconds, rounds = (1.5, 2) if args.quick else (2.0, 5)
    tmp = Path(tempfile.mkdtemp(prefix="keys-bench-"))
    plain_db = args.database_url or f"sqlite:///{tmp / 'plain.db'}"
    keyed_db = args.database_url or f"sqlite:///{tmp / 'keyed.db'}"
    up, plain_port, keyed_port = free_port(), free_port(), free_port()
    processes = [subprocess.Popen([sys.executable, str(ROOT / "bench" / "fake_upstream.py"), str(up)])]
    try:
        wait_http(f"http://127.0.0.1:{up}/v1/models")
        processes.append(start(plain_port, up, plain_db, keys="optional", workers=args.workers))
        processes.append(start(keyed_port, up, keyed_db, keys="required", workers=args.workers))
        issued = requests.post(f"http://127.0.0.1:{keyed_port}/v1/keys", timeout=10, json={
            "name": f"bench-{os.getpid()}", "budget_usd": 1e9, "period": "month", "rpm": 10**9, "tpm": 10**9,
            "tags": {"team": "bench"}}).json()
        keyed_headers = f"Authorization: Bearer {issued['key']}\r\nX-Tag-Feature: bench\r\n"
        targets = {"plain": (plain_port, ""), "keyed": (keyed_port, keyed_headers)}
        pids = {"plain": processes[1].pid, "keyed": processes[2].pid}
        for port, headers in targets.values():
            run(closed_loop("127.0.0.1", port, PATH, concurrency=8, seconds=1.0, headers=headers))
        print(f"# keys benchmark: {args.workers} gevent workers, {os.cpu_count()} cores, "
              f"{'PostgreSQL' if args.database_url else 'SQLite'}, {rounds} x {seconds:g}s interleaved runs per cell")
        print("\n| concurrency | no key req/s | keyed req/s | keyed/plain | median of rounds | p50 ms plain | keyed "
              "| p99 ms plain | keyed | CPU us/req plain | keyed |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for concurrency in (1, 8, 64):
            results: dict[str, list[RunResult]] = {name: [] for name in targets}
            cpu = dict.fromkeys(targets, 0.0)
            ratios = []
            for _ in range(rounds):
                for name, (port, headers) in targets.items():
                    before = cpu_seconds(pids[name])
                    results[name].append(run(closed_loop("127.0.0.1", port, PATH, concurrency=concurrency,
                                                         seconds=seconds, headers=headers)))
                    cpu[name] += cpu_seconds(pids[name]) - before
                ratios.append(results["keyed"][-1].rps / results["plain"][-1].rps)
            plain, keyed = merge(results["plain"]), merge(results["keyed"])
            print(f"| {concurrency} | {plain.rps:.0f} | {keyed.rps:.0f} | {keyed.rps / plain.rps:.2f} "
                  f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
                  f"| {plain.percentile(50) * 1000:.2f} | {keyed.percentile(50) * 1000:.2f} "
                  f"| {plain.percentile(99) * 1000:.2f} | {keyed.percentile(99) * 1000:.2f} "
                  f"| {cpu['plain'] / max(1, len(plain.latencies)) * 1e6:.0f} "
                  f"| {cpu['keyed'] / max(1, len(keyed.latencies)) * 1e6:.0f} |", flush=True)
            errors = plain.errors + keyed.errors
            if errors:
                print(f"  ({errors} non-200 answers)")
        shown = requests.get(f"http://127.0.0.1:{keyed_port}/v1/keys/bench-{os.getpid()}", timeout=10).json()
        print(f"\nkeyed calls settled on the key: {shown['calls']}, spent ${shown['spent_usd']:.6f}")
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
