"""`python -m policy eval --run runs/demo/policy`: base vs tuned policy on the held-out `eval` prompts.

Both policies answer every eval prompt (same sampling settings as training); the reward model scores every
response. Reported: per-dimension and weighted mean RM scores with paired bootstrap 95% intervals (tuned minus
base, per prompt), win rate under the RM, KL(tuned || base) estimated token by token on the tuned policy's own
samples, response length, distinct-n, the share of training groups with zero reward spread (TRL's
`frac_reward_zero_std`), perplexity on held-out GSM8K reference solutions, and an lm-eval-harness hook.

Because the training RM is the one thing the policy was optimised against, its gain is not evidence on its own:
`--judges` (LLM judges, the specs of `annotation label`) and `--rms` (other RM folders) score the same responses,
and the report puts each one's gain next to the training RM's and flags a gain only the training RM sees
(`policy/evaluation/independent.py`). Rule-based checks (answer leaked, empty, cut at the token limit, length) run every time.
`--tutorbench.settings` adds MathTutorBench's teacher-turn win rates and `--tutorbench.gsm8k-accuracy-items` GSM8K
accuracy (`policy/evaluation/tutorbench.py`).
Models run on `--device` (auto: the GPU when there is one) in `--dtype` (auto: bf16 on a GPU, float32 on cpu);
`--sampler vllm` samples every response through vLLM's offline engine instead of transformers' generate.
`--tuned-responses FILE` scores a responses file (e.g. `policy bon`'s best-of-n picks) as the tuned side instead
of sampling a tuned policy; what needs the tuned model is not measured (`policy/evaluation/responses_file.py`).
Writes report.md, report.json, responses.jsonl and plots to `<run>/eval` (or --out).
"""
from __future__ import annotations

import gc
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, model_validator

from core.config import Config, ConfigError, Seed, run_cli
from core.models import (DEVICE_HELP, DTYPE_HELP, Device, Dtype, check_model_exists, load_causal_lm, load_tokenizer,
                         pick_device, pick_dtype, resolve_model)
from core.rubric import load_rubric
from core.schema import write_json, write_jsonl
from core.sources import load_mrbench_problems
from policy.evaluation.independent import (Scorer, by_prompt_kind, judge_scorers, load_agreement, load_rm_scorers,
                                           per_prompt, prompt_scores, rm_differences, rm_scorer, score_comparison,
                                           tutorbench_holm)
from policy.prompts import DEFAULT_SYSTEM_PROMPT, load_prompt_rows
from policy.evaluation.responses_file import not_measured, responses_file_rollouts
from policy.evaluation.report import (lm_eval_section, plot_dimension_changes, plot_gaps, plot_training_curves,
                                      write_markdown)
from policy.evaluation.verdict import verdict_line
from policy.rollout import Rollout, reference_perplexity
from policy.evaluation.response_checks import PhaseClock, kl_on_tuned_samples, rule_checks
from core.stats import distinct_n
from policy.evaluation.tutorbench import (TutorBenchOptions, gsm8k_accuracy, load_task, model_sampler, over_problems,
                                          teacher_win_rates, write_teacher_turns)


class VLLMSamplerOptions(Config):
    gpu_memory_utilization: float = Field(0.45, gt=0, le=1, description="share of the GPU's memory one vLLM engine "
                                                                        "may take (weights + KV cache); the "
                                                                        "transformers copies kept for log-probs and "
                                                                        "KL need the rest")
    max_model_len: int | None = Field(None, ge=16, description="longest prompt + response the engine reserves KV "
                                                               "cache for (None: the model's own limit)")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one engine spreads over")
    enforce_eager: bool = Field(False, description="skip CUDA-graph capture: the engine starts faster, samples "
                                                   "slower")


