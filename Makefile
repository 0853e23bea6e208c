# furima — entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GEN_STAMP := gen/.stamp
PROTOS := $(shell find protos -name '*.proto')

.DEFAULT_GOAL := help
.PHONY: help setup venv protos migrate run test test-postgres lint bench token clean

help: ## List the entry points
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '.[dev]'
	@# The code runs from the checkout: put the repo root and gen/ on sys.path.
	$(PY) -c 'import sysconfig, pathlib; p = pathlib.Path(sysconfig.get_paths()["purelib"]) / "furima-repo.pth"; p.write_text("$(CURDIR)\n$(CURDIR)/gen\n")'
	@touch $@

venv: $(STAMP) ## Create the virtualenv and install dependencies

$(GEN_STAMP): $(STAMP) $(PROTOS) tools/gen_protos.py
	$(PY) tools/gen_protos.py
	@touch $@

protos: $(GEN_STAMP) ## Generate Python code and stubs from protos/ into gen/

setup: $(GEN_STAMP) ## Environment + generated code (what run and test need)

migrate: setup ## Apply every service's migrations to the embedded databases under var/
	$(PY) -m tools.devstack migrate

run: setup ## Set up everything and start the whole stack (Ctrl-C stops it)
	$(PY) -m tools.devstack run

token: ## Print a bearer token for the development client (stack must be running)
	@$(PY) -m tools.devstack token

test: setup ## Run lint and the whole test suite (PostgreSQL too when FURIMA_TEST_POSTGRES_URL is set)
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest

lint: setup ## ruff, mypy (strict on libs/ and services/) and buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd protos && ../$(VENV)/bin/buf lint

bench: setup ## Benchmarks (not part of test): prints numbers and ratios
	$(PY) -m bench

clean: ## Remove the virtualenv, generated code and local databases
	rm -rf $(VENV) gen gen.tmp var .pytest_cache .mypy_cache .ruff_cache
