# Two commands do all set-up on a fresh Debian machine with Python 3.11 and Node 20:
#   make run   - install, build the UI, migrate, seed the demo district, serve on :8080
#   make test  - install test dependencies, start what the tests need, run every test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
UI := web/ui
PYTEST_ARGS ?=
# Test workers (pytest-xdist): one per CPU, at most 4. Each worker has its own databases,
# servers and browser; TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)
SHELL := /bin/bash

.PHONY: run test lint format ui serve clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "CloudWindow needs Python 3.11 (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { apt-get update && apt-get install -y python3-venv && \
	  $(PYTHON) -m venv $(VENV); }
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

# The web UI: npm packages from the lock file (reinstalled when it changes), then a build
# whenever a source file is newer than the last one.
UI_SRC := $(shell find $(UI)/src $(UI)/index.html $(UI)/vite.config.ts $(UI)/tsconfig.json $(UI)/package.json \
  -type f 2>/dev/null)

$(UI)/node_modules/.installed: $(UI)/package-lock.json
	cd $(UI) && npm ci --no-audit --no-fund
	touch $@

$(UI)/dist/index.html: $(UI)/node_modules/.installed $(UI_SRC)
	cd $(UI) && npm run build

# The same UI with the hooks the browser tests read (window.__cw); the tests serve this one.
$(UI)/dist-e2e/index.html: $(UI)/node_modules/.installed $(UI_SRC)
	cd $(UI) && npm run build:e2e

ui: $(UI)/dist/index.html

# Debian's Chromium (and CJK fonts for the screenshots) for the browser tests; Playwright
# drives it and never downloads a browser of its own.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then s=; else s=sudo; fi; \
	  $$s apt-get update -qq && $$s apt-get install -y -qq chromium fonts-noto-cjk

run: $(VENV)/.installed ui
	$(VENV)/bin/cloudwindow demo

serve: $(VENV)/.installed
	$(VENV)/bin/cloudwindow serve

# ruff, then the layer contracts in pyproject.toml ([tool.importlinter]).
lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The suite runs on TEST_WORKERS workers under coverage.py (branch coverage of the test
# processes, gathered by pytest-cov; the servers that tests start as processes are not
# measured). The least covered modules and the total are printed as a figure, not a gate;
# pytest's own summary line is repeated last. --durations names the slowest tests.
# pytest exits 5 when it collected nothing; that is reported, not hidden, but is not a failure.
test: lint ui $(UI)/dist-e2e/index.html $(CHROMIUM)
	@mkdir -p test-artifacts
	set -o pipefail; $(PY) -m pytest -n $(TEST_WORKERS) --cov --cov-report= --durations=15 \
	  $(PYTEST_ARGS) 2>&1 \
	  | tee test-artifacts/pytest.log; rc=$$?; \
	  echo "--- branch coverage: the 15 least covered modules, and the total"; \
	  $(PY) -m coverage report --sort=cover --skip-empty 2>/dev/null \
	    | awk 'NR<=2 || /^TOTAL/ {print; next} n<15 && !/^-/ {print; n++}'; \
	  grep -E '^=+ .*(passed|failed|error|no tests ran).* in [0-9.]+s' test-artifacts/pytest.log \
	    | tail -n 1; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .coverage $(UI)/dist $(UI)/dist-e2e
