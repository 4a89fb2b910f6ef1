# The compendium's pipeline: environment -> synthetic data -> per-city steps
# (papermill) -> book. `make help` lists the targets.
#
#   make all              everything, for SIZE=small (default) or SIZE=full
#   make test             lint, unit and end-to-end tests, notebook validation, book
#   make city CITY=utrecht  one city's steps
#
# The rules of the pipeline (data, every city's steps, release bundles, the
# audit and the book) are generated from config/steps.yml x config/cities/*.yml
# into build/<SIZE>/steps.mk by reintegration.pipeline.graph, the graph that
# `python -m reintegration run` (the same pipeline without make) reads too;
# adding a city or a step needs no edit here.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules --no-print-directory
# Two cities' steps at a time by default (the machines have two cores; every
# rule is safe in parallel); `make JOBS=1 ...` or `make -j1 ...` runs one thing
# at a time. Sub-makes share the top make's job slots.
JOBS ?= 2
ifeq ($(MAKELEVEL),0)
ifeq ($(filter -j%,$(MAKEFLAGS)),)
MAKEFLAGS += --jobs=$(JOBS)
endif
endif

SIZE ?= small
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KERNEL := reintegration
VENV_STAMP := $(VENV)/.installed

BUILD := build/$(SIZE)
DATA := synthetic_data/$(SIZE)
RESULTS := book/results
RELEASE := release/$(SIZE)
BOOK_HTML := book/_build/html
BOOK_RECORD := $(BUILD)/book.json
SIZE_STAMP := $(RESULTS)/.size

