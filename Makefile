# The two commands: `make run` (everything embedded, one process) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST := $(PY) -m pytest

.PHONY: run test test-unit test-integration test-e2e bench-console test-fault infra-up infra-down lint run-distributed \
        bench-intake bench-sla bench-knowledge bench-e2e soak clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

## make run: the whole system in one process (SQLite, in-process bus, demo data)
run: $(STAMP)
	$(PY) -m hotline

## make test: unit tests, integration tests on a real PostgreSQL and Kafka, browser tests
test: test-unit test-integration test-e2e

# The unit tests are independent (each has its own SQLite files and clock): two workers.
UNIT_WORKERS ?= 2
# A unit test that hangs (seen once, 2026-12-04: a worker idle for 20 minutes in an event
# loop's teardown) fails after 5 minutes with every thread's stack, instead of stalling CI.
test-unit: $(STAMP)
	$(PYTEST) tests/unit -q -n $(UNIT_WORKERS) --timeout 300

# The scripts start PostgreSQL and Kafka (or check the ones HOTLINE_PG_URL /
# HOTLINE_KAFKA_BOOTSTRAP name) and print their addresses for the tests.
test-integration: $(STAMP)
	@set -euo pipefail; \
	eval "$$(scripts/postgres.sh start)"; \
	eval "$$(scripts/kafka.sh start)"; \
	export HOTLINE_TEST_PG_URL="$$HOTLINE_PG_URL" HOTLINE_TEST_KAFKA="$$KAFKA_BOOTSTRAP"; \
	$(PYTEST) tests/integration -q --durations=10

# The console in Debian's chromium (apt-get install chromium), driven by Playwright.
test-e2e: $(STAMP)
	$(PYTEST) tests/e2e -q

## make test-fault: faults under load (>= 5,000 tickets): processes SIGKILLed, Kafka stopped,
## PostgreSQL restarted, instances joining and crashing — on PRIVATE PostgreSQL/Kafka
## instances (other ports, another run dir), never the shared ones. Prints its figures.
test-fault: $(STAMP)
	$(PYTEST) tests/fault -q -s

infra-up:
	@scripts/postgres.sh start && scripts/kafka.sh start

infra-down:
	-@scripts/kafka.sh stop
	-@scripts/postgres.sh stop

## make run-distributed: every service as its own process on PostgreSQL and Kafka
run-distributed: $(STAMP)
	scripts/run-distributed.sh

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check shared services gateway hotline console tests
	$(PY) -m mypy shared services gateway hotline console

bench-intake: $(STAMP)
	$(PY) bench/intake_embedded.py

## make bench-knowledge: search latency over 100,000 entries on PostgreSQL (JSON)
bench-knowledge: $(STAMP)
	$(PY) bench/knowledge_search.py

## make bench-e2e: the distributed mode end to end (gateway + 5 services, PostgreSQL,
## Kafka): accepted/s, end-to-end/s, latency, CPU per ticket, lost/duplicated counts (JSON).
## BENCH_TICKETS (8000, measured after BENCH_WARMUP 2000) and BENCH_CONCURRENCY (32) set the load.
bench-e2e: $(STAMP)
	$(PY) bench/e2e.py

## make soak: 100,000 tickets at a steady rate with a short outbox retention; prints JSON with
## every table's rows and bytes sampled over time, and whether the outboxes, inboxes, dead
## letters and Idempotency-Keys stay flat. SOAK_TICKETS, SOAK_RATE, SOAK_MINUTES (bench/soak.py).
soak: $(STAMP)
	$(PY) bench/soak.py

## make bench-sla: 1,000,000 open clocks, 10,000 due in one second (PostgreSQL + Kafka)
bench-sla: $(STAMP)
	$(PY) bench/sla_overdue.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

## make bench-console: server time of each console page with 100,000 tickets (JSON)
bench-console: $(STAMP)
	$(PY) bench/console_pages.py
