"""Dashboard and content-search benchmark: a million calls in SQLite, each page's server time p50/p95.

    python bench/ui_bench.py [--rows 1000000] [--repeat 30] [--db bench/out/ui-1000000.db]

The database comes from bench/history_data.py (the history benchmark's generator) and is reused
by later runs. Before indexing, a few calls get rare words planted in their prompts (a word in
1 call in 10,000, a Cyrillic word, a phrase), so that searches have something rare to find as
well as the generator's common words. The search index is then built with the same code as
`provider-cli search reindex` (timed once). Pages go through the Flask test client: routing,
the queries and the template, all included. Then the background indexer's lag: calls written
straight into the tables, and the time until a search finds each one.
"""

from __future__ import annotations

import argparse
import gc
import os
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
from app.db import get_engine  # noqa: E402
from app.services.search import index  # noqa: E402
from app.services.search.indexer import SearchIndexer  # noqa: E402

HERE = Path(__file__).resolve().parent
PLANTS = (  # (every nth call, text put in front of its user message)
    (10_000, "zanzibar quokka"),
    (20_000, "Съешь же ещё этих мягких французских булок"),
    (50_000, "the unusual phrase of record"),
)
TARGETS = {"page": 150.0, "search": 200.0}


def prepare(path: Path, rows: int, *, search: bool = True) -> None:
    """The filled database with its planted words, indexed (unless no search is measured)."""
    if not path.exists():
        print(f"filling {path} with {rows:,} calls (a few minutes for a million)")
        path.parent.mkdir(parents=True, exist_ok=True)
        fill(str(path), responses=rows)
    with sqlite3.connect(path) as connection:
        planted = connection.execute("SELECT count(*) FROM requests WHERE openai_request LIKE '%zanzibar%'").fetchone()
        if planted[0] == 0:
            for every, text in PLANTS:
                connection.execute(
                    "UPDATE requests SET openai_request = replace(openai_request, "
                    "'\"role\":\"user\",\"content\":\"', '\"role\":\"user\",\"content\":\"' || ? || ' ') "
                    "WHERE id % ? = 7", (text, every),
                )
    engine = get_engine(f"sqlite:///{path}")
    state = index.state(engine)
    if search and state.indexed < state.calls:
        size = path.stat().st_size
        print(f"indexing {state.calls - state.indexed:,} calls")
        started = time.perf_counter()
        done = [0]

        def progress(n: int) -> None:
            done[0] += n
            if done[0] % 100_000 < n:
                print(f"  {done[0]:,} ({time.perf_counter() - started:.0f} s)", flush=True)

        index.reindex(engine, progress=progress)
        print(f"indexed in {time.perf_counter() - started:.0f} s; file grew "
              f"{(path.stat().st_size - size) / 2**30:.2f} GiB")


def timed(label: str, call: Callable[[], int], repeat: int) -> tuple[str, float, float]:
    for _ in range(2):
        call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        status = call()
        samples.append((time.perf_counter() - started) * 1000)
        assert status == 200, (label, status)
    samples.sort()
    p50, p95 = statistics.median(samples), samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)]
    print(f"  {label:<52} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms", flush=True)
    return label, p50, p95


