# Attune: every command a person or CI needs. `make test` and `make demo` do all set-up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.8
PY := .venv/bin/python
PYTEST_ARGS ?=
export UV_LINK_MODE := copy

.PHONY: help setup up down status test test-unit test-faults bench soak lint format clean-data demo run asyncapi

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

uv-installed:
	@command -v uv >/dev/null 2>&1 || { echo "[setup] installing uv $(UV_VERSION) from PyPI"; \
	  python3 -m pip install --quiet "uv==$(UV_VERSION)"; }

setup: uv-installed ## Python environment, Kafka jars, the FerretDB build, Debian's PostgreSQL 15 (the local store under FerretDB), chromium and the console's npm assets (idempotent, cached)
	@uv sync --frozen --quiet
	@deploy/infra.sh setup
	@deploy/install-prometheus.sh
	@services/console/install-chromium.sh
	@[ services/console/node_modules/.package-lock.json -nt services/console/package-lock.json ] || \
	  npm ci --prefix services/console --no-audit --no-fund --silent

up: setup ## start Kafka and FerretDB locally (nothing local when pointed elsewhere)
	@deploy/infra.sh up

down: ## stop the local Kafka and FerretDB
	@deploy/infra.sh down

status: ## what local infrastructure runs
	@deploy/infra.sh status

test: lint up ## the lint checks and architecture contracts, then the whole test suite against a real broker and store, then stop them
	@set +e; $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; deploy/infra.sh down; \
	  if [ $$rc -eq 0 ]; then echo "make test: all green"; else echo "make test: FAILED (pytest exit $$rc)"; fi; exit $$rc

demo: up ## the whole system on a simulated clinic network, a report, then stop everything
	@set +e; .venv/bin/attune demo $(DEMO_ARGS); rc=$$?; deploy/infra.sh down; exit $$rc

run: up ## infrastructure and the four services in the foreground; Ctrl-C stops everything
	@trap 'deploy/infra.sh down' EXIT; .venv/bin/attune run

bench: up ## throughput, alert latency, memory, scale-out vs the raw limit and a naive design (BENCH_ARGS=...)
	@set +e; .venv/bin/attune bench $(BENCH_ARGS); rc=$$?; deploy/infra.sh down; exit $$rc

soak: up ## paced load for 30 minutes with a fault every few minutes; RSS, fds and lag must stay flat (SOAK_ARGS=...)
	@set +e; .venv/bin/attune soak $(SOAK_ARGS); rc=$$?; deploy/infra.sh down; exit $$rc

asyncapi: setup ## regenerate docs/asyncapi/*.json from the services' code
	@.venv/bin/attune asyncapi

test-faults: up ## only the fault-injection suite (crashes, restarts, outages, scale-out, poison) on the real stack
	@set +e; $(PY) -m pytest -m faults -s $(PYTEST_ARGS); rc=$$?; deploy/infra.sh down; exit $$rc

test-unit: setup ## only the fast tests (no infrastructure)
	@$(PY) -m pytest -m unit $(PYTEST_ARGS)

lint: setup ## ruff (lint and format check), mypy and the architecture contracts (import-linter, pyproject.toml)
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy
	@.venv/bin/lint-imports --no-cache --no-logo

format: setup ## apply ruff's formatting and safe fixes
	@.venv/bin/ruff check --fix .
	@.venv/bin/ruff format .

clean-data: ## stop and delete local broker and store data (var/)
	@deploy/infra.sh reset
