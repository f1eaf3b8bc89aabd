# colearn-chain: `make demo` runs the main job, `make test` runs every test. Each sets up only what it needs.
SHELL := /bin/bash
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/.tools/bin:$(PATH)
PY := $(CURDIR)/.venv/bin/python
BROWNIE := $(CURDIR)/.venv/bin/brownie
OUT ?= results/demo

.PHONY: setup setup-demo lint bench-attacks test test-contract test-python demo artifact bench clean help

help:
	@echo "make setup   install everything into .venv, node_modules and .tools (idempotent)"
	@echo "make demo    set up what the demo needs, run the default experiment on a local chain; results in $(OUT)/"
	@echo "make lint    ruff on all Python code, mypy --strict on the package (both must report nothing)"
	@echo "make test    set up everything, run every test (contract tests on Anvil, then the Python tests)"
	@echo "make bench   print gas per call, seconds per epoch (beside Flower), store MB/s, explorer latency, learning table, attacks"
	@echo "make bench-attacks  hostile members: voting against Flower's FedAvg, median and Krum (own venv)"

# Everything: the demo's parts plus brownie, dev tools, Kubo, geth, chromium and the solc entry.
setup:
	@bash tools/setup.sh test

# Only what `make demo` needs: the package with its experiments extra, and the node tools (anvil).
setup-demo:
	@bash tools/setup.sh demo

# ruff's and mypy's settings are in pyproject.toml; mypy checks the package named there (colearn_chain).
lint: setup
	$(PY) -m ruff check colearn_chain tests bench scripts tools examples
	$(PY) -m mypy

test: setup test-contract test-python

test-contract:
	$(BROWNIE) test tests/contract --network anvil
	$(BROWNIE) test tests/contract/test_smoke.py --network ganache-cli

test-python:
	$(PY) -m pytest -p no:pytest-brownie --durations=15 tests/unit tests/integration

demo: setup-demo
	$(PY) -m colearn_chain.cli run --out $(OUT)

# Recompile contracts/ and refresh the artifact packaged in colearn_chain (tests fail when they drift).
artifact: setup
	$(BROWNIE) compile
	$(PY) tools/export_artifact.py

bench: setup $(CURDIR)/.venv-bench/bin/python
	$(PY) bench/gas.py
	$(PY) bench/epoch.py
	$(PY) bench/store.py
	$(PY) bench/explorer.py
	$(PY) bench/learning.py
	$(PY) bench/vote_rules.py
	$(MAKE) bench-attacks

# Flower, the peer in bench/attacks.py, needs versions that brownie's exact pins refuse (certifi,
# typing_extensions), so it gets a venv of its own with the package's core and experiments extra.
BENCH_PY := $(CURDIR)/.venv-bench/bin/python
$(BENCH_PY): pyproject.toml
	@echo "setup: bench venv (.venv-bench: colearn-chain[experiments], flwr 1.42.0)"
	@[ -x $(BENCH_PY) ] || python3 -m venv .venv-bench
	@$(CURDIR)/.venv-bench/bin/pip install --quiet --disable-pip-version-check -e ".[experiments]" "flwr==1.42.0"
	@touch $(BENCH_PY)

bench-attacks: $(BENCH_PY)
	$(BENCH_PY) bench/attacks.py
	$(BENCH_PY) bench/attacks.py --model mlp

clean:
	rm -rf build reports results .pytest_cache .hypothesis
