"""Streaming relay benchmark (issue 18): gateway CPU per relayed event, side by side in one run.

Starts the fake upstream (``fake_upstream.py``: 500-event streams sent in one burst or paced 1 ms
apart), the gateway under gunicorn with persistence on and off, the floor (``relay_floor.py``: a
minimal gevent WSGI relay of the same events under gunicorn with the same worker settings) and,
with ``--baseline DIR``, the gateway of another checkout (e.g. ``git archive main | tar -x -C DIR``)
with persistence on. Reports, for each:

- CPU per relayed event (user + system of the gunicorn master and workers, from /proc), counted
  over a fixed number of WHOLE streams (burst at 8 concurrent streams, paced at 8 and at 100),
  and events per second per core;
- RSS per open stream, with 1,000 slow streams (200 events x 50 ms) open at once;
- TTFB of 1,000 slow streams (22 events x 50 ms) started at once, with the upstream alone.

Cells are interleaved (each target in turn, ``--rounds`` times) so that load from other tenants of
this shared machine hits all alike. ``python bench/relay_bench.py [--quick] [--baseline DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import cpu_seconds, free_port, stop, wait_http  # noqa: E402
from loadgen import REQUEST_BODY, http_request, read_response, run, slow_streams  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 500  # per stream (fake_upstream.RELAY_EVENTS): 498 content chunks, finish, usage; [DONE] not counted
DONE = b"data: [DONE]\n\n"


def start_gateway(root: Path, port: int, upstream_port: int, db: Path, *, persistence: bool,
                  workers: int) -> subprocess.Popen:
    env = {
        **os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers),
        "DATABASE_PATH": str(db), "ENABLE_PERSISTENCE": str(persistence).lower(),
        "LM_STUDIO_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1", "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(root),
    }
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                               cwd=root, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout_s=120)  # a busy shared host starts slowly
    except RuntimeError:
        process.terminate()
        process.wait()
        raise
    return process


def start_floor(port: int, upstream_port: int, *, workers: int, timeout_s: float | None = None,
                client: str = "socket") -> subprocess.Popen:
    env = {**os.environ, "RELAY_FLOOR_UPSTREAM": f"127.0.0.1:{upstream_port}", "RELAY_FLOOR_CLIENT": client,
           "RELAY_FLOOR_TIMEOUT": "" if timeout_s is None else str(timeout_s), "GEVENT_RESOLVER": "ares"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(workers), "--worker-connections", "4096",
         "--backlog", "4096", "--keep-alive", "5", "--log-level", "warning", "-b", f"127.0.0.1:{port}",
         "relay_floor:app"], cwd=ROOT / "bench", env=env,  # cwd: not the gateway's gunicorn.conf.py
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:  # it answers only POST: wait for the port
        try:
            run(whole_streams("127.0.0.1", port, model="burst", concurrency=1, total=1))
            return process
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the floor did not come up")


async def whole_streams(host: str, port: int, *, model: str, concurrency: int, total: int) -> tuple[int, float]:
    """``total`` streams on ``concurrency`` keep-alive connections, back to back; (completed, seconds)."""
    body = json.dumps({**json.loads(REQUEST_BODY), "model": model, "stream": True}).encode()
    left, completed = total, 0

    async def client(index: int) -> None:
        nonlocal left, completed
        reader, writer = await asyncio.open_connection(host, port)
        request = http_request("/v1/chat/completions", body, session=f"relay-{index}")
        try:
            while left > 0:
                left -= 1
                writer.write(request)
                status, data = await read_response(reader)
                completed += status == 200 and data.endswith(DONE)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(index) for index in range(min(concurrency, total))))
    return completed, time.perf_counter() - started


def workers_rss(root: int) -> int:
    """Resident bytes of a gunicorn master's children (its workers, and the checkpointer)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("PPid", "0")) == root:
            total += int(fields["VmRSS"].split()[0]) * 1024
    return total


async def rss_with_open_streams(port: int, root: int, *, count: int) -> tuple[float, int, int]:
    """RSS added per open stream at the peak of ``count`` 10-second streams; (bytes, peak open, completed)."""
    before = peak = workers_rss(root)
    task = asyncio.ensure_future(slow_streams("127.0.0.1", port, count=count, model="hold"))
    while not task.done():
        await asyncio.sleep(0.25)
        peak = max(peak, workers_rss(root))
    result = task.result()
    return (peak - before) / max(1, result.peak_open), result.peak_open, result.completed


