# The two commands of the README:  `make run`  and  `make test`.
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: run test install install-dev system-packages

run: install
	$(BIN)/flask --app wsgi serve --demo

# Two pytest workers (pytest-xdist), a test file each at a time: most tests wait on servers and
# processes, so one run kept one of the two cores idle. TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 2

test: install-dev
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

install: system-packages $(VENV)/.installed

install-dev: install $(VENV)/.installed-dev node_modules/.installed
	@scripts/system-packages.sh test

system-packages:
	@scripts/system-packages.sh

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# axe-core for the browser tests' accessibility checks (tests/gateway/test_console_layout.py).
node_modules/.installed: package.json package-lock.json
	@scripts/system-packages.sh test
	npm ci --no-audit --no-fund
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@
