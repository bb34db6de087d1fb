# make run: set up and start the gateway on SQLite.  make test: set up and run the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: run test lint bench bench-relay install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/alembic upgrade head
	$(BIN)/gunicorn wsgi:app

test: install-test
	$(BIN)/ruff check app tests bench
	$(BIN)/pytest -n 2 --dist loadgroup

lint: install-test
	$(BIN)/ruff check app tests bench

bench: install-test
	$(BIN)/python bench/gateway_bench.py

bench-relay: install-test
	$(BIN)/python bench/relay_bench.py

clean:
	rm -rf $(VENV) *.egg-info
