# kubenova: `make demo` brings the local cloud up and runs a VM; `make test` runs every test.
SHELL := /bin/bash
VENV := .venv/bin

.PHONY: deps demo down test lint unit

deps:
	hack/install-deps.sh

demo: deps
	hack/demo.sh

down:
	$(VENV)/kubenova dev down

lint: deps
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy -p kubenova
	$(VENV)/lint-imports
	$(VENV)/kubenova crds check

unit: deps
	$(VENV)/pytest tests/unit -q

test: lint
	$(VENV)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)
