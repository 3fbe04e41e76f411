# spendstream — the two commands a newcomer needs: `make run` and `make test`.
# Both need everything: the SDK, the worker extra and the embedded broker + chDB (`.[all,dev]`).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_WORKERS ?= 3

.PHONY: run test check lint typecheck bench docs install clean focus-validator

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

## The FinOps FOCUS validator in a virtualenv of its own (its numpy/pandas pins clash with ours).
FOCUS_STAMP := .venv-focus/.installed
$(FOCUS_STAMP): tests/support/focus-validator.txt $(STAMP)
	$(BIN)/python -c 'from tests.support.focus_validator import ensure_validator; ensure_validator()'

focus-validator: $(FOCUS_STAMP)

## Broker + worker + ClickHouse dir + demo traffic on this machine (Ctrl-C to stop).
run: $(STAMP)
	$(BIN)/spendstream dev --demo

## The whole suite: lint, types, then unit and integration tests (real Tansu, chDB, SMTP, HTTP).
test: $(STAMP) $(FOCUS_STAMP)
	@# The dashboard's browser tests drive Debian's chromium (Playwright's download is not used).
	@test -x /usr/bin/chromium || ! command -v apt-get >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/ruff check spendstream tests bench tools
	$(BIN)/ruff format --check spendstream tests bench tools
	$(BIN)/mypy
	$(BIN)/mypy tools bench
	@# Three workers: most tests wait on real processes (broker, worker, chDB), not on a core.
	@# (`make test TEST_WORKERS=4` to try more: at 3 the suite keeps ~1.5 of 2 cores busy, an estimate:
	@# docs/testing.md, session 13.)
	@# --maxschedchunk=1: tests are handed out one or two at a time in collection order (longest
	@# first, tests/conftest.py), instead of a consecutive quarter of the suite to each worker.
	$(BIN)/pytest -q -ra -n $(TEST_WORKERS) --maxschedchunk=1 --durations=25

## The inner loop: lint, types and the logic tests: no process started, no chDB (docs/testing.md).
check: $(STAMP)
	$(BIN)/ruff check spendstream tests bench tools
	$(BIN)/ruff format --check spendstream tests bench tools
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not integration and not storage" -n 2 -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check spendstream tests bench tools
	$(BIN)/ruff format --check spendstream tests bench tools

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy tools bench

bench: $(STAMP)
	$(BIN)/python -m bench

## The reference site on http://127.0.0.1:8000 (reference pages generated from the code).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

clean:
	rm -rf $(VENV) .venv-focus data build site *.egg-info
