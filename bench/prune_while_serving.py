"""Pruning a million old calls from a 10M-call PostgreSQL history while the gateway serves chat.

    python bench/prune_while_serving.py [--database provider_router_bench13] [--prune 1000000]
                                        [--concurrency 4] [--window 5]

Starts the fake upstream (bench/fake_upstream.py) and the real gateway (gunicorn, 2 gevent
workers) on the database bench/history_pg_bench.py filled, then drives chat (bench/loadgen.py,
keep-alive clients, non-streaming) in windows of ``--window`` seconds: before, during and after
a real ``provider-cli prune`` that removes the oldest ``--prune`` calls. Meanwhile a sampler
reads pg_stat_activity and pg_locks every 50 ms: how long the prune's transactions last (every
lock it takes is held until its transaction ends), whether it ever holds more than row-level
locks (RowExclusiveLock), and whether any gateway backend waits on a lock, for how long.
The database is changed (the calls are gone): refill it to run again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import free_port, wait_http  # noqa: E402
from loadgen import RunResult, closed_loop, run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PATH = "/v1/chat/completions"
DAY_MS = 86_400_000


class LockSampler(threading.Thread):
    """Samples the prune's transactions and every lock wait in the database, every 50 ms."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.stop = threading.Event()
        self.prune_xact_ms: dict[tuple[int, object], float] = {}  # (pid, xact_start) -> longest seen
        self.prune_modes: set[str] = set()
        self.waits: dict[tuple[int, object], float] = {}  # (pid, wait start) -> longest wait seen
        self.samples = 0

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            while not self.stop.is_set():
                rows = connection.execute(
                    "SELECT pid, application_name, xact_start, "
                    "extract(epoch FROM now() - xact_start) * 1000, wait_event_type, "
                    "extract(epoch FROM now() - state_change) * 1000, query_start "
                    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
                for pid, app, xact_start, xact_ms, _wait_type, _waited_ms, _query_start in rows:
                    if app == "prune-bench" and xact_start is not None:
                        key = (pid, xact_start)
                        self.prune_xact_ms[key] = max(self.prune_xact_ms.get(key, 0), xact_ms)
                # Waits the prune causes: backends whose blockers include the prune's backend.
                for pid, query_start, waited_ms in connection.execute(
                    "SELECT a.pid, a.query_start, extract(epoch FROM now() - a.query_start) * 1000 "
                    "FROM pg_stat_activity a WHERE EXISTS (SELECT 1 FROM unnest(pg_blocking_pids(a.pid)) b "
                    "JOIN pg_stat_activity p ON p.pid = b WHERE p.application_name = 'prune-bench')"
                ).fetchall():
                    key = (pid, query_start)
                    self.waits[key] = max(self.waits.get(key, 0), waited_ms or 0)
                modes = connection.execute(
                    "SELECT DISTINCT l.relation::regclass::text || ' ' || l.mode FROM pg_locks l "
                    "JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'prune-bench' "
                    "AND l.locktype = 'relation' AND l.granted"
                ).fetchall()
                self.prune_modes.update(m for (m,) in modes if m)
                self.samples += 1
                time.sleep(0.05)


def window(port: int, concurrency: int, seconds: float) -> RunResult:
    return run(closed_loop("127.0.0.1", port, PATH, concurrency=concurrency, seconds=seconds))


def summary(label: str, results: list[RunResult]) -> dict:
    latencies = sorted(x for r in results for x in r.latencies)
    seconds = sum(r.seconds for r in results)
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    row = {"phase": label, "calls": len(latencies), "errors": sum(r.errors for r in results),
           "rps": len(latencies) / seconds if seconds else 0, "p50": p(0.5), "p99": p(0.99)}
    print(f"  {label:<16} {row['calls']:>7} calls  {row['rps']:7.0f}/s  p50 {row['p50']:6.1f} ms  "
          f"p99 {row['p99']:6.1f} ms  errors {row['errors']}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="provider_router_bench13")
    parser.add_argument("--prune", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--baseline-windows", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--rest", type=float, default=None, help="the prune's --rest (default: the CLI's)")
    args = parser.parse_args()
    server = os.environ.get("BENCH_PG", "postgres@127.0.0.1:5432")
    dsn = f"postgresql://{server}/{args.database}"
    url = f"postgresql+psycopg://{server}/{args.database}"
    with psycopg.connect(dsn) as connection:
        # The request time below which the oldest --prune calls lie; as a span before now for the CLI.
        cutoff = connection.execute(
            "SELECT timestamp FROM requests ORDER BY timestamp LIMIT 1 OFFSET %s", (args.prune,)
        ).fetchone()[0]
    hours = (int(time.time() * 1000) - cutoff) / 3_600_000
    span = f"{int(hours)}h"
    up_port, port = free_port(), free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "2", "DATABASE_URL": url,
           "LM_STUDIO_BASE_URL": f"http://127.0.0.1:{up_port}/v1", "LOG_LEVEL": "WARNING"}
    with psycopg.connect(dsn, autocommit=True) as connection:
        # A database seeded before (by another bench) keeps its providers: point lm-studio at the fake.
        connection.execute("UPDATE providers SET base_url = %s WHERE name = 'lm-studio'",
                           (f"http://127.0.0.1:{up_port}/v1",))
        connection.execute("UPDATE settings SET value = 'lm-studio' WHERE key = 'active_provider'")
    upstream = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fake_upstream.py"), str(up_port)])
    gateway = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                               cwd=ROOT, env=env)
    rows = []
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        window(port, args.concurrency, 3.0)  # warm-up
        print(f"chat at concurrency {args.concurrency}, windows of {args.window:.0f} s; prune --older-than {span}")
        rows.append(summary("before", [window(port, args.concurrency, args.window)
                                       for _ in range(args.baseline_windows)]))
        sampler = LockSampler(dsn)
        sampler.start()
        command = [str(Path(sys.executable).with_name("provider-cli")), "prune", "--older-than", span, "--json"]
        if args.batch_size:
            command += ["--batch-size", str(args.batch_size)]
        if args.rest is not None:
            command += ["--rest", str(args.rest)]
        started = time.perf_counter()
        prune = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                 env={**env, "PGAPPNAME": "prune-bench"})
        during = []
        while prune.poll() is None:
            during.append(window(port, args.concurrency, args.window))
        prune_s = time.perf_counter() - started
        output = prune.communicate()[0]
        sampler.stop.set()
        sampler.join()
        rows.append(summary("during prune", during))
        rows.append(summary("after", [window(port, args.concurrency, args.window)
                                      for _ in range(args.baseline_windows)]))
    finally:
        for process in (gateway, upstream):
            process.terminate()
            process.wait(timeout=30)
    longest = max(sampler.prune_xact_ms.values(), default=0)
    xacts = sorted(sampler.prune_xact_ms.values())
    print(f"\nprune: {output.strip()}")
    print(f"prune took {prune_s:.0f} s; {len(xacts)} transactions seen, longest {longest:.0f} ms, "
          f"median {statistics.median(xacts) if xacts else 0:.0f} ms ({sampler.samples} samples at 50 ms)")
    print(f"relation locks the prune held: {', '.join(sorted(sampler.prune_modes))}")
    waits = sorted(sampler.waits.values())
    print(f"backends seen waiting on a lock the prune held: {len(waits)}, longest {max(waits, default=0):.0f} ms")
    base = (rows[0]["p99"] + rows[2]["p99"]) / 2
    print(f"chat p99 during prune / outside: {rows[1]['p99']:.1f} / {base:.1f} ms = {rows[1]['p99'] / base:.2f}")


if __name__ == "__main__":
    main()
