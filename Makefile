# The two commands of the README live here: `make run` and `make test`.
# Both set up a virtual environment in .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch; a user with CUDA installs torch into .venv first
# (or sets TORCH to the requirement they want) and it is left alone.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: setup run test gradcheck bench gpu-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[dev,run]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/cs224n-nn train --config sample

# pytest exits 5 when it collects no test; that is not a failure of the code.
test: $(STAMP)
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

gradcheck: $(STAMP)
	$(BIN)/cs224n-nn gradcheck

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# On a machine with a CUDA GPU: the CUDA tests, the benchmarks on the GPU and a
# one-epoch CoNLL-2003 run, figures in one file (benchmarks/gpu_check.py).
# GPU_PYTHON=python3 uses a Python that already has a CUDA torch instead of .venv.
GPU_PYTHON ?= $(BIN)/python
GPU_CHECK_OUT ?= gpu_check.md
gpu-check:
	@if [ "$(GPU_PYTHON)" = "$(BIN)/python" ]; then $(MAKE) --no-print-directory setup; fi
	$(GPU_PYTHON) -m benchmarks.gpu_check --output $(GPU_CHECK_OUT)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