class EvalConfig(Config):
    run: str = Field("runs/demo/policy", description="output folder of `python -m policy grpo` (reads run.json)")
    tuned: str | None = Field(None, description="tuned policy folder (None: <run>/policy)")
    tuned_responses: str | None = Field(None, description="a responses JSONL (policy bon's responses_n{n}.jsonl, or "
                                        "an eval's responses.jsonl filtered to one policy) scored as the tuned side "
                                        "instead of sampling --tuned; KL, GSM8K perplexity, tutorbench and lm-eval, "
                                        "which need the tuned model, are not measured")
    base: str | None = Field(None, description="base policy (None: the run's starting policy)")
    reward_model: str | None = Field(None, description="HPC-RM folder (None: the run's reward model)")
    weights: dict[str, NonNegativeFloat] | None = Field(
        None, description="weights of the summed reward (None: the run's)")
    system_prompt: str | None = Field(None, description="tutor system prompt (None: the run's)")
    prompts: str = Field("runs/demo/data/eval.jsonl", description="held-out PromptItem JSONL: the `eval` split")
    max_prompts: int | None = Field(None, ge=2, description="use only the first N eval prompts (None: all)")
    max_prompt_tokens: int | None = Field(None, ge=1, description="skip longer eval prompts (None: keep all)")
    samples_per_prompt: int = Field(1, ge=1, description="responses per prompt and policy (averaged per prompt)")
    max_new_tokens: int | None = Field(None, ge=1, description="tokens per response (None: the run's limit)")
    temperature: float | None = Field(None, gt=0, description="sampling temperature (None: the run's)")
    batch_size: int = Field(16, ge=1, description="generation and scoring batch size")
    device: Device = Field("auto", description="base and tuned policies and the reward model: " + DEVICE_HELP)
    dtype: Dtype = Field("auto", description="base and tuned policies' weights: " + DTYPE_HELP)
    sampler: Literal["transformers", "vllm"] = Field(
        "transformers", description="who samples the responses (eval prompts, teacher turns, GSM8K): transformers "
                                    "generate on --device, or vLLM's offline engine (GPU; `pip install -e '.[gpu]'`; "
                                    "one engine per policy and part, shut down before the next; log-probs, KL and "
                                    "perplexity still use transformers)")
    vllm: VLLMSamplerOptions = Field(default_factory=VLLMSamplerOptions, description="vLLM engine (--sampler vllm)")
    gsm8k: str | None = Field("data/gsm8k/test.jsonl", description="GSM8K test JSONL for perplexity (None: skip)")
    gsm8k_items: int = Field(32, ge=1, description="GSM8K reference solutions used for perplexity")
    lm_eval_tasks: list[str] = Field(default_factory=list, description="lm-eval-harness tasks to run (GPU users); "
                                                                       "the command is printed when it is missing")
    judges: list[str] = Field(default_factory=list, description="independent LLM judges (the specs of `annotation "
                                                                 "label`: local?model=..., openai, a YAML path)")
    judge_rubric: str | None = Field(None, description="rubric the judges score on (None: the training RM's)")
    judge_agreement: str | None = Field(None, description="agreement.json of `annotation agreement` measuring these "
                                                          "judges against human labels, shown next to their verdicts")
    min_judge_qwk: float = Field(0.2, ge=-1, le=1, description="a judge is trusted (may raise flags) only when the "
                                 "mean over dimensions of the lower 95% bound of its QWK with human labels, measured "
                                 "on the judge rubric (--judge-agreement), reaches this")
    rms: list[str] = Field(default_factory=list, description="independent reward-model folders (e.g. one trained on "
                                                             "human labels of other items)")
    exclude_problems_from: str | None = Field(None, description="MRBench file: the independent RMs (--rms, trained on "
                                                                "it) leave eval prompts on its problems unscored and "
                                                                "tutorbench draws no dialogue on them; every other "
                                                                "scorer sees every eval prompt")
    tutorbench: TutorBenchOptions = Field(default_factory=TutorBenchOptions,
                                          description="MathTutorBench-style teacher-turn tasks and GSM8K accuracy")
    confidence: float = Field(0.95, gt=0, lt=1, description="bootstrap interval level")
    bootstrap_resamples: int = Field(2000, ge=100, description="bootstrap resamples")
    seed: Seed = Field(0, description="sampling and bootstrap seed")
    out: str | None = Field(None, description="report folder (None: <run>/eval)")

    @model_validator(mode="after")
    def _one_tuned_side(self) -> "EvalConfig":
        if self.tuned and self.tuned_responses:
            raise ValueError("tuned_responses: give --tuned or --tuned-responses, not both")
        return self