def pages(path: Path, repeat: int, only: str | None = None) -> list[tuple[str, str, float, float]]:
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{path}", "LOG_LEVEL": "ERROR", "SEARCH_INDEXER": "false"})
    client = create_app(settings).test_client()
    gc.freeze()  # as every gunicorn worker does once loaded (gunicorn.conf.py): full collections skip the app
    with sqlite3.connect(path) as connection:
        newest, session = connection.execute(
            "SELECT id, session_id FROM requests WHERE request_id NOT LIKE 'lag-%' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        busy = connection.execute("SELECT id FROM sessions ORDER BY message_count DESC LIMIT 1").fetchone()[0]
    deep = client.get("/v1/requests?limit=1&offset=900000").get_json()["data"][0]
    cases = [
        ("page", "overview, last hour (by minute)", "/ui/?range=1h"),
        ("page", "overview, last 24 h (by hour)", "/ui/?range=24h"),
        ("page", "overview, last 7 days (by day)", "/ui/?range=7d"),
        ("page", "overview, last 30 days (by day)", "/ui/?range=30d"),
        ("page", "calls, first page", "/ui/calls"),
        ("page", "calls, model + status=error", "/ui/calls?model=openai/gpt-4o&status=error"),
        ("page", "calls, 90 % down (keyset)", f"/ui/calls?start_date=0&end_date={deep['timestamp']}"),
        ("page", "calls, live tail poll", f"/ui/calls/tail?since={deep['timestamp']}.{deep['id']}&model=gpt-4o"),
        ("page", "one call", f"/ui/calls/{newest}"),
        ("page", "diff of two calls", f"/ui/diff?a={newest}&b={newest - 1}"),
        ("page", "session (its thread)", f"/ui/sessions/{session}"),
        ("page", "session with the most turns", f"/ui/sessions/{busy}"),
        ("page", "providers", "/ui/providers"),
        ("search", "search: rare word (100 calls)", "/ui/calls?q=zanzibar"),
        ("search", "search: two rare words", "/ui/calls?q=quokka+zanzibar"),
        ("search", "search: Cyrillic phrase (50 calls)", "/ui/calls?q=%22мягких+французских%22"),
        ("search", "search: phrase (20 calls)", "/ui/calls?q=%22phrase+of+record%22"),
        ("search", "search: rare word + status=ok", "/ui/calls?q=zanzibar&status=ok"),
        ("search", "search: common word (every call)", "/ui/calls?q=gateway"),
        ("search", "search: REST /v1/requests?q= rare word", "/v1/requests?q=zanzibar"),
    ]
    rows = []
    for kind, label, url in cases:
        if only and only not in label:
            continue
        rows.append((kind, *timed(label, lambda url=url: client.get(url).status_code, repeat)))
    return rows


def indexer_lag(path: Path, samples: int = 10) -> list[float]:
    """Seconds from a call's response row being committed to a search finding it."""
    url = f"sqlite:///{path}"
    indexer = SearchIndexer(url)
    indexer.start()
    lags = []
    try:
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA foreign_keys=ON")  # the probes' deletion cascades, as the gateway's does
            base = connection.execute("SELECT max(id) FROM requests").fetchone()[0]
            for n in range(1, samples + 1):
                word = f"lagprobe{os.getpid()}x{n}"
                request_id = base + n
                with connection:
                    connection.execute(
                        "INSERT INTO requests (id, session_id, request_id, timestamp, method, path, openai_request, "
                        "provider, model, stream, created_at) VALUES (?, 'session-0000001', ?, ?, 'POST', "
                        "'/v1/chat/completions', ?, 'openai', 'gpt-4o', 0, ?)",
                        (request_id, f"lag-{os.getpid()}-{n}", int(time.time() * 1000),
                         '{"messages":[{"role":"user","content":"' + word + '"}]}', int(time.time() * 1000)),
                    )
                    connection.execute(
                        "INSERT INTO responses (request_id, session_id, response_id, timestamp, status, "
                        "usage_estimated, client_disconnected, created_at) VALUES (?, 'session-0000001', ?, ?, 'ok', "
                        "0, 0, ?)", (request_id, f"lag-r-{os.getpid()}-{n}", int(time.time() * 1000),
                                     int(time.time() * 1000)),
                    )
                written = time.perf_counter()
                while not connection.execute(
                    "SELECT 1 FROM search_docs WHERE request_id = ? AND instr(body, ?)", (request_id, word)
                ).fetchone():
                    time.sleep(0.02)
                lags.append(time.perf_counter() - written)
                time.sleep(0.3)
            with connection:  # the probes leave the database as they found it
                connection.execute("DELETE FROM requests WHERE request_id LIKE 'lag-%'")
    finally:
        indexer.stop()
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--db", type=Path, default=HERE / "out" / "ui-1000000.db")
    parser.add_argument("--only", help="measure only the pages whose label holds this text (e.g. overview)")
    args = parser.parse_args()
    search = not args.only or "search" in args.only
    prepare(args.db, args.rows, search=search)
    print(f"{args.db.stat().st_size / 2**30:.1f} GiB; pages through the Flask test client, {args.repeat} runs each")
    rows = pages(args.db, args.repeat, args.only)
    if search:
        lags = indexer_lag(args.db)
        print(f"indexer lag over {len(lags)} calls: median {statistics.median(lags):.2f} s, max {max(lags):.2f} s")
    print("\n| page | p50 ms | p95 ms | target (p95) |\n|---|---:|---:|---|")
    for kind, label, p50, p95 in rows:
        target = TARGETS[kind]
        print(f"| {label} | {p50:.1f} | {p95:.1f} | <= {target:.0f} ms: {'met' if p95 <= target else 'MISSED'} |")


if __name__ == "__main__":
    main()
