"""`python -m policy sweep --config configs/policy/sweep.yaml`: what each reward weighting buys and costs.

Runs GRPO once per weighting: each single-dimension reward (the simplex's corners), equal weights, and, with
`grid_step`, every point of the simplex grid with that spacing. Each run's policy is evaluated on ALL dimensions
against the same base samples (paired bootstrap intervals). Writes sweep.md, sweep.json and tradeoff.png (per
dimension: its score against the weight it was given). With `--eval.judges` / `--eval.rms`, every run is also
scored by those independent judges and reward models, so a weighting's trade-offs are read off scorers the policy
never trained on. Finished runs are kept and skipped on a rerun.

Each run trains in its own process (`python -m policy grpo --config <the run's resolved config>`, or under
`launcher`, its output streamed), so a colocated vLLM engine and the run's GPU memory end with it. All runs train
before the sweep itself loads a model; then the reward model scores the base policy and each run.
"""
from __future__ import annotations

import itertools
import os
import shlex
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import Field  # noqa: E402

from core.config import Config, ConfigError, dump_config, load_config, run_cli  # noqa: E402
from core.models import load_tokenizer, pick_device  # noqa: E402
from core.reward_client import RemoteRewardModel, is_url  # noqa: E402
from core.schema import save_figure, write_json, write_text  # noqa: E402
from policy.train.config import GRPORunConfig, check_run_inputs  # noqa: E402
from policy.evaluation.evaluate import (EvalConfig, compare, independent_scorers,  # noqa: E402
                             score_policy)
from policy.evaluation.independent import compare_scores, prompt_scores, scorer_standing  # noqa: E402
from core.stats import apply_holm, format_interval  # noqa: E402
from policy.evaluation.verdict import TRAINED_ON  # noqa: E402
from policy.train.grpo import FINAL_POLICY, load_reward_model  # noqa: E402
from policy.prompts import load_prompt_rows  # noqa: E402


class SweepConfig(Config):
    grpo_config: str = Field("configs/policy/tiny.yaml", description="GRPO config every run starts from")
    policy: str | None = Field(None, description="override the GRPO config's policy: what every run starts from and "
                                                 "the base it is compared with (e.g. the SFT warm start)")
    reward_model: str | None = Field(None, description="override the GRPO config's reward model")
    prompts: str | None = Field(None, description="override the GRPO config's `rl` prompts")
    max_completion_length: int | None = Field(None, ge=1, description="override the GRPO config's completion "
                                                                     "length (also the eval's, unless it sets one)")
    max_steps: int = Field(6, ge=1, description="GRPO steps per run (small: the sweep shows directions)")
    grid_step: float | None = Field(None, gt=0, le=1, description="also run every simplex point with this spacing "
                                                                  "(e.g. 0.5); None: corners + equal weights only")
    eval: EvalConfig = Field(default_factory=lambda: EvalConfig(max_prompts=16),
                             description="evaluation settings for every run (run/tuned/base are filled in)")
    out: str = Field("runs/demo/sweep", description="sweep folder: one GRPO run per weighting + the report")
    launcher: str = Field("", description="command that starts each run before `-m policy grpo --config FILE`, "
                                          "e.g. 'accelerate launch --config_file configs/policy/accelerate_8gpu.yaml'"
                                          " or 'torchrun --nproc_per_node 8'; empty: this Python")


def weightings(dimensions: list[str], grid_step: float | None) -> list[dict[str, float]]:
    """Corners (single-dimension rewards), equal weights, then the optional grid; no duplicates."""
    points = [tuple(1.0 if j == i else 0.0 for j in range(len(dimensions))) for i in range(len(dimensions))]
    points.append(tuple(1.0 / len(dimensions) for _ in dimensions))
    if grid_step:
        n = round(1 / grid_step)
        if abs(n * grid_step - 1) > 1e-9:
            raise ConfigError(f"field grid_step: 1 must be a multiple of it (got {grid_step})")
        for combo in itertools.product(range(n + 1), repeat=len(dimensions)):
            if sum(combo) == n:
                points.append(tuple(c / n for c in combo))
    unique: dict[tuple, tuple] = {}
    for p in points:
        unique.setdefault(tuple(round(w, 6) for w in p), p)  # first occurrence wins, exact values kept
    return [dict(zip(dimensions, p, strict=True)) for p in unique.values()]


def run_name(weights: dict[str, float]) -> str:
    return "w_" + "_".join(f"{name[:4]}{w:.2f}" for name, w in weights.items())


