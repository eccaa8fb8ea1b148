# zoolab — two commands on a fresh machine:
#   make run    create .venv, install, start server + worker on runs.db, print the URL
#   make test   install what the tests need (Chromium for the browser tests), run them all
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(abspath ../shared/data)

.PHONY: run test install install-test system-deps clean

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

install-test: $(VENV)/.stamp-test system-deps

# Debian packages the tests use: Chromium for the browser tests (no browser download is
# possible offline), Fashion-MNIST, the third dataset, and PostgreSQL's server binaries
# (the tests start a throwaway cluster of their own: tests/postgres.py).
SYSTEM_DEPS := chromium dataset-fashion-mnist postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@missing=""; for p in $(SYSTEM_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi

run: install
	$(BIN)/zoolab serve

test: install-test
	ZOOLAB_DATA_DIR=$${ZOOLAB_DATA_DIR:-$(DATA_DIR)} ZOOLAB_DOWNLOAD=false $(BIN)/python -m pytest -q -ra

clean:
	rm -rf $(VENV) runs.db runs.db-* artifacts test-artifacts
