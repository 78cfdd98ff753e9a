# Two commands on a fresh machine: `make dev` runs everything, `make test` tests everything.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: dev test install services lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## web + Celery worker + beat + Flower on the embedded default (SQLite file, filesystem broker),
## scrape-ready: /metrics and /status behind the token kept in .jobbridge/metrics_token.
## Options through DEV_ARGS, e.g. make dev DEV_ARGS="--port 8001 --flower-port 5556"
dev: install
	$(VENV)/bin/jobbridge dev $(DEV_ARGS)

## Redis, PostgreSQL and RabbitMQ up, then lint, types, import layers and the whole suite
test: install services lint
	$(PY) -m pytest

services:
	bash scripts/ensure-services.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: install services
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) bench/enqueue.py
	$(PY) bench/bulk.py
	$(PY) bench/migrate.py
	$(PY) bench/listing.py
	$(PY) bench/receivers.py

clean:
	rm -rf $(VENV) .jobbridge .mypy_cache .pytest_cache .ruff_cache
