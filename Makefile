# One-command entry points. `make reproduce` and `make test` each create .venv (if absent),
# install everything into it, and run. Works on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= all
SNAKEMAKE_ARGS ?=

.PHONY: install reproduce test lint mlflow-ui clean-results

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found %s); set PYTHON=/path/to/python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch first, pinned: the releases pyproject admits (CUDA build on x86_64, runs on CPU too)
	$(BIN)/python -m pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

install: $(BIN)/.installed

reproduce: install
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check hcm tests benchmarks
	$(BIN)/snakemake --lint

mlflow-ui: install
	@echo "runs table: http://127.0.0.1:5000/#/experiments/<id>?workflowType=machine_learning (or the sidebar's 'Model training' switch)"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///results/mlflow.db
