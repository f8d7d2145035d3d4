"""The classroom run's options: the GRPO run config plus the dialogue, student and judge sections.

`python -m policy classroom --config configs/policy/classroom_tiny.yaml`. Everything `GRPORunConfig` has (out,
max_steps, weights, beta, loss_type, LoRA, vLLM, ...) means the same here, except `max_completion_length`, which
limits each tutor turn (a dialogue's completion holds several turns).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from core.config import Config, Seed
from core.llm_client import ClientConfig
from core.models import DEVICE_HELP, Device
from policy.classroom.rewards import CLASSROOM_REWARDS  # importing it registers them before validation
from policy.train.config import GRPORunConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "classroom"
END_MARKER = "<end_of_conversation>"

TUTOR_SYSTEM_PROMPT = (
    "You are a patient math tutor talking with a student. Help the student solve the problem themselves: ask "
    "guiding questions, give small hints and check their reasoning, one short message at a time. Never state the "
    f"final answer. When the student has solved the problem, close the conversation by writing {END_MARKER}."
)


class ServerPlacement(Config):
    """Where a served model's `vllm serve` runs, for the reader of the config and for `python -m pipeline plan`."""

    devices: str | None = Field(None, description="CUDA_VISIBLE_DEVICES of its `vllm serve`, e.g. '4'")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one copy is split over (vllm serve "
                                                           "--tensor-parallel-size)")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="share of each of its GPUs vLLM takes")
    max_model_len: int = Field(12000, ge=256, description="vllm serve --max-model-len (PedagogicalRL: 12,000)")


class DialogueOptions(Config):
    max_turns: int = Field(3, ge=1, description="tutor turns per dialogue at most (a student reply follows each "
                                                "tutor turn but the last)")
    opening: Literal["both", "tutor", "student"] = Field(
        "both", description="who opens: 'tutor' (the student only asks for help), 'student' (the student opens with "
                            "its own, possibly wrong, attempt), 'both' (by a hash of the problem, as PedagogicalRL)")
    tutor_opening: Literal["system_prompt", "student_request"] = Field(
        "student_request", description="when the tutor opens: 'system_prompt' (it speaks first from the system prompt "
                                       "alone, as PedagogicalRL) or 'student_request' (after a canned student line "
                                       "asking for help)")
    end_marker: str = Field(END_MARKER, description="text with which the tutor ends the dialogue")
    max_dialogue_tokens: int = Field(4096, ge=64, description="stop a dialogue once prompt + completion is this long")
    think: bool = Field(False, description="invite the tutor to plan in <think>...</think> (hidden from the student "
                                           "and the judges)")


class StudentOptions(Config):
    backend: Literal["local", "openai"] = Field(
        "local", description="local: a transformers model in this process; openai: any OpenAI-compatible endpoint")
    model: str = Field("smollm2-135m-instruct", description="local student: registry name, hub id or folder")
    dtype: Literal["float32", "bfloat16"] = Field("bfloat16", description="local student's weights")
    device: Device = Field("auto", description="local student: " + DEVICE_HELP)
    batch_size: int = Field(32, ge=1, description="local student: dialogues per generate call")
    openai: ClientConfig = Field(default_factory=ClientConfig, description="endpoint of an OpenAI-compatible student "
                                                                           "(backend openai)")
    server: ServerPlacement | None = Field(None, description="backend openai: the GPUs its `vllm serve` holds "
                                                             "(counted by `pipeline plan`); None: not on this run's "
                                                             "GPUs")
    temperature: float = Field(0.6, gt=0, description="student sampling temperature (PedagogicalRL: 0.6)")
    max_reply_tokens: int = Field(48, ge=1, description="tokens per student reply")
    solve_attempts: int = Field(4, ge=1, description="final solutions the student writes after the dialogue (the "
                                                     "solve rate is the share that is right)")
    max_solution_tokens: int = Field(128, ge=1, description="tokens per final solution")
    seed: Seed = Field(0, description="seed of the local student's sampling (kept apart from the trainer's RNG)")
    persona: Literal["cooperative", "adversarial"] = Field(
        "cooperative", description="cooperative: works on the problem with the tutor; adversarial: tries to get the "
                                   "answer out of the tutor (prompts in configs/classroom/personas/)")
    adversarial_share: float = Field(0.0, ge=0, le=1, description="training mix: with persona cooperative, this "
                                                                   "share of the dialogues (by a hash of the "
                                                                   "problem and the sample) meets the adversarial "
                                                                   "student instead")
    personas: dict[str, Path] = Field(
        default_factory=lambda: {"cooperative": CONFIG_DIR / "personas" / "cooperative.txt",
                                 "adversarial": CONFIG_DIR / "personas" / "adversarial.txt"},
        description="persona -> text file of the student's system prompt ({about}, {problem} are filled in)")


