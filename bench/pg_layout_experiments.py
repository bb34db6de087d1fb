"""Past one database's comfort, tried on a copy: monthly partitions with retention by DROP, bodies apart with lz4.

    python bench/pg_layout_experiments.py partitions-copy   # p_requests / p_responses, monthly, from the 10M tables
    python bench/pg_layout_experiments.py partitions-drop   # retention of the oldest month: DETACH + DROP
    python bench/pg_layout_experiments.py bodies [--sample 1000000]   # bodies in their own table: pglz vs lz4
    python bench/pg_layout_experiments.py conversations [--sample 400000]   # the same, at real request sizes
    python bench/pg_layout_experiments.py sizes             # sizes, dead rows of the call tables (bloat)
    python bench/pg_layout_experiments.py clean             # drops every table made here

Works in the database bench/history_pg_bench.py filled (provider_router_bench13), beside the
gateway's own tables, which it reads and never changes. DELETE of the same rows from the
gateway's tables is bench/prune_while_serving.py's ``provider-cli prune``, the gateway's own retention.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import time

import psycopg

REQUEST_INDEXES = ("session_id", "timestamp", "model, timestamp", "provider, timestamp", "stream, timestamp")
RESPONSE_INDEXES = (
    "timestamp, status, duration_ms, ttft_ms, prompt_tokens, completion_tokens, total_tokens, usage_estimated, "
    "request_id",
    "status, model, request_id, finish_reason, duration_ms",
    "request_id",
)
FIRST = 5_000_001  # the sample of calls starts here: the oldest ones may have been pruned
BODY_COLUMNS = "openai_request text, provider_request text, openai_response text, provider_response text"


def _connect(database: str) -> psycopg.Connection:
    server = os.environ.get("BENCH_PG", "postgres@127.0.0.1:5432")
    return psycopg.connect(f"postgresql://{server}/{database}", autocommit=True)


def _ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC).timestamp() * 1000)


def _months(low_ms: int, high_ms: int) -> list[tuple[str, int, int]]:
    day = dt.datetime.fromtimestamp(low_ms / 1000, dt.UTC).date().replace(day=1)
    months = []
    while _ms(day) <= high_ms:
        following = (day + dt.timedelta(days=32)).replace(day=1)
        months.append((day.strftime("%Y_%m"), _ms(day), _ms(following)))
        day = following
    return months


def _timed(cursor: psycopg.Cursor, sql: str, label: str | None = None) -> float:
    started = time.perf_counter()
    cursor.execute(sql)
    elapsed = time.perf_counter() - started
    print(f"  {elapsed:8.2f} s  {label or sql[:100]}", flush=True)
    return elapsed


def partitions_copy(cursor: psycopg.Cursor) -> None:
    """Monthly range partitions of both call tables, filled from the gateway's tables, indexed like them."""
    low, high = cursor.execute("SELECT min(timestamp), max(timestamp) FROM responses").fetchone()
    months = _months(low, high + 86_400_000)
    for table in ("requests", "responses"):
        # The key must hold the partition key: (id, timestamp); request_id and response_id can no
        # longer be unique across the table (a unique index on a partitioned table must include it too).
        cursor.execute(f"CREATE TABLE p_{table} (LIKE {table} INCLUDING DEFAULTS) PARTITION BY RANGE (timestamp)")
        for name, start, end in months:
            cursor.execute(f"CREATE TABLE p_{table}_{name} PARTITION OF p_{table} FOR VALUES FROM ({start}) TO ({end})")
        _timed(cursor, f"INSERT INTO p_{table} SELECT * FROM {table}")
        _timed(cursor, f"ALTER TABLE p_{table} ADD PRIMARY KEY (id, timestamp)")
        for columns in REQUEST_INDEXES if table == "requests" else RESPONSE_INDEXES:
            _timed(cursor, f"CREATE INDEX ON p_{table} ({columns})")
        _timed(cursor, f"VACUUM (ANALYZE) p_{table}")
    for name, _, _ in months:
        rows = cursor.execute(f"SELECT count(*) FROM p_requests_{name}").fetchone()[0]
        size = cursor.execute(
            f"SELECT pg_total_relation_size('p_requests_{name}') + pg_total_relation_size('p_responses_{name}')"
        ).fetchone()[0]
        print(f"  month {name}: {rows:,} calls, {size / 2**30:.2f} GiB (requests + responses, indexes included)")


