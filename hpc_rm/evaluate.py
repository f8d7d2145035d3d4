"""`python -m hpc_rm eval --model DIR --labels FILE --out DIR`: per-dimension macro-F1, quadratic-weighted kappa,
Spearman, accuracy, MAE and a calibration plot, as JSON + Markdown + PNG. With `--record`, also the model folder's
validation record (validation.json: per-dimension QWK and confusion on these labels), which `policy eval --rms`
needs before it trusts the model; give it held-out human labels."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from core.cli import ArgumentParser
from core.config import Config, add_arguments, build_config
from core.errors import exits_on_bad_input
from core.models import DEVICE_HELP, Device
from core.reward_client import load_scoring_rm
from core.schema import LabeledItem, write_json, write_text
from hpc_rm.data import group_ids, label_matrix, read_labels
from hpc_rm.metrics import (GROUP_PAIR_ACCURACY_NOTE, all_metrics, calibration_curve, metrics_table,
                            plot_calibration)
from core.reward_config import read_rm_spec
from core.reward_model import HPCRewardModel
from core.validation_record import build_validation_record, write_validation_record


class EvalConfig(Config):
    model: Path | None = Field(None, description="reward model folder (from `hpc_rm train`)")
    labels: Path | None = Field(None, description="interchange JSONL with reference scores")
    annotator: str | None = Field(None, description="use only lines whose annotator starts with this")
    out: Path | None = Field(None, description="report folder (default: <model>/eval)")
    batch_size: int = Field(32, ge=1, description="pairs per scoring batch")
    device: Device = Field("auto", description="reward model: " + DEVICE_HELP)
    record: bool = Field(False, description="also write <model>/validation.json, the validation record that lets "
                                            "policy eval trust this RM (--rms); only held-out human labels "
                                            "(annotator human:...) make it trusted")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "float32", description="backbone weights while scoring (auto: bf16 on a GPU, fp32 on cpu)")


def evaluate_model(rm: HPCRewardModel, items: list[LabeledItem], out_dir: Path | None = None,
                   batch_size: int = 32, title: str = "reward model") -> dict:
    """Score the items and compare with their labels; writes metrics.json/.md and calibration.png if out_dir."""
    scores, levels = rm.predict([i.context for i in items], [i.response for i in items], batch_size=batch_size,
                                progress=True)
    truth = label_matrix(items, rm.rubric)
    report = all_metrics(rm.rubric, truth, levels, scores, group_ids(items))
    curves = {d.name: calibration_curve(truth[:, j], scores[d.name], d.max_score)
              for j, d in enumerate(rm.rubric.dimensions)}
    for name, curve in curves.items():
        report["dimensions"][name]["calibration"] = curve
    report["items"] = len(items)
    if out_dir is not None:
        write_json(out_dir / "metrics.json", report)
        plot_calibration(curves, {d.name: d.max_score for d in rm.rubric.dimensions},
                         out_dir / "calibration.png", f"Calibration: {title}")
        write_text(out_dir / "metrics.md", (
            f"# Evaluation of {title}\n\n{len(items)} labeled items, rubric `{rm.rubric.name}`, head "
            f"`{rm.spec.head}`, backbone `{rm.spec.backbone}`.\n\n{metrics_table(report)}\n\n"
            "macro-F1, QWK and accuracy use the predicted level; Spearman and MAE use the continuous score. "
            f"{GROUP_PAIR_ACCURACY_NOTE}\n\n"
            "![calibration](calibration.png)\n"
        ))
    return report


@exits_on_bad_input()
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m hpc_rm eval", description=__doc__)
    add_arguments(parser, EvalConfig)
    cfg = build_config(EvalConfig, parser.parse_args(argv))
    if cfg.model is None or cfg.labels is None:
        parser.error("--model and --labels are required")
    items = read_labels(cfg.labels, read_rm_spec(cfg.model).rubric, cfg.annotator)  # bad labels: before loading
    rm = load_scoring_rm(str(cfg.model), cfg.device, cfg.dtype)
    out = cfg.out or cfg.model / "eval"
    report = evaluate_model(rm, items, out, cfg.batch_size, title=str(cfg.model))
    print(metrics_table(report))
    print(f"report written to {out}/metrics.md")
    if cfg.record:
        record = build_validation_record(report, rm.rubric.name, [item.annotator for item in items], str(cfg.labels),
                                         "hpc_rm eval --record")
        print(f"validation record written to {write_validation_record(cfg.model, record)}"
              + ("" if record["human_labels"] else " (labels not all human: policy eval will not trust it)"))
