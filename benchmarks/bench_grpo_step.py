"""GRPO step benchmark: where a step's time goes, and rollout tokens/s against this machine's compute bound.

1. Compute bound: fp32 and bf16 matmul GFLOP/s measured now; a decoder needs ~2 x parameters FLOPs per generated
   token, so bound tokens/s = GFLOP/s / (2 x params).
2. Rollout variants on the real policy (same prompts, fixed number of new tokens), one lever at a time: plain
   fp32 `generate` at TRL's default batch, inverse-CDF sampling instead of torch.multinomial, bf16 weights, a
   larger batch. Ratio to plain and to the fp32 bound. The sampler's own cost is timed on its own too.
3. A few real GRPO steps (TRL GRPOTrainer via policy.train.grpo) split into generation, reward scoring and policy
   update, one lever added per row: TRL's defaults (fp32 rollouts with torch.multinomial, fp32 full fine-tuning,
   the long system prompt, num_iterations 1), + the bf16 rollout copy with inverse CDF, + bf16 autocast in the
   update, + LoRA, + the config's short system prompt, + num_iterations 2.
   Each row gives the ratio to TRL's default, the padded share of the update batch and the rollout tokens/s
   measured inside the trainer.

Absolute times vary on a shared machine; compare the ratios measured in one run.
    python benchmarks/bench_grpo_step.py --out runs/bench --steps 3
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import load_config  # noqa: E402
from core.models import load_causal_lm, load_tokenizer, set_offline  # noqa: E402
from core.sampling import inverse_cdf_sampling, sample_inverse_cdf  # noqa: E402
from core.schema import write_json, write_text  # noqa: E402
from benchmarks.compute_bound import matmul_gflops  # noqa: E402
from policy.train.config import GRPORunConfig, LoraOptions  # noqa: E402
from policy.prompts import DEFAULT_SYSTEM_PROMPT, load_prompt_rows  # noqa: E402


def sampler_ms(batch: int, vocab: int) -> dict:
    """Milliseconds per call to draw one token per row: torch.multinomial vs inverse CDF."""
    probs = torch.softmax(torch.randn(batch, vocab), -1)
    out = {}
    for name, draw in (("torch.multinomial", lambda: torch.multinomial(probs, 1)),
                       ("inverse CDF", lambda: sample_inverse_cdf(probs))):
        draw()
        started = time.perf_counter()
        for _ in range(10):
            draw()
        out[name] = (time.perf_counter() - started) * 100
    return out


def rollout_tokens_per_s(model, tokenizer, chats, batch: int, new_tokens: int, inverse_cdf: bool = False) -> float:
    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats[:batch]]
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True, top_k=0,
                  pad_token_id=tokenizer.pad_token_id)
    sampler = inverse_cdf_sampling() if inverse_cdf else contextlib.nullcontext()
    started = time.perf_counter()
    with torch.no_grad(), sampler:
        out = model.generate(**enc, **kwargs)
    return (out.shape[1] - enc["input_ids"].shape[1]) * batch / (time.perf_counter() - started)


def grpo_step_split(cfg: GRPORunConfig, rm) -> dict:
    from transformers import TrainerCallback

    from policy.train.grpo import build_trainer

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times, self._t = [], 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self._t)

    trainer, cache = build_trainer(cfg, rm)
    clock = StepClock()
    trainer.add_callback(clock)
    trainer.train()
    # One log per step (logging_steps 1). With steps_per_generation > 1 only some steps generate, so the split
    # uses totals over all steps. The variants above already warmed this process up, so no step is skipped.
    logs = [log for log in trainer.state.log_history if "loss" in log]
    step = sum(clock.times) / len(clock.times)
    gen = sum(log.get("time/generate_s", 0.0) for log in logs) / len(logs)
    reward = sum(log.get("time/reward_s", 0.0) for log in logs) / len(logs)
    per_generation = cfg.prompts_per_step * cfg.num_generations * cfg.steps_per_generation
    padded = [log["tokens/padded_share"] for log in logs if "tokens/padded_share" in log]
    tokens = sum(log["completions/mean_length"] * per_generation for log in logs if "completions/mean_length" in log)
    return {"step_s": step, "generate_s": gen, "reward_s": reward, "update_s": step - gen - reward,
            "generate_share": gen / step, "reward_share": reward / step, "update_share": (step - gen - reward) / step,
            "rollout_tokens_per_s": tokens / (gen * len(logs)), "rm_forwards": cache.forwards,
            "steps_measured": len(logs), "padded_share": sum(padded) / max(len(padded), 1)}


def step_levers(cfg: GRPORunConfig) -> list[tuple[str, dict]]:
    """One lever at a time, each row adding to the previous one, from TRL's defaults to the config's own settings
    (its LoRA, system prompt and num_iterations); the config's values for everything else (prompt and completion
    lengths, group size)."""
    lora = cfg.lora if cfg.lora.enabled else LoraOptions(enabled=True)
    rows = [("TRL defaults (fp32 rollouts with torch.multinomial, fp32 update, full fine-tuning, long system "
             "prompt, num_iterations 1)",
             {"rollout_dtype": "float32", "rollout_sampler": "torch", "bf16": False, "steps_per_generation": 1,
              "lora": LoraOptions(), "system_prompt": DEFAULT_SYSTEM_PROMPT, "num_iterations": 1})]
    for name, change in (("+ bf16 rollout copy + inverse CDF", {"rollout_dtype": "bfloat16",
                                                                 "rollout_sampler": "inverse_cdf"}),
                         ("+ bf16 autocast in the update", {"bf16": True}),
                         (f"+ LoRA r{lora.r} (reference log-probs with the adapter off)", {"lora": lora}),
                         ("+ the config's short system prompt", {"system_prompt": cfg.system_prompt}),
                         ("+ num_iterations 2 (two updates per generated batch)", {"num_iterations": 2})):
        rows.append((name, {**rows[-1][1], **change}))
    return rows


def markdown(result: dict) -> str:
    bound = result["bound"]
    lines = ["# GRPO step benchmark", "", f"Policy {result['policy']} ({bound['params_m']:.0f}M parameters). "
             f"Measured now: fp32 matmul {bound['fp32_gflops']:.0f} GFLOP/s -> fp32 bound "
             f"{bound['fp32_tokens_per_s']:.0f} tokens/s; bf16 matmul {bound['bf16_gflops']:.0f} GFLOP/s.", "",
             "## Rollout generation", "", "| variant | tokens/s | x plain | / fp32 bound |", "|---|---|---|---|"]
    plain = result["rollouts"][0]["tokens_per_s"]
    for r in result["rollouts"]:
        lines.append(f"| {r['variant']} | {r['tokens_per_s']:.1f} | {r['tokens_per_s'] / plain:.2f} | "
                     f"{r['tokens_per_s'] / bound['fp32_tokens_per_s']:.2f} |")
    lines += ["", "Drawing one token per row from the softmax over the vocabulary, ms per call:", "",
              "| rows | torch.multinomial | inverse CDF |", "|---|---|---|"]
    for rows, ms in result["sampler_ms"].items():
        lines.append(f"| {rows} | {ms['torch.multinomial']:.1f} | {ms['inverse CDF']:.1f} |")
    lines += ["", "## GRPO step split (TRL GRPOTrainer)", "",
              "| setting | step s | x TRL default | generation s | reward s | update s | padded share | "
              "rollout tokens/s |", "|---|---|---|---|---|---|---|---|"]
    first = next(iter(result["steps"].values()))["step_s"]
    for name, s in result["steps"].items():
        lines.append(f"| {name} | {s['step_s']:.1f} | {s['step_s'] / first:.2f} | {s['generate_s']:.1f} "
                     f"({s['generate_share']:.0%}) | {s['reward_s']:.2f} | {s['update_s']:.1f} "
                     f"({s['update_share']:.0%}) | {s['padded_share']:.0%} | {s['rollout_tokens_per_s']:.1f} |")
    lines += ["", f"Each row: {result['steps_per_row']} whole generation cycles; a step is one optimizer step (with "
              "num_iterations 2 every other step generates, so its generation time is halved per step). Completions "
              f"up to {result['max_completion_length']} tokens, prompts cut to {result['max_prompt_tokens']}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/policy/tiny.yaml", help="GRPO config for the step split")
    parser.add_argument("--prompts", default=None, help="PromptItem JSONL (default: the config's)")
    parser.add_argument("--reward-model", default=None, help="RM folder (default: untrained minilm-l6 HPC heads, "
                                                             "which cost the same to run)")
    parser.add_argument("--steps", type=int, default=3, help="GRPO steps per setting")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens per rollout in the generate variants")
    parser.add_argument("--large-batch", type=int, default=64, help="the larger generation batch to compare")
    parser.add_argument("--out", default="runs/bench", help="folder for grpo_step.json / grpo_step.md")
    args = parser.parse_args()
    set_offline()
    torch.manual_seed(0)

    overrides = {"max_steps": args.steps, "save_steps": 10_000, "resume": False}
    if args.prompts:
        overrides["prompts"] = args.prompts
    cfg = load_config(GRPORunConfig, args.config, overrides)
    tokenizer = load_tokenizer(cfg.policy)
    # The same prompts the GRPO run trains on (cut to its token limit), so both parts see the same lengths.
    chats = [row["prompt"] for row in load_prompt_rows(cfg.prompts, cfg.system_prompt, None, tokenizer,
                                                        cfg.max_prompt_tokens)]
    big = args.large_batch
    chats = (chats * (big // len(chats) + 1))[:big]
    model = load_causal_lm(cfg.policy).eval()
    params = sum(p.numel() for p in model.parameters())
    fp32, bf16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    bound = {"params_m": params / 1e6, "fp32_gflops": fp32, "bf16_gflops": bf16,
             "fp32_tokens_per_s": fp32 * 1e9 / (2 * params), "bf16_tokens_per_s": bf16 * 1e9 / (2 * params)}
    trl_batch = cfg.prompts_per_step * cfg.num_generations
    bf16_model = copy.deepcopy(model).to(torch.bfloat16)
    variants = [
        (f"plain fp32, batch {trl_batch} (TRL default)", model, trl_batch, False),
        (f"fp32 + inverse-CDF sampling, batch {trl_batch}", model, trl_batch, True),
        (f"bf16 weights + inverse CDF, batch {trl_batch} (demo GRPO)", bf16_model, trl_batch, True),
        (f"bf16 weights + inverse CDF, batch {4 * trl_batch}", bf16_model, 4 * trl_batch, True),
        (f"fp32 + torch.multinomial, batch {big}", model, big, False),
        (f"bf16 weights + inverse CDF, batch {big}", bf16_model, big, True),
    ]
    rollout_tokens_per_s(model, tokenizer, chats, 2, 4)  # warm-up: the first generate call pays one-off costs
    rollout_tokens_per_s(bf16_model, tokenizer, chats, 2, 4, True)
    rollouts = []
    for name, m, batch, inverse_cdf in variants:
        speed = rollout_tokens_per_s(m, tokenizer, chats, batch, args.new_tokens, inverse_cdf)
        rollouts.append({"variant": name, "tokens_per_s": speed})
        print(f"{name}: {speed:.1f} tokens/s", flush=True)
    sampler = {b: sampler_ms(b, model.config.vocab_size) for b in (trl_batch, big)}
    del bf16_model

    from core.reward_model import HPCRewardModel

    rm = (HPCRewardModel.from_pretrained(args.reward_model) if args.reward_model
          else HPCRewardModel.from_backbone("minilm-l6", "hpc"))
    out = Path(args.out)
    steps = {}
    for name, update in step_levers(cfg):
        # Whole generation cycles only: with steps_per_generation k or num_iterations k, every k-th step generates.
        cycle = update.get("steps_per_generation", 1) * update.get("num_iterations", cfg.num_iterations)
        run_cfg = cfg.model_copy(update={**update, "out": str(out / "grpo_tmp"), "weights": None,
                                         "max_steps": args.steps * cycle})
        steps[name] = grpo_step_split(run_cfg, rm)
        print(name, json.dumps({k: round(v, 3) for k, v in steps[name].items()}), flush=True)
    result = {"policy": cfg.policy, "bound": bound, "rollouts": rollouts, "sampler_ms": sampler, "steps": steps,
              "config": args.config, "new_tokens": args.new_tokens, "steps_per_row": args.steps,
              "max_completion_length": cfg.max_completion_length, "max_prompt_tokens": cfg.max_prompt_tokens}
    write_json(out / "grpo_step.json", result)
    write_text(out / "grpo_step.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
