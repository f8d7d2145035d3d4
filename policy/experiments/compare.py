"""`python -m policy compare --config configs/policy/compare_tiny.yaml`: which training helps, on one reward.

From one base policy and one training reward model it runs best-of-n, RM-filtered SFT (rft), DPO, SFT on teacher
turns and GRPO, each in its own process (`python -m policy <method> --config <its resolved config>`; a method that
fails stops the run and names its rerun command; a finished one is reused on a rerun).

Equal budget: each training method that samples (rft, dpo, grpo) may draw `budget` completions from a policy.
GRPO gets budget / (prompts_per_step x num_generations x gradient_accumulation_steps) steps; rft and dpo keep their
config's n (and iterations) and take budget / (n x iterations) rl prompts. SFT draws none (it reads real teacher
turns). Best-of-n is an inference method: its cost is n samples per eval prompt, reported apart. report.md states
the samples each method actually drew.

Every policy (and best-of-n at each n, and GRPO's checkpoints along training) answers the same held-out prompts
and is scored by the eval's scorers (`policy.evaluation`): the training RM, the independent RMs and judges with
their standing, the rule checks, GSM8K perplexity and KL to the base (estimated on the policy's own samples;
best-of-n: the analytic log n - (n-1)/n). Writes compare.md (one table, method x scorer, paired bootstrap
intervals against the base), compare.json and overoptimisation.png (training-RM and independent-scorer gain
against KL to the base, Gao et al. 2022).
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field

import yaml
from core.config import Config, ConfigError, load_config, run_cli
from core.schema import write_json, write_text
from policy.evaluation.evaluate import EvalConfig

Method = Literal["bon", "rft", "dpo", "sft", "grpo"]
METHOD_CONFIGS = {"bon": "configs/policy/bon_tiny.yaml", "rft": "configs/policy/rft_tiny.yaml",
                  "dpo": "configs/policy/dpo_tiny.yaml", "sft": "configs/policy/sft_tiny.yaml",
                  "grpo": "configs/policy/tiny.yaml"}


def _default_eval() -> EvalConfig:
    return EvalConfig(max_prompts=24, gsm8k_items=8)


class CompareConfig(Config):
    run: str = Field("runs/demo", description="run folder holding data/ (rl, rm and eval splits) and rm/ (the "
                                              "training reward model)")
    out: str | None = Field(None, description="report folder, one subfolder per method (None: <run>/compare)")
    methods: list[Method] = Field(["bon", "rft", "dpo", "sft", "grpo"], description="methods to run, in order")
    configs: dict[Method, str] = Field(default_factory=lambda: dict(METHOD_CONFIGS),
                                       description="config each method starts from (policy, RM, prompts and out "
                                                   "are set by compare)")
    budget: int = Field(128, ge=1, le=10**9, description="completions each sampling training method (rft, dpo, "
                                                         "grpo) may draw")
    grpo_checkpoints: int = Field(3, ge=1, le=100, description="GRPO checkpoints scored along training (the "
                                                                "over-optimisation curve), the final policy included")
    eval: EvalConfig = Field(default_factory=_default_eval,
                             description="the held-out evaluation every method gets (prompts, scorers, GSM8K; "
                                         "run/tuned/base are filled in; one sample per prompt)")
    launcher: str = Field("", description="command that starts each method before `-m policy METHOD --config "
                                          "FILE` (e.g. 'accelerate launch ...'); empty: this Python")


class MethodFailed(RuntimeError):
    """A method's process failed; the message names its rerun command."""


def method_command(launcher: str, method: str, config: Path) -> list[str]:
    prefix = shlex.split(launcher) if launcher.strip() else [sys.executable]
    return [*prefix, "-m", "policy", method, "--config", str(config)]


def run_method(method: str, values: dict, config_path: Path, launcher: str) -> None:
    """`python -m policy METHOD --config FILE` in a child process (its output streamed); stop on failure."""
    write_text(config_path, yaml.safe_dump(values, sort_keys=False))
    command = method_command(launcher, method, config_path)
    root = str(Path(__file__).resolve().parents[2])  # this checkout's packages, wherever compare runs from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    print(f"compare: {method}: {shlex.join(command)}", flush=True)
    result = subprocess.run(command, env=env, check=False)
    if result.returncode != 0:
        raise MethodFailed(f"compare: method {method} failed (exit status {result.returncode}; its output is above); "
                           f"rerun it alone with: {shlex.join(command)}")


