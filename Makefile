# Two set-up commands for a fresh machine (see README):
#   make demo   build .venv if missing, then run the demo on the bundled synthetic data
#   make test   build .venv if missing, then the lint gate (ruff) and the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= demo-output
STAMP  := $(VENV)/.installed

.PHONY: demo test venv bench clean

venv: $(STAMP)

# torch: the CPU build where no NVIDIA GPU is present (a bare "torch" would pull a multi-GB
# CUDA build); where nvidia-smi answers, pip's default (CUDA) build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	    $(BIN)/pip install --quiet "torch>=2.4"; \
	else \
	    $(BIN)/pip install --quiet "torch==2.13.0" || \
	    $(BIN)/pip install --quiet "torch>=2.4" --index-url https://download.pytorch.org/whl/cpu; \
	fi
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chromtransfer demo --out $(OUT)

test: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest -q --durations=25 tests

# Benchmarks against the reference tools (TensorFlow/Keras, tangermeme, memelite, FIMO), which
# live in .venv-bench, never in the package's own environment. Tables print; numbers go to
# benchmarks/results.json.
bench: $(STAMP)
	bash benchmarks/setup_bench_env.sh .venv-bench
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .venv-bench demo-output