def plot_tradeoff(runs: list[dict], base: dict, dimensions: list[str], path: Path) -> Path:
    fig, axes = plt.subplots(1, len(dimensions), figsize=(3.4 * len(dimensions), 3.2), squeeze=False)
    for ax, dim in zip(axes[0], dimensions, strict=True):
        xs = [r["weights"][dim] for r in runs]
        ys = [r["tuned"]["mean"][dim] for r in runs]
        err = [[r["difference"][dim]["mean"] - r["difference"][dim]["low"] for r in runs],
               [r["difference"][dim]["high"] - r["difference"][dim]["mean"] for r in runs]]
        ax.errorbar(xs, ys, yerr=err, fmt="o", capsize=3)
        ax.axhline(base["mean"][dim], color="grey", linestyle="--", label="base")
        ax.set_xlabel(f"weight on {dim}")
        ax.set_ylabel(f"{dim} (RM score)")
        ax.legend(fontsize=8)
    fig.suptitle("Reward weighting trade-offs (95% paired bootstrap intervals)")
    fig.tight_layout()
    save_figure(fig, path)
    return path


def sweep_holm(report: dict, alpha: float) -> None:
    """Holm-Bonferroni over the sweep's stars: every run x dimension of the training RM's table together; every
    run x trusted scorer of the independent table together; each untrusted scorer's runs on their own."""
    apply_holm([run["difference"][d] for run in report["runs"] for d in report["dimensions"]], alpha)
    families: dict[str, list[dict]] = {}
    for run in report["runs"]:
        for name, comp in run.get("independent", {}).items():
            if "difference" in comp.get("mean", {}):
                trusted = report["scorers"][name]["standing"] == "trusted"
                families.setdefault("trusted" if trusted else name, []).append(comp["mean"]["difference"])
    for family in families.values():
        apply_holm(family, alpha)


def write_sweep_markdown(report: dict, path: Path) -> None:
    dims = report["dimensions"]
    star = lambda c: " *" if c.get("significant") else ""  # noqa: E731
    lines = ["# Reward-weight sweep", "",
             f"{len(report['runs'])} GRPO runs of {report['max_steps']} steps; each evaluated on {report['prompts']} "
             "eval prompts on every dimension. Cells: tuned - base [95% paired bootstrap interval]; * = significant "
             "after Holm-Bonferroni over every cell of the table.", "",
             f"Training RM ({TRAINED_ON}; n = {report['prompts']} prompts per cell):", "",
             "| weights | " + " | ".join(dims) + " | length |", "|---" * (len(dims) + 2) + "|"]
    for run in report["runs"]:
        weights = ", ".join(f"{d}={w:.2f}" for d, w in run["weights"].items())
        cells = [format_interval(c) + star(c) for c in (run["difference"][d] for d in dims)]
        lines.append(f"| {weights} | " + " | ".join(cells) + f" | {run['tuned']['length_tokens']:.1f} |")
    base = report["base"]
    lines.append("| base (absolute) | " + " | ".join(f"{base['mean'][d]:.3f}" for d in dims)
                 + f" | {base['length_tokens']:.1f} |")
    scorers = report.get("scorers", {})
    if scorers and report["runs"]:
        lines += ["", "Independent scorers (never trained on): gain on the mean of each scorer's dimensions, divided "
                  "by its top level [95% interval]; n = prompts it scored; * = significant after Holm over the trusted "
                  "scorers' cells (an untrusted scorer: its own cells).", "",
                  "| weights | scorer | trust | n | gain [95% CI] |", "|---|---|---|---|---|"]
        for run in report["runs"]:
            weights = ", ".join(f"{d}={w:.2f}" for d, w in run["weights"].items())
            for name, info in scorers.items():
                comp = run["independent"][name].get("mean", {})
                cell = (format_interval(comp["normalised_gain"]) + star(comp["difference"])
                        if "normalised_gain" in comp else comp.get("note", "-"))
                lines.append(f"| {weights} | {name} | {info['standing']} | {comp.get('n', 0)} | {cell} |")
    lines += ["", "![trade-offs](tradeoff.png)", ""]
    write_text(path, "\n".join(lines))


def rm_dimensions(reward_model: str) -> list[str]:
    """The reward model's dimensions without loading its weights (a URL asks the server)."""
    if is_url(reward_model):
        client = RemoteRewardModel(reward_model)
        client.close()
        return client.dimensions
    from core.reward_config import read_rm_spec

    return read_rm_spec(reward_model).rubric.names


def train_command(launcher: str, config: Path) -> list[str]:
    prefix = shlex.split(launcher) if launcher.strip() else [sys.executable]
    return [*prefix, "-m", "policy", "grpo", "--config", str(config)]


