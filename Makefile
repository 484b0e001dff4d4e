# Two commands set everything up on a fresh machine:
#   make run   -> virtual environment, install, demo model trained and registered, API on 127.0.0.1:8000
#   make test  -> install with test extras, lint, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
DEMO_DATA := training/demo_data/grievances.csv
CONFIG    := training/defaults/router.yaml
export MLFLOW_DISABLE_TELEMETRY ?= true

.PHONY: run serve install test lint bench bench-load audit lock clean demo-model mlflow-ui

# Python 3.11's venv seeds setuptools 65.5, which has published advisories (CVE-2022-40897,
# CVE-2024-6345, CVE-2025-47273); pin a fixed one. It no longer ships pkg_resources, which jieba only
# tries before reading its dictionaries as plain files.
SETUPTOOLS := setuptools==84.2.1

# pip install, quiet. A pip configuration naming index folders that lack some packages (as on some build
# machines) makes pip print one "Location ... is ignored" line per package: those are dropped; anything
# else pip says, and its exit status, are kept.
define pip_install
	@echo "pip install $(1)"
	@out=$$($(BIN)/python -m pip install --quiet $(1) 2>&1); status=$$?; \
	printf '%s\n' "$$out" | grep -v -e 'is ignored: it is neither a file nor a directory' -e '^$$' || true; \
	exit $$status
endef

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(call pip_install,--upgrade pip '$(SETUPTOOLS)')

# Installs the project with the exact versions in constraints.txt, so training and serving agree.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(call pip_install,-c constraints.txt '$(SETUPTOOLS)' -e '.[test]')
	touch $@

install: $(VENV)/.installed

# The demo model: trained on the shipped demo cases and registered as grievance-triage@champion in the
# local MLflow store (mlflow.db + mlartifacts/). Retrained when the data or the config changes.
mlflow.db: $(DEMO_DATA) $(CONFIG) features/data/risk_lexicon.yaml | $(VENV)/.installed
	$(BIN)/triage train --data $(DEMO_DATA) --config $(CONFIG)
	touch $@

demo-model: mlflow.db

# Demo keys (one per role) are made once in var/demo-api-keys.env and printed; a TRIAGE_API_KEYS already
# set in the environment wins. An empty audit store is filled with the demo cases (once) so the reviewer
# queue has cases to audit.
DEMO_KEYS := var/demo-api-keys.env

run: mlflow.db
	@if [ -n "$$TRIAGE_API_KEYS" ]; then echo "Using the API keys in TRIAGE_API_KEYS."; \
	else $(BIN)/python -m serving.demo_keys $(DEMO_KEYS) http://$(HOST):$(PORT) && set -a && . ./$(DEMO_KEYS) && set +a; fi; \
	$(BIN)/python -m command.demo_seed && \
	exec $(BIN)/triage serve --host $(HOST) --port $(PORT)

serve: install
	$(BIN)/triage serve --host $(HOST) --port $(PORT)

# The MLflow UI on the project's store, where the run links printed by `triage train` point.
MLFLOW_PORT ?= 5000
mlflow-ui: mlflow.db
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port $(MLFLOW_PORT)

lint: install
	$(BIN)/ruff check .

test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python experiments/bench_router.py

# About 2 minutes: 50 clients for 60 s against uvicorn with 2 workers and a throw-away PostgreSQL schema
# (127.0.0.1:5432); writes experiments/results/load.json. A benchmark, not part of make test.
bench-load: mlflow.db
	$(BIN)/python experiments/bench_load.py

# pip-audit (its own pinned environment under .venv/tools) over the installed dependencies; fails on a
# vulnerability with a fix that .ci/pip-audit-ignore.txt does not list with a reason. AUDIT_STRICT=1 also
# fails when packages could not be audited (e.g. PyPI's advisory data unreachable).
audit: install
	$(BIN)/python .ci/audit.py

# Re-pin the whole dependency tree after changing pyproject.toml.
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean:
	rm -rf $(VENV) mlflow.db mlartifacts .pytest_cache
