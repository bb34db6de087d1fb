"""History reads from a streaming replica: the gateway's writes on a primary, its history reads on a hot standby.

    python bench/pg_replica_bench.py [--calls 1000000] [--dir /tmp/pr-replica-13] [--repeat 30] [--writers 2]

The shared server on 5432 accepts no replication connections (its pg_hba.conf has no
``replication`` line, and changing a shared server's configuration is not this bench's to do),
so this starts its own pair from the installed binaries, as user postgres (tests/e2e/standby.py,
which the replica's end-to-end test uses too): a primary on
127.0.0.1:5434 (initdb, trust, wal_level=replica), filled with ``--calls`` calls by
bench/history_data's PostgreSQL generator, and a hot standby on 127.0.0.1:5435 made with
``pg_basebackup -R -X stream``. Then, while bench/pg_write_capacity.py's worker processes record
calls on the primary as fast as they can, it measures the history reads of
bench/history_pg_bench.py through the gateway started on the standby (a read-only instance) and
on the primary, and samples the standby's replay lag every 100 ms. Both servers are stopped and
their directories removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from history_pg_data import fill  # noqa: E402

from tests.e2e.standby import hot_standby, private_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "provider_router_bench13"
PRIMARY, STANDBY = 5434, 5435
READS = ("first page", "filtered by", "content search", "usage stats, 30 days")
# (label, server, scenarios, the standby's hot_standby_feedback from then on). The usage reports run
# on the standby first with no rollups at all (every day computed live), without and with
# hot_standby_feedback, and last once the primary's report has written its rollups.
PHASES = (
    ("standby (a read-only instance)", STANDBY, READS, "off"),
    ("standby, hot_standby_feedback on", STANDBY, ("usage stats, 30 days",), "on"),
    ("primary", PRIMARY, READS, None),
    ("standby, with the primary's rollups", STANDBY, ("usage stats, 30 days",), "on"),
)


class LagSampler(threading.Thread):
    """The standby's replay lag (pg_stat_replication on the primary), every 100 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.lags_ms: list[float] = []
        self.bytes_behind: list[int] = []

    def run(self) -> None:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{PRIMARY}/postgres", autocommit=True) as connection:
            while not self.stop.is_set():
                row = connection.execute(
                    "SELECT extract(epoch FROM replay_lag) * 1000, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) "
                    "FROM pg_stat_replication"
                ).fetchone()
                if row is not None:
                    self.lags_ms.append(float(row[0] or 0))
                    self.bytes_behind.append(int(row[1] or 0))
                time.sleep(0.1)


def hot_standby_feedback(data: Path, value: str) -> None:
    """Set the standby's hot_standby_feedback (in its postgresql.auto.conf; a reload applies it)."""
    with open(data / "postgresql.auto.conf", "a") as conf:
        conf.write(f"hot_standby_feedback = {value}\n")
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{STANDBY}/postgres", autocommit=True) as c:
        c.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        print(f"standby: hot_standby_feedback = {c.execute('SHOW hot_standby_feedback').fetchone()[0]}")


def standby_conflicts() -> Counter:
    """Queries the standby has cancelled for conflicts with recovery, by kind (snapshot, lock, bufferpin...)."""
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{STANDBY}/{DATABASE}", autocommit=True) as c:
        for _ in range(10):  # even this read may be cancelled while replay is held up
            try:
                row = c.execute("SELECT confl_tablespace, confl_lock, confl_snapshot, confl_bufferpin, "
                                "confl_deadlock FROM pg_stat_database_conflicts "
                                "WHERE datname = current_database()").fetchone()
                break
            except psycopg.errors.SerializationFailure:
                time.sleep(0.5)
    return Counter(dict(zip(("tablespace", "lock", "snapshot", "bufferpin", "deadlock"), row, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/pr-replica-13"))
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--writers", type=int, default=2)
    args = parser.parse_args()
    try:
        with private_server(PRIMARY, args.dir / "primary"):
            measure(args)
    finally:
        shutil.rmtree(args.dir, ignore_errors=True)


def measure(args: argparse.Namespace) -> None:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{PRIMARY}/postgres", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {DATABASE}")
    begun = time.perf_counter()
    fill(f"postgresql+psycopg://postgres@127.0.0.1:{PRIMARY}/{DATABASE}", calls=args.calls, say=lambda _s: None)
    print(f"primary filled with {args.calls:,} calls in {time.perf_counter() - begun:.0f} s")
    begun = time.perf_counter()
    with hot_standby(primary_port=PRIMARY, port=STANDBY, directory=args.dir / "standby") as standby:
        print(f"pg_basebackup and start: {time.perf_counter() - begun:.0f} s")
        measure_on_standby(args, standby)


def measure_on_standby(args: argparse.Namespace, standby: Path) -> None:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{STANDBY}/{DATABASE}") as c:
        print("standby in recovery:", c.execute("SELECT pg_is_in_recovery()").fetchone()[0])
    from history_pg_bench import run

    primary_url = f"postgresql+psycopg://postgres@127.0.0.1:{PRIMARY}/{DATABASE}"
    writers = [
        subprocess.Popen([sys.executable, str(ROOT / "bench" / "pg_write_capacity.py"), "--worker",
                          primary_url, "32", "600", str(index)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for index in range(args.writers)
    ]
    sampler = LagSampler()
    sampler.start()
    try:
        os.environ["BENCH_PG"] = f"postgres@127.0.0.1:{PRIMARY}"
        for label, port, scenarios, feedback in PHASES:
            if feedback is not None:
                hot_standby_feedback(standby, feedback)
            print(f"reads on the {label}, the primary taking writes:")
            conflicts, first_sample = standby_conflicts(), len(sampler.lags_ms)
            for scenario in scenarios:
                try:
                    run(DATABASE, repeat=args.repeat, calls=args.calls, only=scenario,
                        read_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/{DATABASE}")
                except Exception as exc:  # noqa: BLE001 - the finding is what the app does on a standby
                    print(f"  {scenario}: failed on the {label}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            lags = sorted(sampler.lags_ms[first_sample:]) or [0.0]
            print(f"  standby queries cancelled by recovery conflicts: {dict(standby_conflicts() - conflicts)}; "
                  f"replay lag meanwhile: median {statistics.median(lags):.1f} ms, max {lags[-1]:.1f} ms")
    finally:
        for writer in writers:
            writer.terminate()
        sampler.stop.set()
        sampler.join()
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{PRIMARY}/{DATABASE}") as c:
        written = c.execute("SELECT count(*) FROM responses").fetchone()[0] - args.calls
    lags = sorted(sampler.lags_ms) or [0.0]
    behind = sorted(sampler.bytes_behind) or [0]
    print(f"calls written on the primary meanwhile: {written:,}")
    print(f"replay lag over {len(lags)} samples: median {statistics.median(lags):.1f} ms, "
          f"p99 {lags[int(0.99 * (len(lags) - 1))]:.1f} ms, max {lags[-1]:.1f} ms; "
          f"WAL not yet replayed: median {statistics.median(behind):,.0f} B, max {behind[-1]:,} B")


if __name__ == "__main__":
    main()