def shared_settings(cfg: CompareConfig) -> dict:
    """What every method and the evaluation use alike, taken from the GRPO config: the tutor's system prompt, the
    completion length, the sampling temperature and the prompt-length cut."""
    from policy.train.config import GRPORunConfig

    grpo = load_config(GRPORunConfig, cfg.configs["grpo"])
    return {"policy": grpo.policy, "system_prompt": grpo.system_prompt, "max_completion_length":
            grpo.max_completion_length, "temperature": grpo.temperature, "top_p": grpo.top_p,
            "max_prompt_tokens": grpo.max_prompt_tokens}


def method_values(cfg: CompareConfig, method: str, out: Path, eval_prompts: Path, shared: dict) -> dict:
    """The method's config (its template with compare's policy-independent settings and the budget applied),
    validated by the method's own config class, as a plain dict."""
    from policy.experiments.compare_budget import apply_budget, config_class

    run = Path(cfg.run)
    values = dict(load_config(config_class(method), cfg.configs[method]).model_dump(mode="json"))
    values.update(out=str(out / method), **{k: v for k, v in shared.items() if k in values})
    if method != "sft":
        values["reward_model"] = str(run / "rm")
    values["prompts"] = str(run / "data" / "rl.jsonl")
    if method == "sft":
        values["also_from"] = [str(run / "data" / "rm.jsonl")]
    if method == "bon":  # inference: the held-out prompts compare scores, exactly those
        values.update(prompts=str(eval_prompts), max_prompts=None,
                      max_prompt_tokens=cfg.eval.max_prompt_tokens or shared["max_prompt_tokens"])
    values = apply_budget(method, values, cfg.budget, cfg.grpo_checkpoints)
    load_config(config_class(method), overrides=values)  # a bad combination stops before anything trains
    return values


def finished(method: str, folder: Path) -> bool:
    return (folder / "bon.json").exists() if method == "bon" else (folder / "policy" / "config.json").exists()


def run_compare(cfg: CompareConfig) -> dict:
    from policy.experiments.compare_scoring import eval_rows, score_all, write_eval_prompts
    from policy.experiments.compare_report import plot_overoptimisation, write_markdown

    out = Path(cfg.out or Path(cfg.run) / "compare")
    for method in cfg.methods:
        if method not in cfg.configs:
            raise ConfigError(f"field configs: no config for method {method!r}")
    if cfg.eval.samples_per_prompt != 1:
        raise ConfigError("field eval.samples_per_prompt: compare scores one response per prompt and method (1)")
    if "grpo" not in cfg.configs:
        raise ConfigError("field configs: needs the grpo config (its policy, system prompt and lengths are shared)")
    shared = shared_settings(cfg)
    rows, items = eval_rows(cfg, shared)
    eval_prompts = out / "eval_prompts.jsonl"
    plans = {m: method_values(cfg, m, out, eval_prompts, shared) for m in cfg.methods}  # validated before any runs
    out.mkdir(parents=True, exist_ok=True)
    write_eval_prompts(items, eval_prompts)
    for method, values in plans.items():
        if not finished(method, out / method):
            run_method(method, values, out / "run_configs" / f"{method}.yaml", cfg.launcher)
        if method == "grpo":
            for optimizer_state in (out / method).glob("checkpoint-*/optimizer.pt"):
                optimizer_state.unlink()  # only the weights are scored; 1 GB each for a 135M policy
    report = score_all(cfg, plans, rows, shared, out)
    report["plot"] = str(plot_overoptimisation(report, out / "overoptimisation.png"))
    write_json(out / "compare.json", report)
    write_markdown(report, out / "compare.md")
    return report


def main(argv: list[str] | None = None) -> None:
    try:
        cfg, report = run_cli(CompareConfig, argv, "python -m policy compare", __doc__.split("\n")[0], run_compare)
    except MethodFailed as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"{len(report['methods'])} methods on {report['prompts']} eval prompts; table in "
          f"{Path(report['out']) / 'compare.md'}, plot in {report['plot']}")