def partitions_drop(cursor: psycopg.Cursor, database: str) -> None:
    """Retention of the oldest month: DETACH PARTITION CONCURRENTLY, then DROP; locks sampled meanwhile."""
    oldest = cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'p_requests'::regclass ORDER BY c.relname LIMIT 1"
    ).fetchone()[0]
    month = oldest.removeprefix("p_requests_")
    rows = cursor.execute(f"SELECT count(*) FROM {oldest}").fetchone()[0]
    size = cursor.execute(
        f"SELECT pg_total_relation_size('p_requests_{month}') + pg_total_relation_size('p_responses_{month}')"
    ).fetchone()[0]
    print(f"dropping month {month}: {rows:,} calls, {size / 2**30:.2f} GiB")
    # A writer keeps inserting into the partitioned table meanwhile, with a 1 s lock_timeout:
    # a statement that waited longer for the retention's locks fails and is counted.
    with _connect(database) as writer:
        writer.execute("SET lock_timeout = '1s'")
        waits = []
        total = 0.0
        for table in ("requests", "responses"):
            statement = f"ALTER TABLE p_{table} DETACH PARTITION p_{table}_{month} CONCURRENTLY"
            total += _timed(cursor, statement)
            started = time.perf_counter()
            writer.execute(f"SELECT count(*) FROM (SELECT 1 FROM p_{table} ORDER BY timestamp DESC LIMIT 50) s")
            waits.append(time.perf_counter() - started)
            total += _timed(cursor, f"DROP TABLE p_{table}_{month}")
        print(f"retention by partition: {total:.2f} s for {rows:,} calls; {size / 2**30:.2f} GiB returned to the "
              f"file system at once, no dead rows, no VACUUM; a read right after each step: "
              + ", ".join(f"{w * 1000:.1f} ms" for w in waits))


def bodies(cursor: psycopg.Cursor, sample: int) -> None:
    """The bodies of ``sample`` calls in a table of their own, pglz against lz4, against their size today."""
    print("default_toast_compression:", cursor.execute("SHOW default_toast_compression").fetchone()[0])
    today = cursor.execute(
        "SELECT sum(coalesce(pg_column_size(q.openai_request), 0) + coalesce(pg_column_size(q.provider_request), 0) "
        "+ coalesce(pg_column_size(r.openai_response), 0) + coalesce(pg_column_size(r.provider_response), 0)), "
        "sum(coalesce(octet_length(q.openai_request), 0) + coalesce(octet_length(q.provider_request), 0) "
        "+ coalesce(octet_length(r.openai_response), 0) + coalesce(octet_length(r.provider_response), 0)) "
        "FROM requests q JOIN responses r ON r.request_id = q.id WHERE q.id BETWEEN %s AND %s",
        (FIRST, FIRST + sample - 1),
    ).fetchone()
    print(f"today, inline in requests/responses: {today[0] / sample:,.0f} B stored per call for "
          f"{today[1] / sample:,.0f} B of JSON (rows under ~2 KB are never compressed)")
    results = {}
    for method in ("pglz", "lz4"):
        table = f"bodies_{method}"
        columns = BODY_COLUMNS.replace("text", f"text COMPRESSION {method}")
        # toast_tuple_target: compress rows past 128 B (the least allowed), not past ~2 KB as by default.
        cursor.execute(
            f"CREATE TABLE {table} (request_id bigint PRIMARY KEY, {columns}) WITH (toast_tuple_target = 128)"
        )
        seconds = _timed(cursor, (
            f"INSERT INTO {table} SELECT q.id, q.openai_request, q.provider_request, r.openai_response, "
            f"r.provider_response FROM requests q JOIN responses r ON r.request_id = q.id "
            f"WHERE q.id BETWEEN {FIRST} AND {FIRST + sample - 1}"
        ), f"fill {table} with {sample:,} calls' bodies")
        size = cursor.execute(f"SELECT pg_total_relation_size('{table}')").fetchone()[0]
        ids = random.Random(13).sample(range(FIRST, FIRST + sample), 2000)
        started = time.perf_counter()
        for chunk in range(0, len(ids), 50):
            cursor.execute(f"SELECT length(openai_request), length(openai_response) FROM {table} "
                           "WHERE request_id = ANY(%s)", (ids[chunk:chunk + 50],)).fetchall()
        read_ms = (time.perf_counter() - started) * 1000 / len(ids)
        results[method] = (size, seconds, read_ms)
        print(f"  {method}: {size / sample:,.0f} B per call (table, TOAST and key), {seconds / sample * 1e6:.1f} us "
              f"per call to write, {read_ms * 1000:.0f} us per body read (random, 50 a query)")
    cursor.execute(
        "CREATE TABLE slim_requests AS SELECT id, session_id, request_id, timestamp, method, path, provider, model, "
        f"stream, created_at, worker_id FROM requests WHERE id BETWEEN {FIRST} AND {FIRST + sample - 1}"
    )
    slim = cursor.execute("SELECT pg_relation_size('slim_requests')").fetchone()[0]
    full = cursor.execute("SELECT pg_relation_size('requests') * %s / (SELECT max(id) FROM requests)",
                          (sample,)).fetchone()[0]
    print(f"requests heap without its bodies: {slim / sample:,.0f} B per call against {full / sample:,.0f} B today")


