"""Which parts of a search pg_trgm's index should look up: the rare ones.

pg_trgm's GIN index answers ``body LIKE '%ticket-123456%'`` by intersecting the posting lists of
every trigram of the pattern. It walks the rarest list and, for each call found there, looks up
the others, so a trigram most calls hold (``tic``, ``ket`` when every call says "ticket") costs
a read of most of its posting list: 21,000 pages and ~400 ms at 10 million calls, against 10 ms
for the number alone. So the index is asked only about the runs of a term's trigrams that few
calls hold, and each candidate's text is then checked for the whole term.

Which trigrams are common is measured on a sample of the indexed text (pg_trgm's ``show_trgm``
over 1,000 calls, in the background, again every 10 minutes per worker). Only ever a question of
speed: the whole of every term is still checked, whatever the sample says.
"""

from __future__ import annotations

import logging
import re
import threading
import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from app.services.search.index import accelerated
from app.services.search.query import TRIGRAM

SAMPLE_ROWS = 1_000  # calls read to estimate how common each trigram is
SAMPLE_CHARS = 2_000  # of each call's text
MIN_SAMPLE = 200  # fewer calls indexed: every term goes to the index whole (any plan is fast)
COMMON_SHARE = 0.05  # a trigram held by more calls than this is "common"
REFRESH_S, RETRY_S = 600.0, 60.0
_WORD = re.compile(r"[^\W_]+")  # pg_trgm's words: runs of letters and digits
_cache: dict[str, tuple[float, frozenset[str]]] = {}  # database -> (until when, its common trigrams)
_refreshing: set[str] = set()
log = logging.getLogger(__name__)

# pg_trgm's own extraction (show_trgm) of a sample's text, counted in the database; trigrams
# with a space pad a word's ends, which a term's inner parts never look up.
_COMMON_SQL = """
WITH sample AS MATERIALIZED (
    SELECT left(body, %(chars)s) AS body FROM search_docs TABLESAMPLE SYSTEM (%(percent)s) LIMIT %(rows)s
)
SELECT (SELECT count(*) FROM sample), array(
    SELECT t FROM sample, unnest(show_trgm(body)) t WHERE strpos(t, ' ') = 0
    GROUP BY t HAVING count(*) > %(share)s * (SELECT count(*) FROM sample)
)
"""


def common_trigrams(db: Session) -> frozenset[str]:
    """The trigrams held by more than COMMON_SHARE of the indexed calls, as last measured.

    Never waits: a stale or missing measure is taken again in the background (~0.1-0.3 s of the
    database's time), and until it lands the terms go to the index whole (empty set).
    """
    bind = db.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    key = engine.url.render_as_string(hide_password=True)
    cached = _cache.get(key)
    if (cached is None or cached[0] <= time.monotonic()) and key not in _refreshing:
        _refreshing.add(key)
        threading.Thread(target=refresh, args=(engine,), name="search-trigrams", daemon=True).start()
    return frozenset() if cached is None else cached[1]


def refresh(engine: Engine) -> frozenset[str]:
    """Measure the common trigrams now and keep them for REFRESH_S (a failure: the old ones, RETRY_S)."""
    key = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            common = measure(connection)
        _cache[key] = (time.monotonic() + REFRESH_S, common)
        return common
    except sa.exc.SQLAlchemyError as exc:
        log.warning("content search: could not sample the indexed text (%s); trying again in %.0f s",
                    exc.__class__.__name__, RETRY_S)
        old = _cache.get(key, (0.0, frozenset()))[1]
        _cache[key] = (time.monotonic() + RETRY_S, old)
        return old
    finally:
        _refreshing.discard(key)


def measure(connection: Connection) -> frozenset[str]:
    """The common trigrams of a sample of the indexed text (empty: no trigram index, or too few calls)."""
    if connection.dialect.name != "postgresql" or not accelerated(connection):
        return frozenset()
    rows = connection.exec_driver_sql(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass('search_docs')"
    ).scalar()
    # SYSTEM samples whole pages: ask for half again as many rows as needed, keep the first. A
    # table never analysed (-1) or small is read from its start, up to SAMPLE_ROWS.
    percent = min(100.0, 100.0 * SAMPLE_ROWS * 1.5 / rows) if rows and rows > 0 else 100.0
    sampled, common = connection.exec_driver_sql(_COMMON_SQL, {
        "chars": SAMPLE_CHARS, "percent": percent, "rows": SAMPLE_ROWS, "share": COMMON_SHARE,
    }).one()
    return frozenset(common) if sampled >= MIN_SAMPLE else frozenset()


def rare_parts(terms: tuple[str, ...], common: frozenset[str]) -> tuple[str, ...] | None:
    """Substrings of ``terms`` whose trigrams are all rare, for the index; None: look up the terms whole.

    A word's consecutive rare trigrams make one substring (``%ticketing%`` -> ``%etin%`` when
    only ``eti`` and ``tin`` are rare). None when no term has a rare trigram (every match is
    common anyway), or nothing is known about the text.
    """
    if not common:
        return None
    parts: list[str] = []
    for term in terms:
        for word in _WORD.findall(term):
            run_start = None
            for i in range(len(word) - TRIGRAM + 1):
                rare = word[i:i + TRIGRAM] not in common
                if rare and run_start is None:
                    run_start = i
                if not rare and run_start is not None:
                    parts.append(word[run_start:i + TRIGRAM - 1])
                    run_start = None
            if run_start is not None:
                parts.append(word[run_start:])
    unique = tuple(dict.fromkeys(parts))
    return unique or None
