"""Gateway hot-path benchmark, measured side by side in one run.

Starts a fast fake upstream, the gateway (gunicorn, gevent workers) with
persistence on and with it off, and reports: req/s at c=1, 8, 64 for direct,
persistence off and on; the latency the gateway adds at c=1 (p50/p99 vs
direct); the persistence on/off throughput ratio; and how many of 1,000 slow
streams (22 events x 50 ms) complete, with their TTFB p50. The same bursts also go
straight to the upstream and through the gateway with persistence off, for scale.

A third gateway serves with its database unusable the whole run (another process
holds its SQLite write lock): every call is recorded in the audit journal only.
And the c=1 latency of the persistence-on gateway is measured with its database's
write lock held 10 s by another process, beside the same run without.

A fourth gateway runs with persistence on and METRICS=false: beside the persistence-on one
(whose /metrics series are written on every call), it gives the cost of the metrics on the
hot path, as a throughput and CPU-per-request ratio per round.

Runs are interleaved (direct, off, on, direct, ...) so that noise from this
shared machine hits all three alike. ``python bench/gateway_bench.py [--quick]``
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import RunResult, closed_loop, run, slow_streams  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PATH = "/v1/chat/completions"
STREAM_TARGETS = {"on": "gateway, persistence on", "direct": "upstream alone", "off": "gateway, persistence off"}
LOCK_SECONDS = 10.0


def hold_write_lock(db: Path, seconds: float | None) -> subprocess.Popen:
    """Another process holding SQLite's write lock (as a backup or a shell would); None: until killed."""
    code = (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None, timeout=30)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        f"time.sleep({seconds if seconds is not None else 10**9})\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start_gateway(
    port: int, upstream_port: int, db: Path, *, persistence: bool, workers: int, metrics: bool = True,
    indexer: bool = True,
) -> subprocess.Popen:
    env = {
        **os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers),
        "DATABASE_PATH": str(db), "ENABLE_PERSISTENCE": str(persistence).lower(), "METRICS": str(metrics).lower(),
        "SEARCH_INDEXER": str(indexer).lower(),
        "LM_STUDIO_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1", "LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout_s=120)  # a shared, busy host starts slowly
    except RuntimeError:
        process.terminate()
        process.wait(timeout=30)
        raise
    return process


