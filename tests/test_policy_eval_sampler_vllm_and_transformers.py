"""`policy eval --sampler`: the transformers path samples exactly what it sampled before the option existed;
`--sampler vllm` without vLLM installed is one error line before any model loads; and the glue around vLLM's offline
engine (prompt ids, per-request seeds, eos cut, one engine per policy shut down before the next) checked with a
stand-in `vllm` module. vLLM itself never runs here: the real engine path is unverified on this CPU machine."""
from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest

from core.config import load_config
from core.schema import PromptItem, StudentProfile, Turn, write_jsonl

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_encoder):
    from core.reward_model import HPCRewardModel

    folder = tmp_path_factory.mktemp("eval-sampler")
    profile = StudentProfile(grade="5th grade", interests=["football"])
    items = [PromptItem(id=f"p{i}", source="gsm8k", problem_id=f"q{i}", kind="multi_turn" if i % 2 else "single_turn",
                        profile=profile, problem=f"Sam has {i + 7} apples and gives away 3. How many are left?",
                        turns=[Turn(role="student", text=f"Is it {i + 10}?")] if i % 2 else [],
                        reference_solution=f"{i + 7} - 3 = {i + 4}\n#### {i + 4}") for i in range(3)]
    write_jsonl(folder / "eval.jsonl", items)
    HPCRewardModel.from_backbone(tiny_encoder, "hpc").save_pretrained(folder / "rm")
    return folder


def eval_config(files, tiny_causal_lm, tmp_path, **overrides):
    from policy.evaluation.evaluate import EvalConfig

    return load_config(EvalConfig, overrides={
        "run": str(tmp_path / "no-run"), "base": tiny_causal_lm, "tuned": tiny_causal_lm,
        "reward_model": str(files / "rm"), "prompts": str(files / "eval.jsonl"), "out": str(tmp_path / "eval"),
        "max_new_tokens": 6, "samples_per_prompt": 2, "gsm8k": None, "bootstrap_resamples": 100, **overrides})


def test_transformers_sampler_samples_what_eval_sampled_before(files, tiny_causal_lm, tmp_path):
    from core.models import load_causal_lm, load_tokenizer
    from policy.evaluation.evaluate import run_settings, score_policy
    from policy.train.grpo import load_reward_model
    from policy.prompts import DEFAULT_SYSTEM_PROMPT, load_prompt_rows
    from policy.rollout import sample_responses

    cfg = eval_config(files, tiny_causal_lm, tmp_path)
    assert cfg.sampler == "transformers" and cfg.device == "auto" and cfg.dtype == "auto"
    s = run_settings(cfg)
    tokenizer = load_tokenizer(tiny_causal_lm)
    rows = load_prompt_rows(cfg.prompts, DEFAULT_SYSTEM_PROMPT, None, tokenizer, None)
    rm = load_reward_model(s["reward_model"])
    model, rollouts, _, summary = score_policy(tiny_causal_lm, tokenizer, rows, rm, rm.weights, s, cfg, "base")
    # before: load_causal_lm(path) (fp32, CPU), then sample_responses with the same settings and seed
    before = sample_responses(load_causal_lm(tiny_causal_lm), tokenizer, [r["prompt"] for r in rows for _ in range(2)],
                              max_new_tokens=6, temperature=s["temperature"], top_p=s["top_p"], batch_size=16, seed=0)
    assert [(r.prompt_ids, r.completion_ids, r.text) for r in rollouts] == \
        [(r.prompt_ids, r.completion_ids, r.text) for r in before]
    assert str(model.dtype) == "torch.float32" and model.device.type == "cpu"
    assert summary["length_tokens"] > 0


def test_vllm_sampler_without_vllm_is_one_error_line(files, tiny_causal_lm, tmp_path, capsys):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    from policy.evaluation.evaluate import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--run", str(tmp_path / "no-run"), "--base", tiny_causal_lm, "--tuned", tiny_causal_lm,
              "--reward-model", str(tmp_path / "not-loaded-before-the-check"), "--prompts", str(files / "eval.jsonl"),
              "--sampler", "vllm"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: ") and "field sampler: 'vllm' needs the vllm package" in err
    assert "--sampler transformers" in err


class FakeEngines:
    """A stand-in `vllm` module: LLM engines that answer every prompt with its own last two tokens, eos, then two
    tokens after the eos (which must be cut); records engines, their options and the sampling params."""

    def __init__(self, eos: int):
        self.eos, self.engines, self.alive, self.max_alive, self.params = eos, [], 0, 0, []
        fakes = self

        class SamplingParams:
            def __init__(self, **kwargs):
                self.kwargs = kwargs

        class LLM:
            def __init__(self, model, **kwargs):
                fakes.engines.append({"model": model, **kwargs})
                fakes.alive += 1
                fakes.max_alive = max(fakes.max_alive, fakes.alive)
                self.open = True

            def generate(self, prompts, params, use_tqdm=True):
                assert self.open and len(prompts) == len(params)
                fakes.params.extend(p.kwargs for p in params)
                return [types.SimpleNamespace(outputs=[types.SimpleNamespace(
                    token_ids=tuple(p["prompt_token_ids"][-2:]) + (fakes.eos, 5, 6))]) for p in prompts]

            def shutdown(self):
                self.open = False
                fakes.alive -= 1

        self.module = types.ModuleType("vllm")
        self.module.LLM, self.module.SamplingParams = LLM, SamplingParams


def test_vllm_sampler_glue_with_a_stand_in_engine(files, tiny_causal_lm, tmp_path, monkeypatch):
    from core.models import load_tokenizer
    from policy.evaluation.evaluate import evaluate_policies

    tokenizer = load_tokenizer(tiny_causal_lm)
    fakes = FakeEngines(tokenizer.eos_token_id)
    monkeypatch.setitem(sys.modules, "vllm", fakes.module)
    cfg = eval_config(files, tiny_causal_lm, tmp_path, sampler="vllm", **{
        "vllm.gpu_memory_utilization": 0.3, "vllm.max_model_len": 512,
        "tutorbench.settings": ["pedagogy_following"], "tutorbench.items": 3, "tutorbench.data_root": str(ROOT)})
    report = evaluate_policies(cfg)
    # one engine for each policy's eval sampling and one for each policy's tutorbench turns, never two at once
    assert len(fakes.engines) == 4 and fakes.max_alive == 1 and fakes.alive == 0
    assert all(e["gpu_memory_utilization"] == 0.3 and e["max_model_len"] == 512 and e["seed"] == 0
               and e["dtype"] == "float32" for e in fakes.engines)  # float32: this CPU machine's auto dtype
    eval_params = fakes.params[:6]  # base: 3 prompts x 2 samples
    assert [p["seed"] for p in eval_params] == [i for i in range(6)]  # each request its own seed
    assert all(p["max_tokens"] == 6 and p["temperature"] == 1.0 for p in eval_params)
    assert all(p["temperature"] == 0 and p["max_tokens"] == 60 for p in fakes.params[6 * 2:])  # greedy teacher turns
    rows = [json.loads(line) for line in (tmp_path / "eval" / "responses.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["tokens"] == 3 for r in rows)  # two tokens and the eos; what follows is cut
    assert report["kl_tuned_base"]["per_token"] == pytest.approx(0.0, abs=1e-6)  # same weights: log-probs equal
    assert report["tutorbench"]["settings"]["pedagogy_following"]["items"] == 3