def run_settings(cfg: EvalConfig) -> dict:
    """Fill what the eval config leaves open from the GRPO run's run.json."""
    path = Path(cfg.run) / "run.json"
    run = json.loads(path.read_text()) if path.exists() else {}
    if not run and (cfg.base is None or cfg.tuned is cfg.tuned_responses is None or cfg.reward_model is None):
        raise ConfigError(f"{path}: not found; give --base, --tuned (or --tuned-responses) and --reward-model "
                          "explicitly")
    train = run.get("config", {})
    return {
        "base": cfg.base or run["base_policy"], "tuned": None if cfg.tuned_responses else cfg.tuned or run["policy"],
        "tuned_responses": cfg.tuned_responses,
        "reward_model": cfg.reward_model or run["reward_model"], "weights": cfg.weights or run.get("weights"),
        "system_prompt": cfg.system_prompt or run.get("system_prompt") or DEFAULT_SYSTEM_PROMPT,
        "max_prompt_tokens": cfg.max_prompt_tokens,
        "max_new_tokens": cfg.max_new_tokens or train.get("max_completion_length", 64),
        "temperature": cfg.temperature or train.get("temperature", 1.0), "top_p": train.get("top_p", 1.0),
        "train_log": Path(cfg.run) / "train_log.jsonl", "out": Path(cfg.out or Path(cfg.run) / "eval"),
    }


def training_summary(log_path: Path) -> dict:
    """Zero-spread share, KL and reward over training, from TRL's logged metrics."""
    if not log_path.exists():
        return {}
    logs = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    steps = [log for log in logs if "reward" in log]
    if not steps:
        return {}
    pick = lambda key: [float(log[key]) for log in steps if key in log]  # noqa: E731
    return {
        "frac_reward_zero_std": float(np.mean(pick("frac_reward_zero_std"))) if pick("frac_reward_zero_std") else None,
        "steps": [int(log["step"]) for log in steps], "reward": pick("reward"), "kl": pick("kl"),
        "time_generate_s": pick("time/generate_s"), "time_reward_s": pick("time/reward_s"),
    }


def load_policy(path: str, cfg: EvalConfig):
    """A policy for sampling, log-probs and perplexity, on the eval's device in its dtype (cpu: float32, as before)."""
    return load_causal_lm(path, dtype=cfg.dtype, device=cfg.device)


def require_vllm():
    """The vllm module, or one error line (bad input: the option asks for a package this machine lacks)."""
    try:
        import vllm
    except ImportError as err:
        raise ConfigError(f"field sampler: 'vllm' needs the vllm package, which is not importable here ({err}); "
                          "install it (pip install -e '.[gpu]', a CUDA machine) or use --sampler transformers") from None
    return vllm


@contextmanager
def vllm_engine(path: str, cfg: EvalConfig):
    """vLLM's offline engine for one policy; shut down and freed on exit, so the next one finds the memory."""
    import torch

    vllm = require_vllm()
    device = pick_device(cfg.device)
    options = cfg.vllm
    llm = vllm.LLM(model=resolve_model(path), dtype=pick_dtype(cfg.dtype, device), seed=cfg.seed,
                   gpu_memory_utilization=options.gpu_memory_utilization, max_model_len=options.max_model_len,
                   tensor_parallel_size=options.tensor_parallel_size, enforce_eager=options.enforce_eager)
    try:
        yield llm
    finally:
        engine = getattr(llm, "llm_engine", None)  # LLM.shutdown in newer vLLM; the V1 engine core's before
        shutdown = getattr(llm, "shutdown", None) or getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        del llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def vllm_sample(llm, tokenizer, chats: list[list[dict]], *, max_new_tokens: int, temperature: float = 1.0,
                top_p: float = 1.0, batch_size: int = 16, seed: int = 0, desc: str = "sampling") -> list[Rollout]:
    """`sample_responses` through a vLLM engine: the same chat-template prompt ids, one completion per chat (each
    request its own seed, so repeated prompts give distinct samples), cut after the first eos, in input order."""
    from vllm import SamplingParams

    prompt_ids = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=False)
                  for c in chats]
    params = [SamplingParams(n=1, temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                             max_tokens=max_new_tokens, seed=seed * 1_000_003 + i) for i in range(len(chats))]
    print(f"{desc}: {len(chats)} prompts through vLLM", flush=True)
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], params, use_tqdm=True)
    eos, rollouts = tokenizer.eos_token_id, []
    for ids, output in zip(prompt_ids, outputs, strict=True):
        completion = list(output.outputs[0].token_ids)
        if eos in completion:
            completion = completion[:completion.index(eos) + 1]
        rollouts.append(Rollout(ids, completion, tokenizer.decode(completion, skip_special_tokens=True).strip()))
    return rollouts


