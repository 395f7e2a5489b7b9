# Two commands do everything on a fresh machine: `make reproduce` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch and torchvision are pinned to the pair that installs from this machine's local wheels.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PROFILE ?= default
OUT ?= runs/reproduce

.PHONY: venv test lint reproduce clean gpu-check

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

# On a machine with a CUDA device: the tests that need one (FlexAttention's score modification
# with and without a key mask against the chunked path, the custom operators), then the GPU
# numbers of issue 20 (`ia bench gpu`: the score-mod path fwd+bwd against bias-free SDPA at
# 64x64 and 100x100 maps, Q = 300 and 1800, bf16 and fp32, each shape checked against the dense
# reference first; one bf16 training step of the paper-scale detector, IA against double-cross,
# time and peak memory) into runs/gpu-check; about 5 minutes on an H200.
gpu-check: venv
	$(BIN)/python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
	$(BIN)/python -m pytest -q -rs tests/core/test_grid_attention.py tests/core/test_custom_ops.py tests/test_compile_detector.py
	$(BIN)/ia bench gpu --out runs/gpu-check --overwrite

reproduce: venv
	$(BIN)/ia reproduce --profile $(PROFILE) --out $(OUT)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
