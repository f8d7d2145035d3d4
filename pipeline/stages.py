"""The pipeline's stages and the files that connect them: each stage reads the previous stages' outputs in one
run directory. The stage list is the one place that says which command writes which file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from core.config import Config
from pipeline.runner import StagePlan, python_module

STAGE_ORDER = [
    "data", "generate", "annotate", "mrbench_human", "mrbench_label", "agreement", "consistency", "rm",
    "mrbench_rm", "grpo", "eval", "sweep", "classroom", "classroom_eval",
]
# What a run without --only runs (`make demo`). The classroom stays out: the demo's stages already fill its 30-minute
# budget on 2 CPU cores and `make classroom` adds about 5 minutes more (README, "The classroom").
DEMO_STAGES = [name for name in STAGE_ORDER if not name.startswith("classroom")]


class StageSettings(Config):
    config: Path | None = Field(None, description="the stage's own YAML config (its CLI's --config)")
    args: dict[str, Any] = Field(default_factory=dict, description="extra flags for the stage's CLI: flag -> value")


class PipelineConfig(Config):
    """A whole run: which config each stage uses, plus per-stage flag overrides."""

    name: str = Field("tiny", description="name shown in reports")
    run_dir: Path = Field(Path("runs/demo"), description="folder every stage reads from and writes to")
    seed: int = Field(0, description="recorded in the manifest; stage configs carry their own seeds")
    rubric: str = Field("hpc", description="rubric for generated responses, labels, RM and policy")
    mrbench_path: Path = Field(
        Path("data/mrbench_v3_dev/mrbench_v3_devset.json"),
        description="real human labels (rubric mrbench) for judge agreement and the RM consistency experiment",
    )
    stages: dict[str, StageSettings] = Field(
        default_factory=dict, description=f"settings per stage, keyed by stage name: {STAGE_ORDER}"
    )


def _flags(settings: StageSettings) -> list[str]:
    out = ["--config", str(settings.config)] if settings.config else []
    for flag, value in settings.args.items():
        out.append("--" + flag.replace("_", "-"))
        if isinstance(value, (list, dict)):
            out.append(json.dumps(value))
        else:
            out.append(str(value).lower() if isinstance(value, bool) else str(value))
    return out


def plan_stages(cfg: PipelineConfig) -> dict[str, StagePlan]:
    run = cfg.run_dir
    unknown = set(cfg.stages) - set(STAGE_ORDER)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)} in config; stages are {STAGE_ORDER}")

    def flags(name: str) -> list[str]:
        return _flags(cfg.stages.get(name, StageSettings()))

    data, labels, mr = run / "data", run / "labels", run / "mrbench"
    reports = run / "reports"
    plans = [
        StagePlan("data", "prompt sets with student profiles (rm/rl/eval)",
                  python_module("annotation", "data", *flags("data"), "--out", data),
                  [data / "rm.jsonl", data / "rl.jsonl", data / "eval.jsonl"]),
        StagePlan("generate", "candidate tutor responses for the rm split",
                  python_module("annotation", "generate", *flags("generate"), "--prompts", data / "rm.jsonl",
                                "--out", run / "responses.jsonl"),
                  [run / "responses.jsonl"], ["data"]),
        StagePlan("annotate", f"LLM-judge labels on the {cfg.rubric} rubric",
                  python_module("annotation", "label", *flags("annotate"), "--items", run / "responses.jsonl",
                                "--rubric", cfg.rubric, "--out", labels),
                  [labels / "labels.jsonl"], ["generate"]),
        StagePlan("mrbench_human", "MRBench V3 dev human labels as interchange",
                  python_module("annotation", "import", "--format", "mrbench", "--input", cfg.mrbench_path,
                                "--rubric", "mrbench", "--out", mr / "human.jsonl"),
                  [mr / "human.jsonl"]),
        StagePlan("mrbench_label", "the local judge's labels of MRBench responses",
                  python_module("annotation", "label", *flags("mrbench_label"), "--items", mr / "human.jsonl",
                                "--rubric", "mrbench", "--out", mr / "llm"),
                  [mr / "llm" / "labels.jsonl"], ["mrbench_human"]),
        StagePlan("agreement", "human vs LLM-judge agreement on MRBench",
                  python_module("annotation", "agreement", "--labels", mr / "human.jsonl",
                                mr / "llm" / "labels.jsonl", "--rubric", "mrbench", "--out", reports / "agreement"),
                  [reports / "agreement" / "agreement.json"], ["mrbench_label"]),
        StagePlan("consistency", "RM on human labels vs RM on LLM labels, on held-out human labels",
                  python_module("hpc_rm", "consistency", *flags("consistency"), "--human", mr / "human.jsonl",
                                "--llm", mr / "llm" / "labels.jsonl", "--out", reports / "consistency"),
                  [reports / "consistency" / "consistency.json"], ["mrbench_label"]),
        StagePlan("rm", "HPC reward model trained on the LLM labels",
                  python_module("hpc_rm", "train", *flags("rm"), "--labels", labels / "labels.jsonl",
                                "--rubric", cfg.rubric, "--out", run / "rm"),
                  [run / "rm" / "rm_config.json"], ["annotate"]),
        StagePlan("mrbench_rm", "an RM on MRBench's human labels: the eval's human-grounded independent judge",
                  python_module("hpc_rm", "train", *flags("mrbench_rm"), "--labels", mr / "human.jsonl",
                                "--rubric", "mrbench", "--out", run / "mrbench_rm"),
                  [run / "mrbench_rm" / "rm_config.json"], ["mrbench_human"]),
        StagePlan("grpo", "GRPO on the weighted RM reward with a KL penalty",
                  python_module("policy", "grpo", *flags("grpo"), "--reward-model", run / "rm",
                                "--prompts", data / "rl.jsonl", "--out", run / "policy"),
                  [run / "policy" / "run.json"], ["rm", "data"], state_dir=run / "policy"),
        # The eval also asks scorers the policy never trained on: the MRBench RM (kept off MRBench's problems) and
        # the judges of the eval config, whose agreement with MRBench's humans the agreement stage measured.
        StagePlan("eval", "base vs tuned policy on held-out eval prompts, by the training RM and independent scorers",
                  python_module("policy", "eval", *flags("eval"), "--run", run / "policy",
                                "--prompts", data / "eval.jsonl", "--rms", json.dumps([str(run / "mrbench_rm")]),
                                "--exclude-problems-from", cfg.mrbench_path,
                                "--judge-agreement", reports / "agreement" / "agreement.json",
                                "--out", reports / "policy_eval"),
                  [reports / "policy_eval" / "report.json"], ["grpo", "mrbench_rm", "agreement"]),
        StagePlan("sweep", "reward-weight sweep and single-dimension ablations",
                  python_module("policy", "sweep", *flags("sweep"), "--reward-model", run / "rm",
                                "--prompts", data / "rl.jsonl", "--eval.prompts", data / "eval.jsonl",
                                "--eval.rms", json.dumps([str(run / "mrbench_rm")]),
                                "--eval.exclude-problems-from", cfg.mrbench_path, "--out", run / "sweep"),
                  [run / "sweep" / "sweep.json"], ["rm", "data", "mrbench_rm"], state_dir=run / "sweep"),
        StagePlan("classroom", "GRPO over whole dialogues with a simulated student (solve rate, judges)",
                  python_module("policy", "classroom", *flags("classroom"), "--prompts", data / "rl.jsonl",
                                "--out", run / "classroom"),
                  [run / "classroom" / "run.json"], ["data"], state_dir=run / "classroom"),
        StagePlan("classroom_eval", "base vs tuned tutor in the classroom on held-out problems",
                  python_module("policy", "classroom-eval", *flags("classroom_eval"), "--run", run / "classroom",
                                "--prompts", data / "eval.jsonl", "--out", reports / "classroom_eval"),
                  [reports / "classroom_eval" / "report.json"], ["classroom"]),
    ]
    return {plan.name: plan for plan in plans}


def with_needs(plans: dict[str, StagePlan], targets: list[str]) -> list[StagePlan]:
    """The targets and everything they read from, in pipeline order."""
    wanted: set[str] = set()

    def visit(name: str) -> None:
        if name not in plans:
            raise ValueError(f"unknown stage {name!r}; stages are {STAGE_ORDER}")
        if name not in wanted:
            wanted.add(name)
            for need in plans[name].needs:
                visit(need)

    for target in targets:
        visit(target)
    return [plans[name] for name in STAGE_ORDER if name in wanted]
