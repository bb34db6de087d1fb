"""History API at 10 million calls on PostgreSQL: p50/p95 of the reads people make, through the real app.

    python bench/history_pg_bench.py [--calls 10000000] [--repeat 40] [--database provider_router_bench13]
                                     [--only TEXT] [--no-search] [--whole-terms]

Fills the database once (bench/history_pg_data.py: COPY + generate_series, ~30 min for 10M
calls here) and reuses it while its row count matches. Requests go through the Flask test
client (routing, validation, SQL and JSON included), each scenario with varying arguments
(another model, session, ticket number per request) so no answer is served warm twice.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from history_pg_data import fill  # noqa: E402

from app import create_app  # noqa: E402
from app.config import Settings  # noqa: E402

DAY_MS = 86_400_000
TARGETS = {"first page": 50, "filtered by model": 50, "filtered by session": 50,
           "usage stats, 30 days": 500, "content search": 300}
MODELS = ("qwen2.5-7b-instruct", "gpt-4o-mini", "llama-3.1-8b-instruct", "gpt-4o", "mistral-7b-instruct",
          "gpt-4.1-mini")


def server_url(database: str) -> str:
    host = os.environ.get("BENCH_PG", "postgres@127.0.0.1:5432")
    return f"postgresql+psycopg://{host}/{database}"


def ensure(database: str, calls: int, *, search: bool = True) -> None:
    """Create and fill ``database`` unless it already holds ``calls`` calls."""
    admin = server_url("postgres").replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    if exists:  # filled before (or being filled): used as it is, pruned or not
        with psycopg.connect(server_url(database).replace("+psycopg", "")) as connection:
            found = connection.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'requests'")
            found = found.fetchone()[0]
        print(f"reusing {database} (~{found:,} calls)")
        return
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    started = time.perf_counter()
    timings = fill(server_url(database), calls=calls, search=search)
    print(f"filled in {time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))


class Refused(Exception):
    """The app answered something else than 200 (a replica cancelling a read, say)."""


def _time(label: str, call: Callable[[], str], repeat: int) -> tuple[str, float, float, str]:
    """p50 and p95 of the answered calls; refused ones are counted apart (and their first answer shown)."""
    refused: list[str] = []
    samples, url = [], ""
    for n in range(2 + repeat):
        started = time.perf_counter()
        try:
            url = call()
        except Refused as exc:
            refused.append(str(exc))
            continue
        if n >= 2:  # two warm-up calls first
            samples.append((time.perf_counter() - started) * 1000)
    samples = sorted(samples) or [float("nan")]
    p50 = statistics.median(samples)
    p95 = samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)]
    print(f"  {label:<34} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   (e.g. {url})", flush=True)
    if refused:
        print(f"    {len(refused)} of {2 + repeat} refused, e.g. {refused[0][:200]}", flush=True)
    return label, p50, p95, url


def run(
    database: str, *, repeat: int, calls: int, only: str | None = None, read_url: str | None = None
) -> list[tuple[str, float, float, str]]:
    """The scenarios through the app; ``read_url``: the app runs there instead (a replica: a read-only instance)."""
    settings = Settings.from_env({"DATABASE_URL": read_url or server_url(database), "LOG_LEVEL": "ERROR",
                                  "SEARCH_INDEXER": "false"})
    app = create_app(settings)
    client = app.test_client()
    rng = random.Random(13)
    now = int(time.time() * 1000)

    def get(url: str) -> str:
        reply = client.get(url)
        if reply.status_code != 200:
            raise Refused(f"{reply.status_code} {reply.get_data(as_text=True)[:300]}")
        return url

    scenarios = [
        # What the app and this machine cost around any SQL: an empty page, found from an index.
        ("floor: an empty page", lambda: get("/v1/requests?session_id=no-such-session")),
        ("first page", lambda: get("/v1/requests")),
        ("filtered by model", lambda: get(f"/v1/requests?model={rng.choice(MODELS)}")),
        ("filtered by session",
         lambda: get(f"/v1/requests?session_id=session-{rng.randrange(calls // 8):08d}")),
        ("usage stats, 30 days",
         lambda: get(f"/v1/stats/usage?start_date={now - 30 * DAY_MS - rng.randrange(DAY_MS)}")),
        ("usage stats, 30 days by model",
         lambda: get(f"/v1/stats/usage?group_by=model&start_date={now - 30 * DAY_MS - rng.randrange(DAY_MS)}")),
        ("content search", lambda: get(f"/v1/requests?q=ticket-{rng.randrange(999983)}")),
        # The same calls found by the number alone: no trigram of it is in every call.
        ("content search, an id alone", lambda: get(f"/v1/requests?q={rng.randrange(100000, 999983)}")),
        ("content search, two words", lambda: get(f"/v1/requests?q=database+ticket-{rng.randrange(999983)}")),
        ("content search, common word", lambda: get("/v1/requests?q=deploy")),
        ("deep keyset page (model, page 200)", lambda: _deep(client, rng)),
    ]
    chosen = [(label, call) for label, call in scenarios if only is None or only in label]
    if any(label.startswith("usage") for label, _ in chosen):
        started = time.perf_counter()
        get(f"/v1/stats/usage?start_date={now - 31 * DAY_MS}")
        print(f"  first 30-day /v1/stats/usage (rolls up those days once): {time.perf_counter() - started:,.1f} s")
    return [_time(label, call, repeat) for label, call in chosen]


def _deep(client, rng: random.Random) -> str:
    url = f"/v1/requests?model={rng.choice(MODELS)}&limit=50"
    for _ in range(3):
        cursor = client.get(url).get_json()["next_cursor"]
        url = f"/v1/requests?model={rng.choice(MODELS)}&limit=50&after={cursor}"
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--database", default="provider_router_bench13")
    parser.add_argument("--only", help="run the scenarios whose label holds this text")
    parser.add_argument("--no-search", action="store_true",
                        help="fill without content-search texts (no hour-long trigram index; no search scenario)")
    parser.add_argument("--whole-terms", action="store_true",
                        help="content search looks every term up whole in the trigram index (as before the "
                             "rare-part probes), for a side-by-side run")
    args = parser.parse_args()
    if args.whole_terms:
        from app.services.search import trigrams
        trigrams.COMMON_SHARE = 1.0  # no trigram is held by more than all calls: none is common
    ensure(args.database, args.calls, search=not args.no_search)
    load = os.getloadavg()[0]
    results = run(args.database, repeat=args.repeat, calls=args.calls, only=args.only)
    print(f"\nload average {load:.1f} before, {os.getloadavg()[0]:.1f} after\n")
    print("| query | p50 ms | p95 ms | target (p95) |\n|---|---:|---:|---|")
    for label, p50, p95, _ in results:
        target = TARGETS.get(label)
        verdict = f"<= {target} ms: {'met' if p95 <= target else 'MISSED'}" if target else "-"
        print(f"| {label} | {p50:.1f} | {p95:.1f} | {verdict} |")


if __name__ == "__main__":
    main()
