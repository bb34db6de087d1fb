"""PostgreSQL's capacity for the gateway's own write path: the real audit statements and group commit.

    python bench/pg_write_capacity.py [--processes 1 2 4] [--greenlets 32] [--seconds 15]

Each process is what a gateway worker is for the database: a gevent-patched interpreter with
one ``AuditLog`` (compiled statements, group commit, one kept connection), and ``--greenlets``
calls in flight that each record a request (``open``, waited for) and its ending (``close``,
queued) back to back, with no upstream and no HTTP: the write path alone. Sessions run 8 turns.
Rows are ~the size of bench/gateway_bench.py's calls (~260-byte request, ~600-byte answer).

Reported per run: calls/s, PostgreSQL's own CPU per call (the /proc times of the workers'
backends: the number that says how many calls one PostgreSQL core takes when the gateway runs
elsewhere; the WAL writer and checkpointer are not in it), commits and WAL bytes per call, and
table + index bytes per call. WAL is counted server-wide: run it on a server nobody else uses
(``--private``: a throwaway server on 127.0.0.1:5434, as bench/pg_replica_bench.py starts) for a
clean figure. Uses a database of its own (provider_router_bench13_write, dropped at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "provider_router_bench13_write"
TABLES = ("sessions", "requests", "responses")


def worker(url: str, greenlets: int, seconds: float, index: int) -> None:
    """One process: ``greenlets`` loops of open + close for ``seconds``; prints its count as JSON."""
    from gevent import monkey

    monkey.patch_all()
    import gevent

    sys.path.insert(0, str(ROOT))
    from app.services.audit.log import AuditLog
    from app.services.audit.records import Outcome

    request = json.dumps({"model": "qwen2.5-7b-instruct", "messages": [
        {"role": "system", "content": "You are a concise assistant for platform engineers."},
        {"role": "user", "content": "In two sentences, what does an LLM gateway do? " * 4}]})
    content = "A gateway routes each call to the active upstream and logs it. " * 8
    answer = {"id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "qwen2.5-7b-instruct",
              "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
              "usage": {"prompt_tokens": 42, "completion_tokens": 60, "total_tokens": 102}}
    with tempfile.TemporaryDirectory() as journal:
        audit = AuditLog.for_url(url, session_timeout_ms=3_600_000, journal_dir=Path(journal))
        counts = [0] * greenlets
        deadline = time.perf_counter() + seconds

        def loop(slot: int) -> None:
            turn = 0
            while time.perf_counter() < deadline:
                session = f"cap-{index}-{slot}-{turn // 8}"
                record, _ = audit.open(
                    session_id=session, first_user_message="what does an LLM gateway do?",
                    openai_request=request, provider="lm-studio", model="qwen2.5-7b-instruct", stream=False,
                    method="POST", path="/v1/chat/completions", build=lambda _conversation: json.loads(request),
                )
                audit.close(record, Outcome(
                    status="ok", status_code=200, openai_response=answer, provider_response=answer,
                    finish_reason="stop", prompt_tokens=42, completion_tokens=60, total_tokens=102,
                    provider="lm-studio",
                ))
                turn += 1
                counts[slot] += 1

        started = time.perf_counter()
        gevent.joinall([gevent.spawn(loop, slot) for slot in range(greenlets)])
        audit.flush()
        elapsed = time.perf_counter() - started
        print(json.dumps({"calls": sum(counts), "seconds": elapsed, "journaled": audit.counts["journaled"]}),
              flush=True)
        sys.stdin.readline()  # the parent reads this connection's backend CPU before it goes away
        audit.stop()


def _backends_cpu_s(cursor) -> float:
    """CPU seconds of the server processes connected to this database, but ours (the workers' backends)."""
    cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for (pid,) in cursor.fetchall():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _stats(cursor) -> dict:
    cursor.execute("SELECT pg_current_wal_lsn(), xact_commit FROM pg_stat_database WHERE datname = current_database()")
    lsn, commits = cursor.fetchone()
    cursor.execute("SELECT sum(pg_total_relation_size(c)) FROM unnest(%s::regclass[]) c", (list(TABLES),))
    size = cursor.fetchone()[0]
    cursor.execute("SELECT count(*) FROM responses")
    return {"lsn": lsn, "commits": commits, "bytes": int(size), "calls": cursor.fetchone()[0]}


def run(url: str, dsn: str, *, processes: int, greenlets: int, seconds: float) -> dict:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection, connection.cursor() as cursor:
        before = _stats(cursor)
        workers = [
            subprocess.Popen([sys.executable, __file__, "--worker", url, str(greenlets), str(seconds), str(index)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
            for index in range(processes)
        ]
        outputs = [json.loads(w.stdout.readline()) for w in workers]
        backends_cpu = _backends_cpu_s(cursor)  # every worker is done, its connection still open
        for w in workers:
            w.communicate("\n")
        after = _stats(cursor)
        cursor.execute("SELECT pg_wal_lsn_diff(%s, %s)", (after["lsn"], before["lsn"]))
        wal = float(cursor.fetchone()[0])
    calls = after["calls"] - before["calls"]
    wall = max(o["seconds"] for o in outputs)
    return {
        "processes": processes, "greenlets": greenlets, "calls": calls, "calls_s": calls / wall,
        "journaled": sum(o["journaled"] for o in outputs),
        "pg_cpu_us_per_call": backends_cpu / calls * 1e6,
        "commits_per_call": (after["commits"] - before["commits"]) / calls,
        "wal_bytes_per_call": wal / calls, "table_bytes_per_call": (after["bytes"] - before["bytes"]) / calls,
        "load": os.getloadavg()[0],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--greenlets", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--private", type=Path, help="run on a throwaway server of its own, in this directory")
    args = parser.parse_args()
    if args.private:
        sys.path.insert(0, str(ROOT / "bench"))
        from pg_replica_bench import private_server

        with private_server(args.private, 5434):
            os.environ["BENCH_PG"] = "postgres@127.0.0.1:5434"
            measure(args)
        return
    measure(args)


def measure(args: argparse.Namespace) -> None:
    import psycopg

    server = os.environ.get("BENCH_PG", "postgres@127.0.0.1:5432")
    admin, dsn = f"postgresql://{server}/postgres", f"postgresql://{server}/{DATABASE}"
    url = f"postgresql+psycopg://{server}/{DATABASE}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        connection.execute(f"CREATE DATABASE {DATABASE}")
    sys.path.insert(0, str(ROOT))
    from app import migrate

    migrate.upgrade(url)
    try:
        results = [run(url, dsn, processes=p, greenlets=args.greenlets, seconds=args.seconds) for p in args.processes]
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    print("| processes x greenlets | calls/s | PostgreSQL CPU us/call | commits/call | WAL bytes/call "
          "| table+index bytes/call | load avg |\n|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['processes']} x {r['greenlets']} | {r['calls_s']:,.0f} | {r['pg_cpu_us_per_call']:.0f} "
              f"| {r['commits_per_call']:.2f} | {r['wal_bytes_per_call']:,.0f} | {r['table_bytes_per_call']:,.0f} "
              f"| {r['load']:.1f} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
