# zoolab — two commands on a fresh machine:
#   make run    create .venv, install, start server + worker on runs.db, print the URL
#   make test   install what the tests need (Chromium for the browser tests), run them all
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(abspath ../shared/data)

.PHONY: run test install install-test browser bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.stamp-install: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.stamp-test: pyproject.toml $(VENV)/.stamp-install
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.stamp-install

install-test: $(VENV)/.stamp-test browser

# Browser tests drive Debian's Chromium (no browser download is possible offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }

run: install
	$(BIN)/zoolab serve

test: install-test
	ZOOLAB_DATA_DIR=$${ZOOLAB_DATA_DIR:-$(DATA_DIR)} ZOOLAB_DOWNLOAD=false $(BIN)/python -m pytest -q -ra

clean:
	rm -rf $(VENV) runs.db runs.db-* artifacts test-artifacts
