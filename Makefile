# The two commands: `make dev` and `make test`. Everything else is a helper of those.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 3000
MLFLOW_PORT ?= $(shell echo $$(( $(PORT) + 1 )))
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: dev test test-system install lint bench clean audit

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Starts the Dagster UI and daemon on $(HOST):$(PORT) with the sensors running, and the MLflow
# UI over the pipelines' store on $(HOST):$(MLFLOW_PORT); Ctrl-C stops both. The demo data
# is put into the landing folder first unless it already holds data.
dev: install
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || cp deploy/dev/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ml-assets demo --if-empty
	$(BIN)/python -m ml_assets.dev_servers --host $(HOST) --port $(PORT) --mlflow-port $(MLFLOW_PORT) -- -w workspace.yaml

# Two workers: most tests wait on subprocesses, sqlite and MLflow, so two run well side by side.
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# The second suite: the UI in headless Chromium, PostgreSQL, Celery workers with a Redis
# broker, the Kubernetes files. Installs the `system` extra and the Debian packages it needs
# (apt-get, as root), then starts and stops its own servers on 127.0.0.1.
test-system: install
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,system]'
	bash deploy/system-packages.sh
	$(BIN)/python -m pytest -m system $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check ml_assets ml_assets_tests benchmarks

# pip-audit queries PyPI's vulnerability data: run it where that service is reachable.
audit: install
	$(BIN)/python -m pip install --quiet pip-audit
	$(BIN)/pip-audit -r constraints.txt

bench: install
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .ml_assets .dagster_home .pytest_cache