CITY_FILES := $(sort $(wildcard config/cities/*.yml))
SRC_FILES := $(sort $(shell find src -name '*.py' -not -path '*/__pycache__/*'))
BOOK_SOURCES := book/_config.yml $(sort $(shell find book -name '*.md' \
	-not -path 'book/_build/*' -not -path 'book/results/*' -not -path 'book/_generated/*')) \
	$(sort $(wildcard build/montecarlo/*.json)) $(sort $(wildcard build/montecarlo_advice/*.json))

# One BLAS thread per step: with two cores and `make -j2` (or anything else
# running) threaded BLAS oversubscribes the machine and the estimators slow down.
ONE_THREAD := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

# Goals that need neither the environment nor the generated rules.
LIGHT_GOALS := help clean clean-data distclean venv lock
# Goals that run no step: `make data SIZE=full` leaves the executed notebooks
# of the other size (and so the built book) up to date.
NO_STEP_GOALS := $(LIGHT_GOALS) data bench montecarlo montecarlo-advice kill-check lab
GOALS := $(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))
ifneq ($(filter-out $(LIGHT_GOALS),$(GOALS)),)
include $(BUILD)/steps.mk
endif
# The executed notebooks in book/results/ belong to one SIZE at a time: this
# stamp changes (and so reruns them) only when a goal that runs steps asks for
# another SIZE than the last run.
ifneq ($(filter-out $(NO_STEP_GOALS),$(GOALS)),)
$(shell mkdir -p $(RESULTS) && [ "$$(cat $(SIZE_STAMP) 2>/dev/null)" = "$(SIZE)" ] \
	|| echo "$(SIZE)" > $(SIZE_STAMP))
endif

.PHONY: all help venv lock data notebooks city release audit book pdf test test-pytest test-nbval bench montecarlo montecarlo-advice kill-check templates lab clean clean-data distclean

all: book pdf ## Build everything: environment, data, every city's steps, the book and its PDF
	@echo "Book: file://$(abspath $(BOOK_HTML))/index.html"

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sort \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  Variables: SIZE=small|full (default small), CITY=<name> for 'make city'"

venv: $(VENV_STAMP) ## Create .venv from requirements.lock and register the kernel

# The environment is installed from the lock file requirements.lock: every
# package at one exact version, each file checked against its SHA-256 hash
# (uv pip compile --universal: one lock for Linux, macOS and Windows, Python
# 3.11 to 3.13), then this package itself without dependencies. uv installs in
# parallel: well under a minute on a fresh machine where pip took 100 s.
# Bytecode is compiled at install, as pip does, so imports stay fast where
# PYTHONDONTWRITEBYTECODE is set. `make lock` rewrites the lock files after a
# change of pyproject.toml (uv-overrides.txt says why one package is left out).
LOCK := requirements.lock
LAB_LOCK := requirements-lab.lock
UV_INSTALL := $(PY) -m uv pip install --quiet --compile-bytecode --python $(PY)
UV := $(UV_INSTALL) --override uv-overrides.txt
UV_COMPILE := $(PY) -m uv pip compile --quiet --universal --generate-hashes \
	--override uv-overrides.txt pyproject.toml

$(VENV_STAMP): pyproject.toml $(LOCK) uv-overrides.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check 'uv>=0.9,<1'
	$(UV) --require-hashes -r $(LOCK)
	$(UV_INSTALL) --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (reintegration)"
	@touch $@

lock: ## Rewrite the lock files from pyproject.toml (needs the package index)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check 'uv>=0.9,<1'
	$(UV_COMPILE) --extra test -o $(LOCK)
	$(UV_COMPILE) --extra test --extra lab -c $(LOCK) -o $(LAB_LOCK)

# Generating the rules validates every config file first: a bad key stops
# `make` here, before any work, with one line naming the file and the key.
# The rules follow the templates' and the modules' imports, so they are
# regenerated (cheaply) when a template or a module changes.
$(BUILD)/steps.mk: config/cities $(CITY_FILES) $(wildcard config/*.yml) $(SRC_FILES) \
		$(wildcard notebooks/*.ipynb) $(VENV_STAMP)
	@mkdir -p $(@D)
	@$(PY) -m reintegration makefile --size $(SIZE) -o $@
	@touch $@

data: $(DATA)/manifest.json ## Generate the synthetic data for SIZE

notebooks: $(ALL_NOTEBOOKS) ## Run every step for every city

city: ## Run one city's steps: make city CITY=<name>
	@test -n "$(CITY)" || { echo "usage: make city CITY=<one of: $(CITIES)>"; exit 2; }
	@$(MAKE) city-$(CITY)

book: $(BOOK_RECORD) ## Build the Jupyter Book from the executed notebooks

release: $(RELEASES) ## Finalise each city's output register into release/<SIZE>/<city>/

audit: $(BOOK_RECORD) ## Release audit of notebooks, release bundles and the book
	$(PY) -m reintegration audit --size $(SIZE)
	$(PY) -m reintegration publish --size $(SIZE) --verify

# The audit runs before the book is built (executed notebooks and release
# bundles), so a leak stops the build early. The generated pages are written
# next (build/<size>/book_pages.json records them); from them the HTML book and
# the PDF are built side by side. The book is built aside
# (book/_build/versions/), audited there with everything else, and published by
# one atomic rename of the link book/_build/html only when that audit passes;
# the target is the record written last (build/<size>/book.json: the audited
# build's file-list hash), so an interrupted build or audit never looks finished.
# (Those rules are generated too: see steps.mk.)

# The whole book as one PDF (linked from the introduction): Jupyter Book's
# single-HTML build printed by Debian's Chromium, offline; the build scans its
# one-page HTML with the release audit and fails when a chapter of the table of
# contents is missing from the PDF.
BOOK_PDF := book/_build/pdf/reintegration-book.pdf

pdf: $(BOOK_PDF) ## The whole book as one PDF (headless Chromium, offline)
# (its rule is generated too: see steps.mk)

test: $(VENV_STAMP) ## Lint, tests, notebook validation and the book on SIZE=small
	$(VENV)/bin/ruff check src tests
	@$(MAKE) SIZE=small book
	@$(MAKE) --output-sync=target SIZE=small test-pytest test-nbval

# The two halves of `make test` after the book, side by side (two cores); each
# one's output is printed whole when it ends. One BLAS thread each, as for the
# steps: with threaded BLAS beside each other, nbval took 468 s instead of 102 s.
# pytest spreads its test files over JOBS workers (pytest-xdist, a file's tests
# in one worker): nbval ends after about two minutes, and a single pytest
# process left the second core idle for the remaining four to five.
test-pytest: $(VENV_STAMP)
	@$(ONE_THREAD) $(PY) -m pytest -n $(JOBS) --dist loadfile --durations=10 tests; rc=$$?; if [ $$rc -eq 5 ]; then \
		echo "error: pytest collected no tests in tests/"; exit 1; fi; exit $$rc

test-nbval: $(VENV_STAMP)
	$(ONE_THREAD) REINTEGRATION_BUILD_DIR=$(abspath build/nbval) $(PY) -m pytest -p no:cacheprovider \
		--nbval-lax --nbval-kernel-name $(KERNEL) \
		--nbval-sanitize-with tests/nbval_sanitize.cfg notebooks

bench: $(VENV_STAMP) ## Benchmarks (speed, memory) to build/bench.json
	$(UV) -e '.[test,bench]'
	$(PY) -m reintegration.pipeline.bench --size $(SIZE)

# The Monte Carlo validation (never part of make test): MC_REPS worlds of MC_CITY with
# MC_CLIENTS clients each, per kind of world (planted, null, oracle; MC_MODES to choose,
# e.g. MC_MODES="null null_oracle"), on MC_JOBS local
# workers, or on a Dask cluster with MC_SCHEDULER=tcp://host:8786. Results in
# build/montecarlo/; the validation chapter shows them at the next book build.
MC_CITY ?= rotterdam
MC_REPS ?= 100
MC_CLIENTS ?= 8000
MC_JOBS ?= 2
MC_SCHEDULER ?=
MC_MODES ?=
montecarlo: $(VENV_STAMP) ## Monte Carlo validation of every design over many worlds
	$(PY) -m reintegration.montecarlo.harness --city $(MC_CITY) --replications $(MC_REPS) \
		--clients $(MC_CLIENTS) --jobs $(MC_JOBS) $(if $(MC_SCHEDULER),--scheduler $(MC_SCHEDULER)) \
		$(if $(MC_MODES),--modes $(MC_MODES))

# The advice rule over many worlds of one city: coverage of its value's interval and
# its regret against the best rule of its kind (build/montecarlo_advice/).
MC_ADVICE_REPS ?= 50
montecarlo-advice: $(VENV_STAMP) ## Monte Carlo check of the advice rule (value, regret)
	$(ONE_THREAD) $(PY) -m reintegration.montecarlo.advice --city $(MC_CITY) \
		--replications $(MC_ADVICE_REPS) --clients $(MC_CLIENTS) --jobs $(MC_JOBS)

# Interrupt make all with SIGKILL at five points (data generation, a step, the book
# build, the audit, release finalisation) in a fresh clone under KILL_WORK, and check
# that nothing unaudited is left in place and the rerun gives the same bytes as an
# uninterrupted run. Never part of make test: it runs make all about six times.
KILL_WORK ?= build/killcheck-work
kill-check: $(VENV_STAMP) ## SIGKILL make all at five points; check audit and bytes
	rm -rf $(KILL_WORK)
	$(PY) -m reintegration.pipeline.killcheck --size $(SIZE) --work $(KILL_WORK)

templates: $(VENV_STAMP) ## Store the outputs nbval checks in the templates (small data)
	@$(MAKE) SIZE=small data
	$(PY) -m reintegration refresh-templates notebooks/*.ipynb

lab: $(VENV_STAMP) ## Open the notebook templates in JupyterLab (installs the lab extra)
	$(UV) --require-hashes -r $(LAB_LOCK)
	$(VENV)/bin/jupyter lab notebooks/

clean: ## Remove build outputs, release bundles, executed notebooks and the built book
	rm -rf build release book/_build book/results book/_generated book/_toc.yml

clean-data: ## Remove the generated synthetic data
	rm -rf synthetic_data/small synthetic_data/full

distclean: clean clean-data ## Also remove the virtual environment
	rm -rf $(VENV)
