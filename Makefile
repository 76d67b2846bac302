# Two commands matter: `make run` and `make test` (see README.md).
SHELL := /bin/bash
# The first interpreter that really runs and is 3.11+ (version-manager shims may exist but fail).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# Style, formatting, types and the import boundaries of .importlinter (layers, apps' public faces).
LINT := $(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy . \
	&& $(VENV)/bin/lint-imports --no-cache

.PHONY: run test lint format bench clean

$(VENV)/bin/python:
	@test -n "$(PYTHON)" || { echo "LeadPulse needs Python 3.11+ (python3 not found or too old)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

$(VENV)/.run-deps: requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install -q --no-compile -r requirements.txt
	@touch $@

$(VENV)/.test-deps: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install -q --no-compile -r requirements-dev.txt
	@touch $@ $(VENV)/.run-deps

## Start everything: embedded (SQLite, in-process worker and beat, development settings) unless
## DATABASE_URL/REDIS_URL are set: then the Procfile topology on production settings (needs DJANGO_SECRET_KEY).
run: $(VENV)/.run-deps
	@if [ -n "$$DATABASE_URL$$REDIS_URL" ]; then \
		export DJANGO_SETTINGS_MODULE=leadpulse.settings.production; \
		$(PY) manage.py migrate --noinput && $(PY) manage.py collectstatic --noinput -v0 && $(PY) manage.py seed_demo || exit 1; \
		echo "Procfile topology (web, worker, beat), production settings, at http://127.0.0.1:$(PORT)/ (plain HTTP needs DJANGO_SECURE_SSL_REDIRECT=false)"; \
		PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho -f Procfile start -p $(PORT) web worker beat; \
	else \
		export DJANGO_SETTINGS_MODULE=leadpulse.settings.local; \
		$(PY) manage.py migrate --noinput && $(PY) manage.py seed_demo && $(PY) manage.py runembedded --port $(PORT); \
	fi

# Browser tests drive Debian's Chromium through Playwright (no browser download).
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "Install Chromium at $(CHROMIUM) for the browser tests"; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

## Install test dependencies, lint (style, types, import boundaries) and run the whole suite (needs PostgreSQL and Redis).
## Three processes at once: the main pytest session (servers, workers, browsers: it waits on them a lot), and beside
## it, at a lower CPU priority, the lint and a second session of the in-process modules (tests/conftest.py's
## IN_PROCESS_MODULES, on a test database and Redis database of its own). Their output follows the main session's.
## (No recursive make in the recipe: `make -n test` must print it, not run it.)
test: $(VENV)/.test-deps $(CHROMIUM)
	@mkdir -p test-artifacts
	@nice -n 10 bash -c 'set -x; $(LINT)' > test-artifacts/lint.log 2>&1 & lint=$$!; \
	LEADPULSE_TEST_SESSION=inprocess nice -n 10 $(VENV)/bin/pytest -m in_process -p no:cacheprovider \
		> test-artifacts/in-process-tests.log 2>&1 & inprocess=$$!; \
	$(VENV)/bin/pytest -m "not in_process"; main=$$?; \
	wait $$inprocess; inprocess_status=$$?; wait $$lint; lint_status=$$?; \
	echo "=== in-process tests (second session, exit $$inprocess_status) ==="; cat test-artifacts/in-process-tests.log; \
	echo "=== lint (exit $$lint_status) ==="; cat test-artifacts/lint.log; \
	echo "=== main session exit $$main, in-process session exit $$inprocess_status, lint exit $$lint_status ==="; \
	test $$main -eq 0 -a $$inprocess_status -eq 0 -a $$lint_status -eq 0

## Style, formatting, types and the import boundaries of .importlinter (layers, apps' public faces).
lint: $(VENV)/.test-deps
	$(LINT)

format: $(VENV)/.test-deps
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

bench: $(VENV)/.test-deps
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
