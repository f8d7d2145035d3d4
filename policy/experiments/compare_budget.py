"""The equal sample budget of `policy compare`: how many completions each method may draw, and the config
changes that spend it (see compare.py's docstring)."""
from __future__ import annotations

from core.config import ConfigError


def config_class(method: str):
    """The config class of `python -m policy METHOD`."""
    if method == "bon":
        from policy.train.bon import BonConfig as cls
    elif method == "rft":
        from policy.train.rft import RFTConfig as cls
    elif method == "dpo":
        from policy.train.dpo import DPORunConfig as cls
    elif method == "sft":
        from policy.train.sft import SFTRunConfig as cls
    else:
        from policy.train.config import GRPORunConfig as cls
    return cls


def grpo_samples_per_step(values: dict) -> int:
    return values["prompts_per_step"] * values["num_generations"] * values["gradient_accumulation_steps"]


def apply_budget(method: str, values: dict, budget: int, checkpoints: int) -> dict:
    """The method's config values with the budget applied (GRPO: its steps and checkpoints along the way; rft and
    dpo: their number of rl prompts)."""
    values = dict(values)
    if method == "grpo":
        per_step = grpo_samples_per_step(values)
        steps = budget // per_step
        if steps < 1:
            raise ConfigError(f"field budget: {budget} completions buy no GRPO step ({per_step} per step)")
        every = max(1, steps // checkpoints)
        values.update(max_steps=steps, save_steps=every, keep_checkpoints=True,
                      save_total_limit=max(2, steps // every + 1), resume=True)
    elif method in ("rft", "dpo"):
        per_prompt = values["n"] * values.get("iterations", 1)
        prompts = budget // per_prompt
        if prompts < 1:
            raise ConfigError(f"field budget: {budget} completions do not cover one prompt of {method} "
                              f"({per_prompt} per prompt)")
        values["max_prompts"] = prompts
    return values


def planned_samples(method: str, values: dict, rl_prompts: int, eval_prompts: int) -> int:
    """Completions the method draws from a policy: GRPO steps x per step, rft/dpo prompts x n x iterations, bon
    n x eval prompts (at inference), sft none."""
    if method == "grpo":
        return values["max_steps"] * grpo_samples_per_step(values)
    if method in ("rft", "dpo"):
        return min(values["max_prompts"], rl_prompts) * values["n"] * values.get("iterations", 1)
    if method == "bon":
        return values["n"] * eval_prompts
    return 0