def stop(processes: list[subprocess.Popen]) -> None:
    """Terminate the processes, newest first; kill those that have not ended within 20 s."""
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def cpu_seconds(root: int) -> float:
    """User + system CPU of a process and its children (gunicorn master, workers, checkpointer)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == root or ppid == root:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def merge(results: list[RunResult]) -> RunResult:
    merged = RunResult()
    for result in results:
        merged.latencies += result.latencies
        merged.errors += result.errors
        merged.seconds += result.seconds
    return merged


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter runs, 200 slow streams")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--indexer-ab", action="store_true",
                        help="only the persistence on/off ratios with the search indexer on and off, side by side")
    args = parser.parse_args()
    seconds, rounds, stream_count = (1.5, 1, 200) if args.quick else (2.0, 7, 1000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.indexer_ab:
        indexer_ab(workers=args.workers, seconds=seconds, rounds=rounds)
        return

    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    up_port, on_port, off_port, journal_port, bare_port = (free_port() for _ in range(5))
    processes = [subprocess.Popen([sys.executable, str(ROOT / "bench" / "fake_upstream.py"), str(up_port)])]
    try:
        wait_http(f"http://127.0.0.1:{up_port}/v1/models")
        processes.append(start_gateway(on_port, up_port, tmp / "on.db", persistence=True, workers=args.workers))
        processes.append(start_gateway(off_port, up_port, tmp / "off.db", persistence=False, workers=args.workers))
        processes.append(start_gateway(journal_port, up_port, tmp / "journal.db", persistence=True,
                                       workers=args.workers))
        processes.append(start_gateway(bare_port, up_port, tmp / "bare.db", persistence=True,
                                       workers=args.workers, metrics=False))
        locker = hold_write_lock(tmp / "journal.db", None)  # its database stays unusable: journal only
        targets = {"direct": up_port, "off": off_port, "on": on_port, "journal": journal_port, "bare": bare_port}
        print(f"# gateway benchmark: {args.workers} gevent workers, {os.cpu_count()} cores, "
              f"{rounds} x {seconds:g}s interleaved runs per cell", flush=True)

        for port in targets.values():  # warm up connections and code paths
            run(closed_loop("127.0.0.1", port, PATH, concurrency=8, seconds=1.0))

        table: dict[tuple[str, int], RunResult] = {}
        gateway_pids = {"off": processes[2].pid, "on": processes[1].pid, "journal": processes[3].pid,
                        "bare": processes[4].pid}
        cpu: dict[tuple[str, int], float] = {}
        # Per round, on/off side by side: throughput ratio and CPU-per-request ratio. Their
        # median shrugs off a burst of load from other tenants that hits one cell of one round.
        round_ratios: dict[int, list[float]] = {}
        round_cpu_ratios: dict[int, list[float]] = {}
        metric_ratios: dict[int, list[float]] = {}  # metrics on / off, persistence on, per round
        metric_cpu: dict[int, list[float]] = {}  # CPU us per call, metrics on minus off, per round
        for concurrency in (1, 8, 64):
            runs: dict[str, list[RunResult]] = {name: [] for name in targets}
            for _ in range(rounds):
                spent = {}
                for name, port in targets.items():
                    before = cpu_seconds(gateway_pids[name]) if name in gateway_pids else 0.0
                    runs[name].append(run(
                        closed_loop("127.0.0.1", port, PATH, concurrency=concurrency, seconds=seconds)))
                    if name in gateway_pids:
                        spent[name] = cpu_seconds(gateway_pids[name]) - before
                        cpu[(name, concurrency)] = cpu.get((name, concurrency), 0.0) + spent[name]
                on, off = runs["on"][-1], runs["off"][-1]
                round_ratios.setdefault(concurrency, []).append(on.rps / off.rps)
                round_cpu_ratios.setdefault(concurrency, []).append(
                    (spent["off"] / max(1, len(off.latencies))) / (spent["on"] / max(1, len(on.latencies))))
                bare = runs["bare"][-1]
                metric_ratios.setdefault(concurrency, []).append(on.rps / bare.rps)
                metric_cpu.setdefault(concurrency, []).append(
                    (spent["on"] / max(1, len(on.latencies)) - spent["bare"] / max(1, len(bare.latencies))) * 1e6)
            for name in targets:
                table[(name, concurrency)] = merge(runs[name])

        print("\n| concurrency | direct req/s | persistence off req/s | persistence on req/s | on/off ratio "
              "| median of rounds (min-max) | gateway CPU us/req off | on | CPU on/off ratio | median of rounds "
              "| database down (journal only) req/s | CPU us/req |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for concurrency in (1, 8, 64):
            d, off, on, journal = (table[(name, concurrency)] for name in ("direct", "off", "on", "journal"))
            cpu_off = cpu[("off", concurrency)] / max(1, len(off.latencies)) * 1e6
            cpu_on = cpu[("on", concurrency)] / max(1, len(on.latencies)) * 1e6
            cpu_journal = cpu[("journal", concurrency)] / max(1, len(journal.latencies)) * 1e6
            ratios, cpu_ratios = round_ratios[concurrency], round_cpu_ratios[concurrency]
            print(f"| {concurrency} | {d.rps:.0f} | {off.rps:.0f} | {on.rps:.0f} | {on.rps / off.rps:.2f} "
                  f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
                  f"| {cpu_off:.0f} | {cpu_on:.0f} | {cpu_off / cpu_on:.2f} | {statistics.median(cpu_ratios):.2f} "
                  f"| {journal.rps:.0f} | {cpu_journal:.0f} |")
        print("\nMetrics on the hot path (persistence on; METRICS=true vs METRICS=false, same rounds):")
        print("| concurrency | metrics on req/s | metrics off req/s | on/off ratio | median of rounds (min-max) "
              "| CPU us/req on | off | added CPU us/req, median of rounds (min-max) |")
        print("|---|---|---|---|---|---|---|---|")
        for concurrency in (1, 8, 64):
            on, bare = table[("on", concurrency)], table[("bare", concurrency)]
            cpu_on = cpu[("on", concurrency)] / max(1, len(on.latencies)) * 1e6
            cpu_bare = cpu[("bare", concurrency)] / max(1, len(bare.latencies)) * 1e6
            ratios, added = metric_ratios[concurrency], metric_cpu[concurrency]
            print(f"| {concurrency} | {on.rps:.0f} | {bare.rps:.0f} | {on.rps / bare.rps:.2f} "
                  f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | {cpu_on:.0f} "
                  f"| {cpu_bare:.0f} | {statistics.median(added):.0f} ({min(added):.0f}-{max(added):.0f}) |")
        d, on, off = table[("direct", 1)], table[("on", 1)], table[("off", 1)]
        bare = table[("bare", 1)]
        print("\n| c=1 latency | p50 ms | p99 ms | added p50 vs direct | added p99 vs direct |")
        print("|---|---|---|---|---|")
        for name, result in (("direct", d), ("persistence off", off), ("persistence on", on),
                             ("persistence on, METRICS=false", bare)):
            print(f"| {name} | {result.percentile(50) * 1000:.2f} | {result.percentile(99) * 1000:.2f} | "
                  f"{(result.percentile(50) - d.percentile(50)) * 1000:.2f} | "
                  f"{(result.percentile(99) - d.percentile(99)) * 1000:.2f} |")
        errors = sum(result.errors for result in table.values())
        with sqlite3.connect(tmp / "journal.db") as db:
            journal_rows = db.execute("SELECT count(*) FROM requests").fetchone()[0]
        print(f"database down: {sum(len(table[('journal', c)].latencies) for c in (1, 8, 64))} calls served, "
              f"{journal_rows} request rows in its database (the rest wait in the journal)")
        locker.kill()

        # The persistence-on gateway at c=1 for 10 s, then 10 s with its write lock held by another process.
        print(f"\nSQLite write lock held {LOCK_SECONDS:g} s by another process, c=1 on the persistence-on gateway:")
        print("| database | calls | p50 ms | p99 ms | max ms |")
        print("|---|---|---|---|---|")
        free = run(closed_loop("127.0.0.1", on_port, PATH, concurrency=1, seconds=LOCK_SECONDS))
        holder = hold_write_lock(tmp / "on.db", LOCK_SECONDS)
        held = run(closed_loop("127.0.0.1", on_port, PATH, concurrency=1, seconds=LOCK_SECONDS - 0.5))
        holder.wait()
        for name, result in (("writable", free), ("write lock held", held)):
            print(f"| {name} | {len(result.latencies)} | {result.percentile(50) * 1000:.2f} | "
                  f"{result.percentile(99) * 1000:.2f} | {max(result.latencies) * 1000:.1f} |")

        # Persistence on first (the target), then the same bursts straight to the upstream and
        # through the gateway with persistence off, for scale.
        print(f"\nslow streams (22 events x 50 ms each), {stream_count} streams:")
        print("| arrival | to | completed | peak open at once | TTFB p50 ms | TTFB p95 ms | wall s |")
        print("|---|---|---|---|---|---|---|")
        for label, ramp in (("all at once", 0.0), ("spread over 1 s", 1.0)):
            for name in ("on", "direct", "off"):
                streams = run(slow_streams("127.0.0.1", targets[name], count=stream_count, ramp_s=ramp))
                ttfb = sorted(streams.ttfb) or [float("nan")]
                print(f"| {label} | {STREAM_TARGETS[name]} | {streams.completed}/{streams.started} | "
                      f"{streams.peak_open} | {statistics.median(ttfb) * 1000:.0f} | "
                      f"{ttfb[int(len(ttfb) * 0.95) - 1] * 1000:.0f} | {streams.seconds:.1f} |")

        counts, deadline = None, time.monotonic() + 30  # the lock run's calls are replayed from the journal
        while time.monotonic() < deadline:
            time.sleep(1.0)
            with sqlite3.connect(tmp / "on.db") as db:
                now = db.execute("SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM responses)").fetchone()
            if now == counts and now[0] == now[1]:
                break
            counts = now
        requests_rows, response_rows = now
        sent = sum(len(table[("on", c)].latencies) + table[("on", c)].errors for c in (1, 8, 64))
        print(f"rows with persistence on: {requests_rows} requests, {response_rows} responses "
              f"(measured runs sent {sent} + warm-up + {2 * stream_count} streams + the lock runs' "
              f"{len(free.latencies) + len(held.latencies)}, replayed from its journal); HTTP errors: {errors}")
    finally:
        stop(processes)


def indexer_ab(*, workers: int, seconds: float, rounds: int) -> None:
    """Persistence on/off with the search indexer on, and again with it off, interleaved in the same rounds.

    The indexer reads new calls back and indexes them in each worker's background: this shows
    whether it moves the hot path's on/off ratio, measured side by side on one noisy host.
    """
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-indexer-"))
    up_port, off_port, on_port, plain_port = (free_port() for _ in range(4))
    processes = [subprocess.Popen([sys.executable, str(ROOT / "bench" / "fake_upstream.py"), str(up_port)])]
    try:
        wait_http(f"http://127.0.0.1:{up_port}/v1/models")
        processes.append(start_gateway(off_port, up_port, tmp / "off.db", persistence=False, workers=workers))
        processes.append(start_gateway(on_port, up_port, tmp / "on.db", persistence=True, workers=workers))
        processes.append(start_gateway(plain_port, up_port, tmp / "plain.db", persistence=True, workers=workers,
                                       indexer=False))
        targets = {"off": off_port, "indexer on": on_port, "indexer off": plain_port}
        pids = dict(zip(targets, (process.pid for process in processes[1:]), strict=True))
        print(f"# indexer A/B: {workers} gevent workers, {rounds} x {seconds:g}s interleaved runs per cell", flush=True)
        for port in targets.values():
            run(closed_loop("127.0.0.1", port, PATH, concurrency=8, seconds=1.0))
        print("\n| concurrency | off req/s | on, indexer on | on, indexer off | on/off ratio, indexer on: median "
              "(min-max) | indexer off: median (min-max) | CPU us/req indexer on | indexer off |")
        print("|---|---|---|---|---|---|---|---|")
        for concurrency in (1, 8, 64):
            runs: dict[str, list[RunResult]] = {name: [] for name in targets}
            spent: dict[str, float] = dict.fromkeys(targets, 0.0)
            ratios: dict[str, list[float]] = {"indexer on": [], "indexer off": []}
            for _ in range(rounds):
                for name, port in targets.items():
                    before = cpu_seconds(pids[name])
                    runs[name].append(run(closed_loop("127.0.0.1", port, PATH, concurrency=concurrency,
                                                      seconds=seconds)))
                    spent[name] += cpu_seconds(pids[name]) - before
                for name in ratios:
                    ratios[name].append(runs[name][-1].rps / runs["off"][-1].rps)
            merged = {name: merge(results) for name, results in runs.items()}
            cpu_us = {name: spent[name] / max(1, len(merged[name].latencies)) * 1e6 for name in targets}
            on, plain = ratios["indexer on"], ratios["indexer off"]
            print(f"| {concurrency} | {merged['off'].rps:.0f} | {merged['indexer on'].rps:.0f} "
                  f"| {merged['indexer off'].rps:.0f} | {statistics.median(on):.2f} ({min(on):.2f}-{max(on):.2f}) "
                  f"| {statistics.median(plain):.2f} ({min(plain):.2f}-{max(plain):.2f}) "
                  f"| {cpu_us['indexer on']:.0f} | {cpu_us['indexer off']:.0f} |", flush=True)
        with sqlite3.connect(tmp / "on.db") as db:
            calls, indexed = db.execute("SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM search_docs)"
                                        ).fetchone()
        print(f"indexer on: {indexed:,} of {calls:,} calls indexed when the runs ended")
    finally:
        stop(processes)


if __name__ == "__main__":
    main()
