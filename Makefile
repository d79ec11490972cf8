# Two commands from a fresh clone (Python 3.11 and the package registries only):
#   make demo   install everything, then run the main job end to end on the embedded defaults
#   make test   install everything, then run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU-only machines take torch's CPU build; with a GPU, pip keeps the CUDA build it resolves.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo "torch" || echo "torch==2.13.0")

.PHONY: setup demo test lint bench reports clean

$(BIN)/recbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $@

setup: $(BIN)/recbench

demo: setup
	$(BIN)/recbench model fetch
	$(BIN)/recbench run --loss napo --dataset lastfm --profile smoke

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python -m pytest benchmarks/bench_*.py -q -s --benchmark-enable

# re-run the command recorded in every committed report (after changing report code or a store)
reports: setup
	$(BIN)/python benchmarks/regenerate_reports.py

clean:
	rm -rf $(VENV) build *.egg-info
