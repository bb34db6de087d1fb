"""Reading the original's loosely typed values: kept when possible, noted when repaired."""

from __future__ import annotations

import json

import pytest

from app.services.legacy.rows import status_of, v2_request
from app.services.legacy.values import integer, millis, text


@pytest.mark.parametrize(
    ("value", "seconds", "expected", "noted"),
    [
        (1_761_869_496, True, 1_761_869_496_000, False),
        (1_761_869_496.5, True, 1_761_869_496_500, False),
        ("1761869496", True, 1_761_869_496_000, False),
        (1_761_869_496_793, True, 1_761_869_496_793, True),  # v1 row already in ms
        (1_761_869_496_793, False, 1_761_869_496_793, False),
        (1_761_869_496, False, 1_761_869_496_000, True),  # v2 row in seconds
        ("2025-10-31 00:00:00", True, 1_761_868_800_000, False),  # SQLite CURRENT_TIMESTAMP text
        (None, True, 0, True),
        ("yesterday", False, 0, True),
    ],
)
def test_timestamps_become_milliseconds(value, seconds, expected, noted):
    problems: list[str] = []
    assert millis(value, name="created_at", problems=problems, seconds=seconds) == expected
    assert bool(problems) is noted


@pytest.mark.parametrize(
    ("value", "expected", "noted"),
    [(0, 0, False), ("12", 12, False), (True, 1, False), (3.0, 3, False), (None, None, False),
     ("many", None, True), (2**40, None, True)],
)
def test_integers_that_do_not_fit_are_left_empty_and_noted(value, expected, noted):
    problems: list[str] = []
    assert integer(value, name="total_tokens", problems=problems) == expected
    assert bool(problems) is noted


def test_text_postgresql_cannot_hold_is_repaired_and_noted():
    problems: list[str] = []
    assert text("a\x00b", name="error", problems=problems) == "a\ufffdb"
    assert text(b"\xff ok", name="error", problems=problems) == "\ufffd ok"
    assert text(502, name="error", problems=problems) == "502"
    assert len(problems) == 2


@pytest.mark.parametrize(
    ("error", "status_code", "finish_reason", "status"),
    [(None, None, None, "ok"), (None, 200, "stop", "ok"), ("boom", None, None, "error"),
     (None, 429, None, "error"), (None, None, "error", "error"), ("", 399, "length", "ok")],
)
def test_status_is_derived_from_what_the_original_stored(error, status_code, finish_reason, status):
    assert status_of(error=error, status_code=status_code, finish_reason=finish_reason) == status


@pytest.mark.parametrize(
    ("extra", "provider"),
    [({}, "qwen"), ({"provider": "lm-studio"}, "lm-studio")],
)
def test_v2_provider_is_the_column_else_read_from_a_qwen_request_body(extra, provider):
    qwen = json.dumps({"chat_mode": "guest", "incremental_output": True, "chat_id": "c"})
    row = {"_rowid": 1, "request_id": "r", "qwen_request": qwen, **extra}
    assert v2_request(row).row["provider"] == provider
    assert v2_request({**row, "qwen_request": '{"model": "m"}'} | extra).row["provider"] == (
        extra.get("provider", "unknown")
    )
