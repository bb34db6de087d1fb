"""MODEL_PRICES: the price table of usage reports, inline or from a file, checked at start-up."""

from __future__ import annotations

import json

import pytest

from app.config import ConfigError, ModelPrice, Settings


def prices(value: str) -> dict:
    return dict(Settings.from_env({"DATABASE_URL": "sqlite:///x.db", "MODEL_PRICES": value}).model_prices)


def test_unset_means_no_prices():
    assert Settings.from_env({"DATABASE_URL": "sqlite:///x.db"}).model_prices == {}


def test_inline_json():
    assert prices('{"openai/gpt-4o": {"prompt": 2.5, "completion": 10}}') == {
        "openai/gpt-4o": ModelPrice(prompt=2.5, completion=10.0)
    }


def test_a_json_file(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"qwen": {"prompt": 0, "completion": 0.5}}))
    assert prices(str(path)) == {"qwen": ModelPrice(prompt=0.0, completion=0.5)}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"m": {"prompt": 1}}', "must be"),
        ('{"m": {"prompt": -1, "completion": 1}}', ">= 0"),
        ('{"m": {"prompt": true, "completion": 1}}', ">= 0"),
        ('{"m": {"prompt": "1", "completion": 1}}', ">= 0"),
        ('{" ": {"prompt": 1, "completion": 1}}', "must be"),
        ("/no/such/prices.json", "cannot be read"),
    ],
)
def test_a_bad_table_stops_start_up_naming_the_variable(value, says):
    with pytest.raises(ConfigError) as raised:
        prices(value)
    assert "MODEL_PRICES" in str(raised.value)
    assert says in str(raised.value)
