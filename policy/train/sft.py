"""`python -m policy sft --config configs/policy/sft_tiny.yaml`: SFT on real teacher turns, PedagogicalRL's SFT
baseline.

The examples are the MathDial teacher turns that `python -m annotation data` keeps with each dialogue it cuts
before a teacher turn (`PromptItem.reference_responses`; MathDial and MathTutorBench's MathDial dialogues), from
the `rl` prompts and the files in `also_from` (the `rm` split by default; never the `eval` split, which holds other
problems). Each is a prompt-completion pair: the chat the policy would see (system prompt with the profile, the
dialogue, cut from the left to `max_prompt_tokens`) and the real teacher's turn. TRL's `SFTTrainer` trains with
the loss on the completion only (`completion_only_loss`), so the policy learns to write the turn, not the prompt.

`build_sft_trainer` is shared with `policy rft`, which trains on its own selected samples the same way.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

from core.config import ConfigError, run_cli
from core.schema import PromptItem, read_jsonl
from policy.train.methods import TrainOptions, start_run, train_and_save


class SFTRunConfig(TrainOptions):
    out: str = Field("runs/demo/sft", description="output folder: the SFT policy and its logs")
    also_from: list[str] = Field(["runs/demo/data/rm.jsonl"], description="more PromptItem files whose teacher "
                                                                          "turns are used (not the eval split)")
    max_length: int = Field(512, ge=16, description="longest prompt + completion in tokens (longer are cut)")
    max_examples: int | None = Field(None, ge=1, description="use only the first N teacher turns (None: all)")


def sft_records(rows: list[dict], completions: list[list[str]]) -> list[dict]:
    """Conversational prompt-completion records: one per (row, completion)."""
    return [{"prompt": row["prompt"], "completion": [{"role": "assistant", "content": text}]}
            for row, texts in zip(rows, completions, strict=True) for text in texts if text.strip()]


def build_sft_trainer(cfg: TrainOptions, records: list[dict], out: Path, policy: str | None = None,
                      max_length: int = 512):
    """TRL's SFTTrainer on prompt-completion records, loss on the completion tokens only."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from core.models import load_tokenizer, resolve_model
    from core.optimizer_steps import RequireOptimizerSteps
    from policy.train.methods import lora_config, trainer_args

    if not records:
        raise ConfigError(f"no training examples for {out} (nothing selected or no teacher turns)")
    name = policy or cfg.policy
    args = trainer_args(cfg, SFTConfig, out, completion_only_loss=True, max_length=max_length, packing=False)
    return SFTTrainer(model=resolve_model(name), args=args, train_dataset=Dataset.from_list(records),
                      processing_class=load_tokenizer(name), peft_config=lora_config(cfg),
                      callbacks=[RequireOptimizerSteps(f"max_steps {cfg.max_steps}")])


def teacher_turn_rows(cfg: SFTRunConfig) -> tuple[list[dict], list[list[str]]]:
    """(prompt rows, teacher turns of each) over the rl prompts and `also_from`, items with teacher turns only. A
    dialogue longer than `max_prompt_tokens` loses its oldest turns (as in `policy grpo`); one that does not fit even
    with only its last turn left is skipped and counted (a teacher turn is an example, not a prompt to answer)."""
    from core.models import load_tokenizer
    from policy.prompts import cut_from_left, prompt_row, prompt_tokens

    tokenizer = load_tokenizer(cfg.policy)
    rows, turns, skipped = [], [], 0
    for path in [cfg.prompts, *cfg.also_from]:
        for item in read_jsonl(path, PromptItem):
            if not item.reference_responses:
                continue
            if cfg.max_prompt_tokens is not None:
                item = cut_from_left(item, lambda it: prompt_tokens(
                    tokenizer, it.chat_messages(cfg.system_prompt)) <= cfg.max_prompt_tokens)
                if item is None:
                    skipped += 1
                    continue
            rows.append(prompt_row(item, cfg.system_prompt))
            turns.append(list(item.reference_responses))
    if skipped:
        print(f"sft: skipped {skipped} dialogues longer than max_prompt_tokens {cfg.max_prompt_tokens} even with "
              "only their last turn left")
    if cfg.max_examples is not None:
        rows, turns = rows[:cfg.max_examples], turns[:cfg.max_examples]
    return rows, turns


def run_sft(cfg: SFTRunConfig) -> dict:
    from core.models import check_model_exists

    for path in [cfg.prompts, *cfg.also_from]:
        read_jsonl(path, PromptItem)
    check_model_exists(cfg.policy)
    rows, turns = teacher_turn_rows(cfg)
    records = sft_records(rows, turns)
    if not records:
        raise ConfigError(f"field prompts: no teacher turn left in {[cfg.prompts, *cfg.also_from]}: no item has one "
                          "(reference_responses; SFT needs MathDial dialogues), or every dialogue with one is longer "
                          f"than max_prompt_tokens {cfg.max_prompt_tokens} even with only its last turn")
    out = Path(cfg.out)
    trainer = build_sft_trainer(cfg, records, out, max_length=cfg.max_length)
    start_run(cfg, out)
    return train_and_save(trainer, cfg, out, {"method": "sft", "examples": len(records), "samples_drawn": 0})


def main(argv: list[str] | None = None) -> None:
    cfg, summary = run_cli(SFTRunConfig, argv, "python -m policy sft", __doc__.split("\n")[0], run_sft)
    if summary:
        print(f"saved policy to {summary['policy']} after {summary['steps']} steps on {summary['examples']} teacher "
              f"turns ({summary['train_seconds']} s)")
