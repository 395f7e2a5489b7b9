# Two commands do everything on a fresh machine: `make reproduce` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch and torchvision are pinned to the pair that installs from this machine's local wheels.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PROFILE ?= default
OUT ?= runs/reproduce

.PHONY: venv test lint reproduce clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e ".[all]" $(TORCH_PINS)
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

test: lint
	$(BIN)/python -m pytest -q

reproduce: venv
	$(BIN)/ia reproduce --profile $(PROFILE) --out $(OUT)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
