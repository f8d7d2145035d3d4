"""Every config shipped in configs/ loads and validates (paper-scale ones too, though they cannot run here), and
the pipeline's --dry-run prints a plan without loading a model."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.config import load_config
from core.rubric import load_rubric
from pipeline.stages import STAGE_ORDER, PipelineConfig, default_stages, plan_stages

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def stage_config_classes():
    from annotation.generate import GenerateConfig
    from annotation.label import LabelConfig
    from annotation.prompts import DataConfig
    from hpc_rm.consistency import ConsistencyConfig
    from hpc_rm.crossval import CrossValConfig
    from hpc_rm.train import TrainConfig
    from policy.classroom.config import ClassroomConfig
    from policy.classroom.eval import ClassroomEvalConfig
    from policy.train.config import GRPORunConfig
    from policy.evaluation.evaluate import EvalConfig
    from policy.experiments.sweep import SweepConfig

    baselines = baseline_config_classes()
    return {
        "data": DataConfig, "generate": GenerateConfig, "annotate": LabelConfig, "mrbench_label": LabelConfig,
        "consistency": ConsistencyConfig, "rm": TrainConfig, "mrbench_rm": TrainConfig, "grpo": GRPORunConfig, "eval": EvalConfig,
        "sweep": SweepConfig, "crossval": CrossValConfig, "classroom": ClassroomConfig,
        "classroom_eval": ClassroomEvalConfig, "compare": baselines["compare"], "sft": baselines["sft"],
    }


def baseline_config_classes():
    """configs/policy/<method>_*.yaml is a config of `python -m policy <method>` (issue #30's baselines)."""
    from policy.experiments.compare import CompareConfig
    from policy.experiments.compare_budget import config_class

    return {**{method: config_class(method) for method in ("bon", "rft", "dpo", "sft")}, "compare": CompareConfig}


def file_class(path: Path):
    """Which config class a shipped YAML file is for, by its folder and name."""
    from core.judges import load_judge_config

    classes = stage_config_classes()
    rel = path.relative_to(CONFIGS).as_posix()
    if rel.startswith("rubrics/"):
        return load_rubric
    if rel.startswith("judges/"):
        return lambda p: load_judge_config(str(p))
    by_name = {
        "tiny.yaml": PipelineConfig, "paper.yaml": PipelineConfig, "7b.yaml": PipelineConfig,
        "classroom_paper.yaml": PipelineConfig,
        "data.yaml": classes["data"], "data_paper.yaml": classes["data"], "generate.yaml": classes["generate"],
        "label.yaml": classes["annotate"], "rm/consistency.yaml": classes["consistency"],
        "rm/crossval.yaml": classes["crossval"], "rm/crossval_finetune.yaml": classes["crossval"],
        "policy/eval_tiny.yaml": classes["eval"],
        "policy/sweep.yaml": classes["sweep"],
        "policy/classroom_tiny.yaml": classes["classroom"], "policy/classroom_7b.yaml": classes["classroom"],
        "policy/classroom_eval_tiny.yaml": classes["classroom_eval"],
        "policy/classroom_paper.yaml": classes["classroom"],
        "policy/classroom_eval_paper.yaml": classes["classroom_eval"],
    }
    baseline = baseline_config_classes().get(rel.removeprefix("policy/").split("_")[0]) if rel.startswith(
        "policy/") else None
    if rel in by_name:
        cls = by_name[rel]
    elif baseline is not None:
        cls = baseline
    elif rel.startswith("rm/"):
        cls = classes["rm"]
    elif rel.startswith("policy/") and rel != "policy/accelerate_8gpu.yaml":
        cls = classes["grpo"]
    else:
        return None  # data lists (profiles, styles) and accelerate launcher files: checked as YAML below
    return lambda p: load_config(cls, p)


SHIPPED = sorted(p for p in CONFIGS.rglob("*") if p.suffix in {".yaml", ".yml", ".json"})


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_shipped_config_validates(path):
    data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and data, f"{path} is empty"
    loader = file_class(path)
    if loader is not None:
        loader(path)


@pytest.mark.parametrize("name", ["tiny", "7b", "paper"])
def test_pipeline_stage_settings_validate_against_each_stage(name):
    cfg = load_config(PipelineConfig, CONFIGS / f"{name}.yaml")
    classes = stage_config_classes()
    for stage, settings in cfg.stages.items():
        if settings.config is not None:
            assert (REPO / settings.config).exists(), f"{name}: stage {stage} names missing {settings.config}"
        load_config(classes[stage], REPO / settings.config if settings.config else None, dict(settings.args))
    assert len(plan_stages(cfg)) == len(STAGE_ORDER)


def test_dry_run_prints_the_plan_without_loading_models(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--config", "configs/paper.yaml", "--run-dir", str(tmp_path / "r"),
         "--dry-run"], cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    stages = default_stages(load_config(PipelineConfig, CONFIGS / "paper.yaml"))
    assert f"/{len(stages)}] sweep" in out.stdout and "Qwen/Qwen2.5-72B-Instruct" in out.stdout
    assert not (tmp_path / "r").exists()
    assert "torch" not in out.stderr.lower()


def test_unknown_stage_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  trian: {args: {}}\n")
    out = subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", str(bad), "--dry-run"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "trian" in out.stderr
