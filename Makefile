# Two entry points: `make run` (set up, then simulate the default scenario) and `make test`.
# `make run` installs what running needs; `make test` adds the test extras (pytest, hypothesis,
# ruff, playwright). The virtual environment is created with Python >= 3.12 (.python-version
# selects pyenv's 3.12).
PYTHON ?= $(shell command -v python3.12 2>/dev/null || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: setup setup-test run test lint bench docs clean browser

setup: $(STAMP)
setup-test: $(TEST_STAMP)

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "Python >= 3.12 needed, found " + sys.version.split()[0] + ": install it or pass PYTHON=/path/to/python3.12")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(TEST_STAMP)

run: $(STAMP)
	$(BIN)/flexmarkets run $(ARGS)

test: $(TEST_STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# The browser test drives Debian's Chromium (Playwright's own browser download is not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: sudo apt-get install chromium (needed by the browser test)"; exit 1; fi; }

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/year.py $(ARGS)

# docs/outputs.md is generated from experiments/dictionary.py (the tests check it is current)
docs: $(STAMP)
	$(BIN)/python -m experiments.dictionary > docs/outputs.md

clean:
	rm -rf $(VENV) build *.egg-info
