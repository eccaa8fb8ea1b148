# zoolab — two commands on a fresh machine:
#   make run    create .venv, install, check the datasets, start server + worker on runs.db, print the URL
#   make test   install what the tests need (Chromium for the browser tests), check the datasets, run them all
# Both look for the datasets by the one data rule (README, Settings); `zoolab data` fetches missing
# ones, or stops at once saying which files are missing, where it looked and what to do.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

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
	$(BIN)/zoolab data mnist cifar10
	$(BIN)/zoolab serve

test: install-test
	$(BIN)/zoolab data mnist cifar10 fashion-mnist
	$(BIN)/python -m pytest -q -ra

clean:
	rm -rf $(VENV) runs.db runs.db-* artifacts test-artifacts