@contextmanager
def policy_sampler(cfg: EvalConfig, path: str, model, tokenizer):
    """A `Sampler` for one policy: its loaded transformers model, or (--sampler vllm) an engine on `path`."""
    if cfg.sampler == "vllm":
        with vllm_engine(path, cfg) as llm:
            yield lambda chats, **kwargs: vllm_sample(llm, tokenizer, chats, **kwargs)
    else:
        yield model_sampler(model, tokenizer)


def score_policy(path: str, tokenizer, rows: list[dict], rm, weights: dict, s: dict, cfg: EvalConfig, name: str):
    """(model, rollouts, per-prompt RM scores incl. 'weighted', summary) for one policy on the eval rows."""
    model, rollouts = sample_policy(path, tokenizer, rows, s, cfg, name)
    return model, rollouts, *score_responses(rollouts, rows, rm, weights, cfg)


def sample_policy(path: str, tokenizer, rows: list[dict], s: dict, cfg: EvalConfig, name: str):
    """(model, rollouts): one policy's `samples_per_prompt` responses per eval row, prompt-major."""
    chats = [row["prompt"] for row in rows for _ in range(cfg.samples_per_prompt)]
    sampling = dict(max_new_tokens=s["max_new_tokens"], temperature=s["temperature"], top_p=s["top_p"],
                    batch_size=cfg.batch_size, seed=cfg.seed, desc=f"sampling {name}")
    # with --sampler vllm the engine is gone before the transformers copy (for log-probs) loads
    model = None if cfg.sampler == "vllm" else load_policy(path, cfg)
    with policy_sampler(cfg, path, model, tokenizer) as sample:
        rollouts = sample(chats, **sampling)
    if model is None:
        model = load_policy(path, cfg)
    return model, rollouts


def score_responses(rollouts, rows: list[dict], rm, weights: dict, cfg: EvalConfig):
    """(per-prompt RM scores incl. 'weighted', summary) for responses lined up with the eval rows (prompt-major,
    `samples_per_prompt` each), sampled or read from a file."""
    k = cfg.samples_per_prompt
    preds = rm.score([row["context"] for row in rows for _ in range(k)], [r.text for r in rollouts],
                     batch_size=cfg.batch_size)
    preds["weighted"] = rm.reward(preds, weights)
    scores = {dim: per_prompt(v, len(rows), k) for dim, v in preds.items()}
    summary = {
        "mean": {dim: float(v.mean()) for dim, v in scores.items()},
        "length_tokens": float(np.mean([len(r.completion_ids) for r in rollouts])),
        "distinct_1": distinct_n([r.completion_ids for r in rollouts], 1),
        "distinct_2": distinct_n([r.completion_ids for r in rollouts], 2),
    }
    return scores, summary


def compare(base_scores: dict, tuned_scores: dict, cfg: EvalConfig, tops: dict[str, float] | None = None) -> dict:
    """Paired differences per dimension and the win rate under the weighted reward (`rm_differences`)."""
    return rm_differences(base_scores, tuned_scores, tops, boot_options(cfg))


def boot_options(cfg: EvalConfig) -> dict:
    return dict(confidence=cfg.confidence, n_resamples=cfg.bootstrap_resamples, seed=cfg.seed)


def excluded_problems(cfg: EvalConfig) -> set[str]:
    """Problem ids an independent RM trained on MRBench must not judge (`--exclude-problems-from`)."""
    return set(load_mrbench_problems(cfg.exclude_problems_from)) if cfg.exclude_problems_from else set()


def independent_scorers(cfg: EvalConfig, rm) -> list[Scorer]:
    """The eval's judges (on --judge-rubric, else the training RM's rubric) and independent RMs."""
    rubric = load_rubric(cfg.judge_rubric) if cfg.judge_rubric else rm.rubric
    return (judge_scorers(cfg.judges, rubric, load_agreement(cfg.judge_agreement))
            + load_rm_scorers(cfg.rms, cfg.batch_size, frozenset(excluded_problems(cfg))))


