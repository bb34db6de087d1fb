"""History API benchmark: a million synthetic calls in SQLite, then p50/p95 of typical reads.

    python bench/history_bench.py [--rows 1000000] [--repeat 50] [--db bench/out/history-1000000.db]

Requests go through the Flask test client, so each figure includes routing, validation,
the SQL and the JSON. The database is kept in bench/out/ (git-ignored) and reused by later
runs; --fresh rebuilds it. Results print as a Markdown table; --write puts them in
bench/RESULTS.md under "## History API (issue 3)".
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from history_data import fill  # noqa: E402

from app import create_app  # noqa: E402
from app.config import Settings  # noqa: E402
from app.services.history.paging import Cursor  # noqa: E402

HERE = Path(__file__).resolve().parent
SECTION = "## History API (issue 3)"
TARGETS = {"page": 25.0, "stats": 250.0}


def _database(path: Path, rows: int, fresh: bool) -> None:
    if fresh and path.exists():
        path.unlink()
    if path.exists():
        with sqlite3.connect(path) as connection:
            count = connection.execute("SELECT count(*) FROM responses").fetchone()[0]
        if count == rows:
            print(f"reusing {path} ({rows:,} responses)")
            return
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"filling {path} with {rows:,} calls (a few minutes for a million)")
    started = time.perf_counter()
    fill(str(path), responses=rows)
    print(f"filled in {time.perf_counter() - started:.0f} s, {path.stat().st_size / 2**30:.1f} GiB")


def _time(label: str, call: Callable[[], str], repeat: int) -> tuple[str, float, float]:
    for _ in range(3):  # warm the page cache and the statement caches
        call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        url = call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p50 = statistics.median(samples)
    p95 = samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)]
    print(f"  {label:<44} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   ({url})")
    return label, p50, p95


def run(path: Path, *, repeat: int) -> tuple[list[tuple[str, str, float, float]], float]:
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{path}", "LOG_LEVEL": "ERROR"})
    client = create_app(settings).test_client()
    with sqlite3.connect(path) as connection:
        # Start without rollups, so the first report's cost is measured on every run.
        for table in ("usage_rollups", "usage_rollup_latencies", "usage_rollup_days"):
            connection.execute(f"DELETE FROM {table}")
        sessions = [row[0] for row in connection.execute("SELECT id FROM sessions")]
        total = connection.execute("SELECT count(*) FROM requests").fetchone()[0]
        deep = connection.execute(
            "SELECT timestamp, id FROM requests ORDER BY timestamp DESC, id DESC LIMIT 1 OFFSET ?",
            (int(total * 0.9),),
        ).fetchone()
    deep_cursor = Cursor(kind="requests", sort_value=deep[0], tiebreak=deep[1]).encode()
    rng = random.Random(7)

    def get(url: str) -> Callable[[], str]:
        def call() -> str:
            reply = client.get(url)
            assert reply.status_code == 200, reply.get_data(as_text=True)
            return url
        return call

    def session_stats() -> str:
        url = f"/v1/sessions/{rng.choice(sessions)}/stats"
        return get(url)()

    started = time.perf_counter()
    get("/v1/stats/usage?group_by=day")()
    cold_rollup_ms = (time.perf_counter() - started) * 1000
    print(f"  first /v1/stats/usage (rolls up every past day once): {cold_rollup_ms:,.0f} ms")
    scenarios = [
        ("page", "first page", get("/v1/requests")),
        ("page", "filtered page (model + status=error)", get("/v1/requests?model=gpt-4o-mini&status=error")),
        ("page", "deep keyset page (90 % down)", get(f"/v1/requests?after={deep_cursor}")),
        ("stats", "session stats", session_stats),
        ("stats", "/stats/usage?group_by=day", get("/v1/stats/usage?group_by=day")),
        # For comparison, not targets: what the cursor avoids, and broader queries.
        ("other", "deep offset page (offset=900000)", get(f"/v1/requests?offset={int(total * 0.9)}")),
        ("other", "filtered page (stream=true, 60 % match)", get("/v1/requests?stream=true")),
        ("other", "filtered page (min_duration_ms=20000, slow calls)",
         get("/v1/requests?min_duration_ms=20000")),
        ("other", "filtered page (status=ok&finish_reason=stop, 85 % match)",
         get("/v1/requests?status=ok&finish_reason=stop")),
        ("other", "/stats/usage?group_by=model", get("/v1/stats/usage?group_by=model")),
        ("other", "/stats/usage?group_by=hour, last 7 days",
         get(f"/v1/stats/usage?group_by=hour&start_date={_days_ago(7)}")),
        ("other", "/responses/stats (all time)", get("/v1/responses/stats")),
    ]
    results = []
    for kind, label, call in scenarios:
        _, p50, p95 = _time(label, call, repeat if kind != "other" else max(5, repeat // 5))
        results.append((kind, label, p50, p95))
    return results, cold_rollup_ms


def _days_ago(days: int) -> int:
    return int(time.time() * 1000) - days * 86_400_000


def markdown(
    results, cold_rollup_ms: float, *, rows: int, repeat: int, size_gib: float, load: tuple[float, float]
) -> str:
    lines = [
        SECTION,
        "",
        f"`python bench/history_bench.py --rows {rows} --repeat {repeat}`: "
        f"{platform.python_implementation()} {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cores shared with other engineers' test runs (load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after: figures move by several ms between runs). {rows:,} synthetic calls over 90 "
        f"days (~1.5 KB JSON per body, {size_gib:.1f} GiB file, no ANALYZE), through the Flask test client: "
        "routing, validation, SQL and "
        "JSON included. Every list answer carries its exact `total`.",
        "",
        "| query | p50 ms | p95 ms | target (p95) |",
        "|---|---:|---:|---|",
    ]
    for kind, label, p50, p95 in results:
        target = TARGETS.get(kind)
        verdict = f"<= {target:.0f} ms: {'met' if p95 <= target else 'MISSED'}" if target else "-"
        lines.append(f"| {label} | {p50:.1f} | {p95:.1f} | {verdict} |")
    lines += [
        "",
        f"The first `/stats/usage` after the fill took {cold_rollup_ms / 1000:.1f} s: it rolled up every "
        "past day once (in transactions of a week each). Later reports read the rollups and compute only "
        "today live.",
        "",
        "Where the time goes:",
        "",
        "* Pages themselves cost 1-5 ms (the sort index walked in order, 51 rows fetched, JSON); the rest "
        "of a list answer is its exact `total` and, on this box, waiting for a core.",
        "* The filtered page's total checks every `gpt-4o-mini` request (61k, from the (model, timestamp) "
        "index) against the ids of the 40k error responses (from the (status, request_id) index): two "
        "index-only walks, ~15 ms of CPU. The model lives on `requests` and the status on `responses`, so "
        "no single index can count the pair; what would: a copy of `model`/`provider` on `responses` "
        "(written by the audit hot path), or totals capped or omitted on request.",
        "* An unfiltered total is SQLite counting ~1M index entries page by page (~5-8 ms).",
        "* `/stats/usage?group_by=day` reads the daily rollups' cells and histogram rows of the past days, "
        "today's closed hours from the hourly rollups and only the current hour live; the p50/p95 are "
        "merged from the histograms in Python.",
        "* `group_by=hour` reads the hourly rollups of a week (~170 hours of cells and histograms) and "
        "the current hour live; `group_by=model` the daily rollups by model and today live (hourly "
        "rollups keep no per-model histograms); `group_by=session` is always computed live.",
        "",
    ]
    return "\n".join(lines)


def write_results(section: str) -> None:
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    if SECTION in text:
        start = text.index(SECTION)
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[end + 1:] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--fresh", action="store_true", help="rebuild the database")
    parser.add_argument("--write", action="store_true", help="record the results in bench/RESULTS.md")
    args = parser.parse_args()
    path = args.db or HERE / "out" / f"history-{args.rows}.db"
    _database(path, args.rows, args.fresh)
    load_before = os.getloadavg()[0]
    results, cold = run(path, repeat=args.repeat)
    section = markdown(
        results, cold, rows=args.rows, repeat=args.repeat, size_gib=path.stat().st_size / 2**30,
        load=(load_before, os.getloadavg()[0]),
    )
    print()
    print(section)
    if args.write:
        write_results(section)


if __name__ == "__main__":
    main()
