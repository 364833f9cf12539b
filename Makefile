# quantgym: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint format typecheck bench bench-speed clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[dev,minari]'
	touch $(STAMP)

## demo: create .venv, install, run the smoke benchmark suite (< 3 min) and print its table with CIs
demo: $(STAMP)
	$(PY) benchmarks/compare.py

## test: create .venv, install, run the fast test suite (what CI runs), then the env parity tests
## again with numpy's above-baseline SIMD kernels (AVX2, AVX-512, SVE ...) disabled, so both
## code paths are exercised on any CPU that has them
test: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow" tests
	NPY_DISABLE_CPU_FEATURES="$$($(PY) -m quantgym.machine --dispatched)" \
		$(PY) -m pytest -n 2 -m "simd_parity and not slow" tests

## test-all: include slow tests
test-all: $(STAMP)
	$(PY) -m pytest -n 2 -m "" tests

lint: $(STAMP)
	$(VENV)/bin/ruff check quantgym tests benchmarks examples
	$(VENV)/bin/ruff format --check quantgym tests benchmarks examples

format: $(STAMP)
	$(VENV)/bin/ruff format quantgym tests benchmarks examples
	$(VENV)/bin/ruff check --fix quantgym tests benchmarks examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy quantgym

## bench: the standard benchmark suite (5 markets, every agent, 3 seeds; <= 60 min on 2 cores)
## -> benchmarks/results/standard/ (report + plots, committed)
bench: $(STAMP)
	$(PY) benchmarks/compare.py --suite standard --workers 2

## bench-speed: install the peer envs and run the speed benchmarks
bench-speed: $(STAMP)
	$(PIP) install -q -c constraints.txt -e '.[bench]'
	$(PY) benchmarks/env_throughput.py
	$(PY) benchmarks/collect_throughput.py
	$(PY) benchmarks/latency.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis
