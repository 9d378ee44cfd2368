# Dropout, Hands-On. Two commands matter: `make book` (build the course) and `make test`.
# Both create .venv on first use (Python 3.11+, pip) and reinstall only when requirements change.

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# nbgrader and jupyter find their helpers (alembic, kernels) on PATH.
RUN := PATH="$(BIN):$$PATH" PYTHONNOUSERSITE=1

.PHONY: setup book test lint lab bench clean release autograde feedback audit

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

# Graded assignments (nbgrader; see book/instructors.md). Run in the course directory.
# release: regenerate exercises/ from solutions/ (outputs cleared, solutions and hidden tests
# removed) and record each assignment in gradebook.db. --force replaces an existing release.
release: $(STAMP)
	$(RUN) nbgrader generate_assignment "*" --force

# autograde: every submission in submitted/<student>/<assignment>/ not graded yet (new students
# join the gradebook), in JOBS worker processes (default: the number of cores) with a progress bar
# and a summary (graded, failed, timed out); each worker grades into its own copy of gradebook.db
# and each finished submission is merged into gradebook.db (src/dropout_grading/parallel.py).
# JOBS=1 runs nbgrader autograde itself. AUTOGRADE_ARGS=--force regrades everything.
autograde: $(STAMP)
	$(RUN) python -m dropout_grading.parallel $(if $(JOBS),--jobs $(JOBS)) $(AUTOGRADE_ARGS)

feedback: $(STAMP)
	$(RUN) nbgrader generate_feedback "*" $(FEEDBACK_ARGS)

# audit: rerun the checks of every submitted assignment out of process; exits non-zero if any
# autograde score differs from the audit's.
audit: $(STAMP)
	@status=0; for assignment in $(sort $(notdir $(wildcard submitted/*/*))); do \
		$(RUN) python -m dropout_grading.audit --assignment $$assignment || status=1; \
	done; exit $$status