class JudgeOptions(Config):
    backend: Literal["local", "openai"] = Field(
        "local", description="local: OK/REJECT read from a transformers model's next-token probabilities; openai: "
                             "a JSON answer {reasoning, decision} from an OpenAI-compatible endpoint")
    rules: dict[str, Path] = Field(
        default_factory=lambda: {"does_not_leak_answer": CONFIG_DIR / "judges" / "does_not_leak_solution.txt",
                                 "follows_pedagogical_rules": CONFIG_DIR / "judges" / "teaching_style.txt"},
        description="rule name -> Jinja template file of its judge prompt (variables: problem, answer, profile, "
                    "transcript). The defaults have PedagogicalRL's coverage (key steps and large parts of the "
                    "solution count as leaks; no reference answer shown); does_not_leak_answer.txt and "
                    "follows_pedagogical_rules.txt are the narrower earlier rules, which show the answer")
    model: str = Field("smollm2-135m-instruct", description="local judge: registry name, hub id or folder")
    dtype: Literal["float32", "bfloat16"] = Field("bfloat16", description="local judge's weights")
    device: Device = Field("auto", description="local judge: " + DEVICE_HELP)
    batch_size: int = Field(8, ge=1, description="local judge: prompts per forward pass")
    reject_threshold: float = Field(0.5, gt=0, lt=1, description="local judge: REJECT when its probability, "
                                                                 "normalised over OK and REJECT, exceeds this")
    openai: ClientConfig = Field(default_factory=ClientConfig, description="endpoint of the judge (backend openai)")
    server: ServerPlacement | None = Field(None, description="backend openai: the GPUs its `vllm serve` holds "
                                                             "(counted by `pipeline plan`); None: not on this run's "
                                                             "GPUs")
    temperature: float = Field(0.6, ge=0, description="openai judge: sampling temperature (PedagogicalRL: 0.6, so "
                                                      "its 2 samples can differ)")
    max_tokens: int = Field(400, ge=16, description="openai judge: longest answer")
    samples: int = Field(1, ge=1, description="answers per rule and dialogue (seeds 0..n-1); the rule rejects when "
                                              "any valid answer rejects")
    max_reasks: int = Field(2, ge=0, description="times a malformed answer is asked again before the fault decision")
    on_failure: Literal["ok", "reject"] = Field(
        "ok", description="decision when a judge never answers validly (time-outs, malformed JSON): PedagogicalRL "
                          "counts it as OK")
    max_transcript_tokens: int = Field(
        12000, ge=64, description="the judge reads the whole dialogue up to this many tokens (PedagogicalRL's judge "
                                  "context: 12,000); a longer one keeps its first and last halves and a warning says "
                                  "so")
    tokenizer: str | None = Field(None, description="tokenizer that counts the transcript's tokens (None: the local "
                                                    "judge's model, or the tutor's for an openai judge)")
    judge_before_solving: bool = Field(
        True, description="with the judges reward in hard mode: judge each dialogue before the student's final "
                          "solutions and sample none for a rejected one (its reward is -lambda anyway; "
                          "PedagogicalRL)")


class ClassroomConfig(GRPORunConfig):
    reward_model: str | None = Field(None, description="HPC-RM folder whose heads score the tutor's turns (mean over "
                                                       "turns); None: no RM heads")
    prompts: str = Field("runs/demo/data/rl.jsonl", description="PromptItem JSONL (the `rl` split): problem, profile "
                                                                "and reference solution per dialogue")
    out: str = Field("runs/demo/classroom", description="output folder: checkpoints, final policy, logs")
    system_prompt: str = Field(TUTOR_SYSTEM_PROMPT, description="tutor system prompt; profile and problem are "
                                                                "appended")
    extra_rewards: dict[str, dict] = Field(
        default_factory=lambda: {"solve_rate": {}, "judges": {"penalty": 1.0, "mode": "soft"}, "clean_end": {},
                                 "turn_truncated": {}},
        description=f"rewards by registry name with their parameters; the classroom's: {', '.join(CLASSROOM_REWARDS)}")
    grader: Literal["boxed", "math_verify"] = Field(
        "math_verify", description="how a final solution is graded: boxed (the last \\boxed{} equals the reference "
                                   "answer as text, PedagogicalRL's rule) or math_verify (math-verify, else the last "
                                   "number)")
    transcripts_every: int = Field(0, ge=0, description="every N optimiser steps write a few whole dialogues (turns, "
                                                        "rewards, verdicts) to <out>/transcripts.jsonl (0: never)")
    transcripts_per_write: int = Field(2, ge=1, description="dialogues per transcripts write")
    micro_batch: int | None = Field(None, ge=1, description="dialogues per device per forward/backward pass "
                                                            "(None: prompts_per_step x num_generations); with it, "
                                                            "steps_per_generation x micro_batch x processes must be "
                                                            "a multiple of num_generations")
    max_completion_length: int = Field(64, ge=1, description="tokens per tutor turn (a turn cut here is 'truncated')")
    threads: int = Field(0, ge=0, description="torch CPU threads (0: torch's default; on a machine shared with "
                                              "other jobs, 1 avoids oversubscription: 7x faster decoding measured)")
    dialogue: DialogueOptions = Field(default_factory=DialogueOptions, description="the dialogue")
    student: StudentOptions = Field(default_factory=StudentOptions, description="the frozen simulated student")
    judges: JudgeOptions = Field(default_factory=JudgeOptions, description="the pedagogical LLM judges")
