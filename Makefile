# The exporter runs from a virtual environment in .venv, made on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test test-unit lint format dashboards mixin docs bench bench-tuners lab lab-record clean

$(BIN)/python:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "make: $(PYTHON) cannot create virtual environments; install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

## run: start the exporter on this host's /sys and /proc (extra flags: make run ARGS='...')
run: $(VENV)/.installed-run
	$(BIN)/ksm-exporter $(ARGS)

## test: every tier of the test suite; as root, first installs the Debian packages it drives
test: debian-packages $(VENV)/.installed-dev
	$(BIN)/python -m pytest

## debian-packages: install (as root) or name the missing Debian packages the tests drive
.PHONY: debian-packages
debian-packages:
	@.ci/debian-packages

## test-unit: the unit tier only (no process, no network, no host state; seconds)
test-unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m unit

## lint: ruff (lint and format) and mypy --strict
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## dashboards: regenerate dashboards/*.json from their code in dashboards/
dashboards: $(VENV)/.installed-dev
	$(BIN)/python -m dashboards.generate

## mixin: rewrite deploy/prometheus/*.yml and the PrometheusRule from mixin/
mixin: $(VENV)/.installed-dev
	$(BIN)/python -m mixin.render

## docs: regenerate docs/metrics.md's KSM table and kernel column, and the guides' releases, from the declarations and the kernel's history
docs: $(VENV)/.installed-dev
	$(BIN)/python -m docs.generate

## bench: scrape latency and throughput against node_exporter, memory footprint, process sweep, speed paths
bench: $(VENV)/.installed-run
	$(BIN)/python -m bench.scrape_latency
	$(BIN)/python -m bench.footprint
	$(BIN)/python -m bench.process_sweep
	$(BIN)/python -m bench.speed_paths

## bench-tuners: ksm-exporter tune against the warmed-up kernel advisor on six workloads, 3 repeats each, on real KSM (root)
bench-tuners: $(VENV)/.installed-dev
	$(BIN)/python -m bench.tuners --seconds 32 --warmup 8 --plots docs/images

## lab: real kernels (Debian 6.1, 6.12, this host's) under QEMU and real QEMU guests; compares, writes nothing
lab: $(VENV)/.installed-dev
	$(BIN)/python -m lab

## lab-record: the same, and records the kernels' captures in tests/fixtures/kernels/
lab-record: $(VENV)/.installed-dev
	$(BIN)/python -m lab --record

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
