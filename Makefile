# The two commands: `make dev` and `make test`. Everything else is a helper of those.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 3000
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: dev test install lint bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Starts the Dagster UI and daemon on $(HOST):$(PORT) with the sensors running; the demo data
# is put into the landing folder first unless it already holds data.
dev: install
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || cp deploy/dev/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ml-assets demo --if-empty
	$(BIN)/dagster dev --host $(HOST) --port $(PORT) -w workspace.yaml

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check ml_assets ml_assets_tests

bench: install
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .ml_assets .dagster_home .pytest_cache