def score_independently(scorers, rows, k, base_out, tuned_out) -> dict[str, tuple]:
    """Every independent scorer on the same base and tuned responses: name -> (scorer, base, tuned) per prompt."""
    contexts = [row["context"] for row in rows for _ in range(k)]
    problems = [row.get("problem_id") for row in rows]
    return {scorer.name: (scorer, *(prompt_scores(scorer, contexts, [r.text for r in outs], k, problems)
                                    for outs in (base_out, tuned_out))) for scorer in scorers}


def run_tutorbench(cfg: EvalConfig, models: dict, tokenizer, scorers, excluded: set[str], boot: dict,
                   paths: dict | None = None) -> dict:
    """Teacher-turn win rates and GSM8K accuracy; each policy samples all of its parts with one sampler (one vLLM
    engine per policy with --sampler vllm, which needs `paths`: policy name -> folder)."""
    options, out = cfg.tutorbench, {"settings": {}}
    tasks = {setting: load_task(setting, options, excluded) for setting in options.settings}
    turns: dict[str, dict[str, list[str]]] = {setting: {} for setting in tasks}
    accuracy = {}
    for name, model in models.items():
        with policy_sampler(cfg, (paths or {}).get(name), model, tokenizer) as sample:
            for setting, task in tasks.items():
                turns[setting][name] = write_teacher_turns(sample, task, options, cfg.batch_size, name)
            if options.gsm8k_accuracy_items and cfg.gsm8k:
                accuracy[name] = gsm8k_accuracy(sample, options, cfg.gsm8k, cfg.batch_size, name, boot)
    for setting, task in tasks.items():
        out["settings"][setting] = {"items": len(task.ids), "available": task.available,
                                    "file_items": task.file_items,
                                    "scores": teacher_win_rates(scorers, task, turns[setting], boot),
                                    "examples": [{"id": task.ids[i], "teacher": task.teacher[i],
                                                  **{name: t[i] for name, t in turns[setting].items()}}
                                                 for i in range(3)]}
    if accuracy:
        out["gsm8k_accuracy"] = accuracy
        if {"base", "tuned"} <= set(accuracy):
            correct = {name: np.array(a.pop("correct"), dtype=np.float64) for name, a in accuracy.items()}
            accuracy["tuned_vs_base"] = over_problems(correct["tuned"] - correct["base"], None, boot, 2.0)
    return out