def settle(pids: list[int], *, limit_s: float = 90.0) -> float:
    """Wait until the gateways are idle (a burst's rows written and indexed); seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(1.0)
        if sum(cpu_seconds(pid) for pid in pids) - before < 0.05:
            break
    return time.monotonic() - started


CELLS = (  # (label, model, concurrency, whole streams per round)
    ("burst, 8 streams", "burst", 8, 160),
    ("paced 1 ms, 8 streams", "paced", 8, 32),
    ("paced 1 ms, 100 streams", "paced", 100, 200),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one round, fewer streams, 200-stream bursts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another checkout's root, run with persistence on")
    parser.add_argument("--floor-timeout", action="store_true", help="also the floor with a read timeout upstream")
    parser.add_argument("--floor-requests", action="store_true",
                        help="also the floor with its upstream call made through requests (as the adapters)")
    parser.add_argument("--only", help="comma-separated sections: cpu,rss,ttfb (default all)")
    args = parser.parse_args()
    rounds, scale, stream_count = (1, 0.25, 200) if args.quick else (args.rounds, 1.0, 1000)
    sections = set((args.only or "cpu,rss,ttfb").split(","))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    up_port = free_port()
    processes = [subprocess.Popen([sys.executable, str(ROOT / "bench" / "fake_upstream.py"), str(up_port)])]
    try:
        wait_http(f"http://127.0.0.1:{up_port}/v1/models")
        ports: dict[str, int] = {}
        pids: dict[str, int] = {}

        def add(name: str, process: subprocess.Popen, port: int) -> None:
            processes.append(process)
            ports[name], pids[name] = port, process.pid

        if args.baseline:
            port = free_port()
            add("baseline on", start_gateway(args.baseline.resolve(), port, up_port, tmp / "base.db",
                                             persistence=True, workers=args.workers), port)
        for name, persistence in (("on", True), ("off", False)):
            port = free_port()
            add(name, start_gateway(ROOT, port, up_port, tmp / f"{name}.db", persistence=persistence,
                                    workers=args.workers), port)
        port = free_port()
        add("floor", start_floor(port, up_port, workers=args.workers), port)
        if args.floor_timeout:
            port = free_port()
            add("floor timeout", start_floor(port, up_port, workers=args.workers, timeout_s=120.0), port)
        if args.floor_requests:
            port = free_port()
            add("floor requests", start_floor(port, up_port, workers=args.workers, client="requests"), port)
        labels = {"baseline on": f"baseline ({args.baseline}), persistence on", "on": "this checkout, persistence on",
                  "off": "this checkout, persistence off", "floor": "floor: minimal gevent WSGI relay",
                  "floor timeout": "floor, upstream socket with a read timeout",
                  "floor requests": "floor, upstream called with requests"}
        print(f"# relay benchmark: {args.workers} gevent workers, {os.cpu_count()} cores, {EVENTS}-event streams, "
              f"{rounds} interleaved rounds per cell", flush=True)

        if "cpu" in sections:
            for port in ports.values():  # warm up connections and code paths
                run(whole_streams("127.0.0.1", port, model="burst", concurrency=8, total=16))
            cpu: dict[tuple[str, str], list[float]] = {}
            done: dict[tuple[str, str], int] = {}
            wall: dict[tuple[str, str], float] = {}
            for label, model, concurrency, total in CELLS:
                total = max(concurrency, int(total * scale))
                for _ in range(rounds):
                    for name, port in ports.items():
                        before = cpu_seconds(pids[name])
                        completed, seconds = run(whole_streams("127.0.0.1", port, model=model,
                                                               concurrency=concurrency, total=total))
                        spent = cpu_seconds(pids[name]) - before
                        cpu.setdefault((label, name), []).append(spent / (total * EVENTS) * 1e6)
                        done[(label, name)] = done.get((label, name), 0) + completed
                        wall[(label, name)] = wall.get((label, name), 0.0) + seconds
                        if completed != total:
                            print(f"  ! {name} {label}: {completed}/{total} streams complete", flush=True)
            print("\nCPU per relayed event (us; median of rounds, min-max), over whole streams; events/s per core "
                  "= 1e6 / us")
            print("| target | " + " | ".join(f"{label} us/event | ev/s/core" for label, *_ in CELLS) + " |")
            print("|---|" + "---|---|" * len(CELLS))
            for name in ports:
                cells = []
                for label, *_ in CELLS:
                    values = cpu[(label, name)]
                    median = statistics.median(values)
                    cells.append(f"{median:.1f} ({min(values):.1f}-{max(values):.1f}) | {1e6 / median:,.0f}")
                print(f"| {labels[name]} | " + " | ".join(cells) + " |")
            print("streams completed: " + ", ".join(
                f"{name} {sum(done[(label, name)] for label, *_ in CELLS)}" for name in ports), flush=True)

        if "rss" in sections:
            print(f"\nRSS per open stream ({stream_count} streams of 200 events x 50 ms started at once; workers' "
                  "RSS at its peak less before, over the most streams open at once):")
            print("| target | KiB per open stream | peak open | completed |")
            print("|---|---|---|---|")
            for name, port in ports.items():
                settle(list(pids.values()))
                per_stream, peak, completed = run(rss_with_open_streams(port, pids[name], count=stream_count))
                print(f"| {labels[name]} | {per_stream / 1024:.1f} | {peak} | {completed}/{stream_count} |",
                      flush=True)

        if "ttfb" in sections:
            names = [*ports, "direct"]
            ports["direct"] = up_port
            labels["direct"] = "upstream alone"
            print(f"\n{stream_count} slow streams (22 events x 50 ms) all at once; each burst starts once every "
                  "gateway is idle (the last burst's rows written and indexed); second round in reverse order:")
            print("| to | round | completed | TTFB p50 ms | TTFB p95 ms | wall s |")
            print("|---|---|---|---|---|---|")
            for number, order in enumerate((names, names[::-1]), 1):
                for name in order:
                    settle(list(pids.values()))
                    streams = run(slow_streams("127.0.0.1", ports[name], count=stream_count))
                    ttfb = sorted(streams.ttfb) or [float("nan")]
                    print(f"| {labels[name]} | {number} | {streams.completed}/{streams.started} | "
                          f"{statistics.median(ttfb) * 1000:.0f} | {ttfb[int(len(ttfb) * 0.95) - 1] * 1000:.0f} | "
                          f"{streams.seconds:.1f} |", flush=True)
    finally:
        stop(processes)


if __name__ == "__main__":
    main()