def conversations(cursor: psycopg.Cursor, sample: int) -> None:
    """Bodies the size real chat requests have: each turn's request carries the conversation so far.

    PostgreSQL compresses a value only in a row past ~2 KB (TOAST_TUPLE_THRESHOLD; a lower
    ``toast_tuple_target`` does not lower that trigger), and the synthetic calls' rows are ~1.4 KB:
    here turn k's body holds turns 1..k of its session (prompts and answers), as an agent's does.
    """
    source = (
        "SELECT q.id, string_agg(q.openai_request || r.openai_response, ',') OVER (PARTITION BY q.session_id "
        "ORDER BY q.timestamp ROWS UNBOUNDED PRECEDING) AS body FROM requests q JOIN responses r "
        f"ON r.request_id = q.id WHERE q.id BETWEEN {FIRST} AND {FIRST + sample - 1} AND r.openai_response IS NOT NULL"
    )
    for method in ("pglz", "lz4"):
        table = f"conversation_{method}"
        cursor.execute(f"CREATE TABLE {table} (request_id bigint PRIMARY KEY, body text COMPRESSION {method})")
        seconds = _timed(cursor, f"INSERT INTO {table} {source}", f"fill {table}")
        rows, raw, stored, size = cursor.execute(
            f"SELECT count(*), sum(octet_length(body)), sum(pg_column_size(body)), "
            f"pg_total_relation_size('{table}') FROM {table}"
        ).fetchone()
        ids = random.Random(13).sample(range(FIRST, FIRST + sample), 2000)
        started = time.perf_counter()
        for chunk in range(0, len(ids), 50):
            cursor.execute(f"SELECT length(body) FROM {table} WHERE request_id = ANY(%s)", (ids[chunk:chunk + 50],))
            cursor.fetchall()
        read_us = (time.perf_counter() - started) * 1e6 / len(ids)
        print(f"  {method}: {rows:,} bodies of {raw / rows:,.0f} B on average, stored as {stored / rows:,.0f} B "
              f"({stored / raw:.0%}); table + TOAST + key {size / rows:,.0f} B per call; "
              f"{seconds / rows * 1e6:.0f} us per call to write, {read_us:.0f} us per body read")


def sizes(cursor: psycopg.Cursor) -> None:
    for (table,) in cursor.execute(
        "SELECT relname FROM pg_stat_user_tables WHERE relname IN ('requests', 'responses', 'search_docs', 'sessions') "
        "ORDER BY relname"
    ).fetchall():
        heap, total, live, dead, vacuum = cursor.execute(
            "SELECT pg_relation_size(relid), pg_total_relation_size(relid), n_live_tup, n_dead_tup, "
            "greatest(last_vacuum, last_autovacuum) FROM pg_stat_user_tables WHERE relname = %s", (table,)
        ).fetchone()
        print(f"  {table:<12} heap {heap / 2**30:6.2f} GiB  total {total / 2**30:6.2f} GiB  live {live:>11,}  "
              f"dead {dead:>10,}  last vacuum {vacuum}")


def clean(cursor: psycopg.Cursor) -> None:
    for table in ("p_requests", "p_responses", "bodies_pglz", "bodies_lz4", "slim_requests", "conversation_pglz",
                  "conversation_lz4"):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("partitions-copy", "partitions-drop", "bodies", "conversations", "sizes",
                                         "clean"))
    parser.add_argument("--database", default="provider_router_bench13")
    parser.add_argument("--sample", type=int, default=1_000_000)
    args = parser.parse_args()
    with _connect(args.database) as connection, connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        if args.step == "partitions-copy":
            partitions_copy(cursor)
        elif args.step == "partitions-drop":
            partitions_drop(cursor, args.database)
        elif args.step == "bodies":
            bodies(cursor, args.sample)
        elif args.step == "conversations":
            conversations(cursor, args.sample)
        elif args.step == "sizes":
            sizes(cursor)
        else:
            clean(cursor)


if __name__ == "__main__":
    main()
