"""Which parts of a search pg_trgm's index should look up: the rare ones.

pg_trgm's GIN index answers ``body LIKE '%ticket-123456%'`` by intersecting the posting lists of
every trigram of the pattern. It walks the rarest list and, for each call found there, looks up
the others, so a trigram most calls hold (``tic``, ``ket`` when every call says "ticket") costs
a read of most of its posting list: 21,000 pages and ~400 ms at 10 million calls, against 10 ms
for the number alone. So the index is asked only about the runs of a term's trigrams that few
calls hold, and each candidate's text is then checked for the whole term.

Which trigrams are common is measured on a sample of the indexed text (pg_trgm's ``show_trgm``,
a few thousand calls, read again every few minutes). Only ever a question of speed: the whole
of every term is still checked, whatever the sample says.
"""

from __future__ import annotations

import re
import time

from sqlalchemy.orm import Session

from app.services.search.index import accelerated
from app.services.search.query import TRIGRAM

SAMPLE_ROWS = 2_000  # calls read to estimate how common each trigram is
MIN_SAMPLE = 200  # fewer calls indexed: every term goes to the index whole (any plan is fast)
COMMON_SHARE = 0.05  # a trigram held by more calls than this is "common"
REFRESH_S = 600.0
_WORD = re.compile(r"[^\W_]+")  # pg_trgm's words: runs of letters and digits
_cache: dict[str, tuple[float, frozenset[str]]] = {}  # database -> (until when, its common trigrams)


def common_trigrams(db: Session) -> frozenset[str]:
    """The trigrams held by more than COMMON_SHARE of the indexed calls (empty: not known or not needed)."""
    key = db.get_bind().url.render_as_string(hide_password=True)
    now = time.monotonic()
    cached = _cache.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    common = _measure(db)
    _cache[key] = (now + REFRESH_S, common)
    return common


def _measure(db: Session) -> frozenset[str]:
    connection = db.connection()
    if not accelerated(connection):  # no trigram index: nothing to spare it
        return frozenset()
    rows = connection.exec_driver_sql(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass('search_docs')"
    ).scalar()
    if not rows or rows < MIN_SAMPLE:  # -1 or 0: never analysed (a young table), or too few
        rows = connection.exec_driver_sql("SELECT count(*) FROM (SELECT 1 FROM search_docs LIMIT %(n)s) s",
                                          {"n": MIN_SAMPLE}).scalar()
        if rows < MIN_SAMPLE:
            return frozenset()
    percent = min(100.0, 100.0 * SAMPLE_ROWS * 1.5 / rows)
    sampled = connection.exec_driver_sql(
        "SELECT show_trgm(body) FROM search_docs TABLESAMPLE SYSTEM (%(percent)s) LIMIT %(rows)s",
        {"percent": percent, "rows": SAMPLE_ROWS},
    ).scalars().all()
    if len(sampled) < MIN_SAMPLE:
        return frozenset()
    counts: dict[str, int] = {}
    for trigrams in sampled:
        for trigram in trigrams:
            counts[trigram] = counts.get(trigram, 0) + 1
    floor = COMMON_SHARE * len(sampled)
    return frozenset(trigram for trigram, n in counts.items() if n > floor)


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
