# Dropout, Hands-On. Two commands matter: `make book` (build the course) and `make test`.
# Both create .venv on first use (Python 3.11+, pip) and reinstall only when requirements change.

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# nbgrader and jupyter find their helpers (alembic, kernels) on PATH.
RUN := PATH="$(BIN):$$PATH" PYTHONNOUSERSITE=1

.PHONY: setup book test lint lab bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

book: $(STAMP)
	$(RUN) jupyter-book build . -W -n --keep-going
	@echo "The course is built: open file://$(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(RUN) ruff check src tests bench
	$(RUN) python -m pytest

lint: $(STAMP)
	$(RUN) ruff check src tests bench
	$(RUN) ruff format --check src tests bench

lab: $(STAMP)
	$(RUN) jupyter lab

bench: $(STAMP)
	$(RUN) python bench/bench_dropout.py $(BENCH_ARGS)

clean:
	rm -rf _build .pytest_cache .ruff_cache