def train_in_own_process(run_cfg: GRPORunConfig, config_path: Path, launcher: str = "") -> None:
    """Train one run in a child process, its output streamed to ours: whatever the run holds (a colocated vLLM
    engine, CUDA memory, DeepSpeed state) ends with the process."""
    write_text(config_path, dump_config(run_cfg))
    command = train_command(launcher, config_path)
    root = str(Path(__file__).resolve().parents[2])  # this checkout's packages, wherever the sweep is run from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    result = subprocess.run(command, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"sweep run {config_path.stem} failed (exit status {result.returncode}; its output is "
                           f"above); rerun it alone with: {shlex.join(command)}")


def run_template(cfg: SweepConfig) -> GRPORunConfig:
    """The GRPO config every run starts from: `grpo_config` with the sweep's steps and overrides over it."""
    overrides = {"max_steps": cfg.max_steps}
    named = (("policy", cfg.policy), ("reward_model", cfg.reward_model), ("prompts", cfg.prompts),
             ("max_completion_length", cfg.max_completion_length))
    overrides.update({key: value for key, value in named if value})
    return load_config(GRPORunConfig, cfg.grpo_config, overrides)


def run_sweep(cfg: SweepConfig) -> dict:
    template = check_run_inputs(run_template(cfg))  # before anything runs
    pick_device(cfg.eval.device)  # where the eval puts the policies (the RM joins them): a bad one stops here
    out = Path(cfg.out)
    tokenizer = load_tokenizer(template.policy)
    # every scorer sees every prompt but the independent RMs, which skip their training problems (as in the eval)
    rows = load_prompt_rows(cfg.eval.prompts, template.system_prompt, cfg.eval.max_prompts, tokenizer,
                            cfg.eval.max_prompt_tokens or template.max_prompt_tokens)
    problems = [row.get("problem_id") for row in rows]
    # Train every run first, each in its own process, while this process holds no model.
    runs_to_score = []
    for weights in weightings(rm_dimensions(template.reward_model), cfg.grid_step):
        run_dir = out / run_name(weights)
        if not (run_dir / FINAL_POLICY / "config.json").exists():
            run_cfg = template.model_copy(update={"weights": weights, "out": str(run_dir)})
            train_in_own_process(run_cfg, out / "run_configs" / f"{run_name(weights)}.yaml", cfg.launcher)
        runs_to_score.append((weights, run_dir))

    rm = load_reward_model(template.reward_model, cfg.eval.device, template.rm_dtype)
    settings = {"max_new_tokens": cfg.eval.max_new_tokens or template.max_completion_length,
                "temperature": cfg.eval.temperature or template.temperature, "top_p": template.top_p}
    _, base_out, base_scores, base = score_policy(template.policy, tokenizer, rows, rm, rm.weights, settings,
                                                  cfg.eval, "base")
    scorers = independent_scorers(cfg.eval, rm)
    contexts = [row["context"] for row in rows for _ in range(cfg.eval.samples_per_prompt)]
    boot = dict(confidence=cfg.eval.confidence, n_resamples=cfg.eval.bootstrap_resamples, seed=cfg.eval.seed)

    k = cfg.eval.samples_per_prompt
    base_independent = {s.name: prompt_scores(s, contexts, [o.text for o in base_out], k, problems) for s in scorers}
    runs = []
    for weights, run_dir in runs_to_score:
        # Every run is scored on all dimensions with its own weighting for the 'weighted' column.
        _, outs, scores, tuned = score_policy(str(run_dir / FINAL_POLICY), tokenizer, rows, rm, weights, settings,
                                              cfg.eval, run_name(weights))
        base_weighted = dict(base_scores, weighted=rm.reward(base_scores, weights))
        independent = {s.name: compare_scores(base_independent[s.name],
                                              prompt_scores(s, contexts, [o.text for o in outs], k, problems), s.top,
                                              boot)
                       for s in scorers}
        runs.append({"weights": weights, "dir": str(run_dir), "tuned": tuned, "independent": independent,
                     **compare(base_weighted, scores, cfg.eval)})
    report = {"dimensions": rm.dimensions, "max_steps": cfg.max_steps, "prompts": len(rows), "base": base,
              "runs": runs, "grpo_config": cfg.grpo_config,
              "scorers": {s.name: {"kind": s.kind, "standing": scorer_standing(s, cfg.eval.min_judge_qwk)}
                          for s in scorers}}
    sweep_holm(report, 1 - cfg.eval.confidence)
    report["plot"] = str(plot_tradeoff(runs, base, rm.dimensions, out / "tradeoff.png"))
    write_json(out / "sweep.json", report)
    write_sweep_markdown(report, out / "sweep.md")
    return report


def main(argv: list[str] | None = None) -> None:
    cfg, report = run_cli(SweepConfig, argv, "python -m policy sweep", __doc__.split("\n")[0], run_sweep)
    print(f"{len(report['runs'])} runs; report in {Path(cfg.out) / 'sweep.md'}")