def evaluate_policies(cfg: EvalConfig, rm=None) -> dict:
    from policy.train.grpo import load_reward_model

    s = run_settings(cfg)
    for name in (s["base"], s["tuned"]):  # a bad --tuned stops before the base policy is sampled
        if name is not None:
            check_model_exists(name)
    pick_device(cfg.device)  # a GPU asked for on a machine without one stops here too
    if cfg.sampler == "vllm":
        require_vllm()
    tokenizer = load_tokenizer(s["base"])
    excluded = excluded_problems(cfg)
    # every scorer sees every prompt except the independent RMs, which skip the problems they were trained on
    rows = load_prompt_rows(cfg.prompts, s["system_prompt"], cfg.max_prompts, tokenizer, s["max_prompt_tokens"])
    k = cfg.samples_per_prompt
    read_out = (responses_file_rollouts(cfg.tuned_responses, rows, k, tokenizer, s["max_new_tokens"])
                if cfg.tuned_responses else None)  # a bad responses file stops before any model loads
    if rm is None:  # on the eval's device (spread: the first GPU); an RM served over HTTP stays where it is
        rm = load_reward_model(s["reward_model"], cfg.device)
    weights = s["weights"] or rm.weights
    report = {"settings": {key: str(v) for key, v in s.items()}, "prompts": len(rows), "samples_per_prompt": k}
    clock = PhaseClock()
    base_model, base_out, base_scores, report["base"] = score_policy(s["base"], tokenizer, rows, rm, weights, s,
                                                                     cfg, "base")
    if read_out is not None:  # the tuned side is read, not sampled: no tuned model
        tuned_model, tuned_out, report["not_measured"] = None, read_out, not_measured(cfg)
        tuned_scores, report["tuned"] = score_responses(tuned_out, rows, rm, weights, cfg)
    else:
        tuned_model, tuned_out, tuned_scores, report["tuned"] = score_policy(s["tuned"], tokenizer, rows, rm,
                                                                             weights, s, cfg, "tuned")
    clock.lap("sampling and training-RM scoring")
    training = rm_scorer("rm:training", rm, "training-rm", cfg.batch_size, weights)
    boot = dict(confidence=cfg.confidence, n_resamples=cfg.bootstrap_resamples, seed=cfg.seed)
    independent = independent_scorers(cfg, rm)
    scored = score_independently(independent, rows, k, base_out, tuned_out)
    clock.lap("independent scorers")
    report.update(score_comparison(base_scores, tuned_scores, training, scored, boot, cfg.min_judge_qwk))
    report["by_kind"] = by_prompt_kind([row.get("kind", "prompt") for row in rows],
                                       {"rm:training": (training, base_scores, tuned_scores), **scored}, boot)
    report["rule_checks"] = {name: rule_checks(outs, rows, k, s["max_new_tokens"], tokenizer.eos_token_id,
                                               cfg.confidence)
                             for name, outs in (("base", base_out), ("tuned", tuned_out))}
    if tuned_model is None:
        report["kl_tuned_base"] = {"measured": False}
    else:
        report["kl_tuned_base"] = kl_on_tuned_samples(tuned_model, base_model, tuned_out, s, cfg,
                                                      tokenizer.pad_token_id)
        clock.lap("KL to the base")
    if cfg.gsm8k and tuned_model is not None:
        from core.sources import load_gsm8k

        problems = load_gsm8k(cfg.gsm8k)[:cfg.gsm8k_items]
        questions, solutions = [p.question for p in problems], [p.plain_solution for p in problems]
        report["gsm8k_perplexity"] = {
            name: reference_perplexity(model, tokenizer, questions, solutions, batch_size=cfg.batch_size)
            for name, model in (("base", base_model), ("tuned", tuned_model))
        }
        report["gsm8k_perplexity"]["items"] = len(problems)
        clock.lap("GSM8K perplexity")
    if (cfg.tutorbench.settings or cfg.tutorbench.gsm8k_accuracy_items) and tuned_model is not None:
        report["tutorbench"] = run_tutorbench(cfg, {"base": base_model, "tuned": tuned_model}, tokenizer,
                                              [training] + independent, excluded, boot,
                                              {"base": s["base"], "tuned": s["tuned"]})
        tutorbench_holm(report["tutorbench"], {n for n, r in report["independent"].items()
                                               if r["standing"] == "trusted"}, 1 - cfg.confidence)
        clock.lap("tutorbench")
    report["training"] = training_summary(s["train_log"])
    report["lm_eval"] = lm_eval_section(s["tuned"], cfg.lm_eval_tasks)

    out = s["out"]
    write_jsonl(out / "responses.jsonl", [
        {"prompt_id": rows[i // k]["id"], "policy": name, "response": r.text, "tokens": len(r.completion_ids)}
        for name, outs in (("base", base_out), ("tuned", tuned_out)) for i, r in enumerate(outs)
    ])
    gap_plot = plot_gaps(report, out / "hacking_gaps.png")
    report["plots"] = ([str(gap_plot)] if gap_plot else []) + [
        str(plot_dimension_changes(report, out / "dimension_changes.png"))]
    if report["training"]:
        report["plots"].append(str(plot_training_curves(report["training"], out / "training_curves.png")))
    report["seconds"] = clock.seconds
    print("eval seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in clock.seconds.items()), flush=True)
    write_json(out / "report.json", report)
    write_markdown(report, out / "report.md")
    return report


def main(argv: list[str] | None = None) -> None:
    _, report = run_cli(EvalConfig, argv, "python -m policy eval", __doc__.split("\n")[0], evaluate_policies)
    kl = report["kl_tuned_base"]
    kl_text = f"KL {kl['per_sequence']['mean']:.3f} nats/response" if "per_sequence" in kl else "KL not measured"
    print(f"{verdict_line(report)}; {kl_text}; report in {Path(report['settings']['out']) / 'report.md'}")
