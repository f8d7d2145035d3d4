"""`python -m policy classroom --config configs/policy/classroom_tiny.yaml`: GRPO over whole tutoring dialogues.

The GRPO run of policy/train/grpo.py (same trainer, checkpoints, resume, run.json and train_log.jsonl) with three
parts swapped in: the rows are the classroom's problems, TRL's `rollout_func` runs the dialogues with the frozen
student (policy/classroom/dialogue.py), and the rewards read the dialogues (policy/classroom/rewards.py: solve rate,
judges, RM heads per tutor turn, small terms), combined by `reward_weights`. The step's time split (tutor,
student, solve attempts, judges) is logged next to TRL's metrics as `time/*`.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from core.config import run_cli
from core.models import load_tokenizer
from policy.classroom.dialogue import Classroom
from policy.classroom.config import ClassroomConfig
from policy.classroom.judges import JudgePanel
from policy.classroom.rewards import TurnHeadReward
from policy.train.grpo import build_trainer, run_grpo
from policy.classroom.student import build_student, load_personas
from policy.classroom.transcripts import TranscriptWriter


def judges_first(cfg: ClassroomConfig) -> bool:
    """Whether the rollout judges before the final solutions: the judges reward in hard mode, judge_before_solving."""
    judges = cfg.extra_rewards.get("judges")
    return judges is not None and judges.get("mode") == "hard" and cfg.judges.judge_before_solving


def build_classroom(cfg: ClassroomConfig, tokenizer, student=None, panel: JudgePanel | None = None) -> Classroom:
    """`panel`: the judges that, in hard mode, judge before the final solutions."""
    student = student if student is not None else build_student(cfg.student)
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return Classroom(tokenizer, student, cfg.dialogue, cfg.student, cfg.system_prompt, eos, grader=cfg.grader,
                     personas=load_personas(cfg.student.personas), judge_first=panel)


def build_classroom_trainer(cfg: ClassroomConfig, rm=None, student=None):
    """(trainer, RM cache or None) for `run_grpo`; the classroom is `trainer.classroom`."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL 1.16: we know
    tokenizer = load_tokenizer(cfg.policy)
    panel = JudgePanel(cfg.judges, tokenizer) if "judges" in cfg.extra_rewards else None
    classroom = build_classroom(cfg, tokenizer, student, panel if judges_first(cfg) else None)
    rows = classroom.rows(cfg.prompts, cfg.max_prompts, cfg.max_prompt_tokens)
    services = {"judges": panel} if panel is not None else {}
    trainer, cache = build_trainer(cfg, rm, tokenizer=tokenizer, rows=rows, rollout_func=classroom.rollout_func,
                                   head_reward=TurnHeadReward, services=services)
    trainer.classroom = classroom
    if cfg.transcripts_every:
        writer = TranscriptWriter(classroom, Path(cfg.out) / "transcripts.jsonl", cfg.transcripts_every,
                                  cfg.transcripts_per_write)
        writer.trainer = trainer
        trainer.add_callback(writer)
    return trainer, cache


def run_classroom(cfg: ClassroomConfig, rm=None) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return run_grpo(cfg, rm, build=build_classroom_trainer)


def main(argv: list[str] | None = None) -> None:
    _, summary = run_cli(ClassroomConfig, argv, "python -m policy classroom", __doc__.split("\n")[0], run_classroom)
    if summary:
        print(f"saved policy to {summary['policy']} after {summary['steps']} steps ({summary['train_seconds']} s)")
