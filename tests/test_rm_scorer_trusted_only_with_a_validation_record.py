"""An independent RM (`policy eval --rms`) is trusted only with a validation record (issue #29): its folder's
validation.json, written by `hpc_rm train --validation` / `--validation-share` or `hpc_rm eval --record`, on the
RM's rubric, from human labels, with the mean lower 95% bound of QWK at or above the judges' threshold.
Tiny random RMs only; the records of the standing tests are planted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.schema import DataError, LabeledItem, write_jsonl
from core.validation_record import VALIDATION_RECORD_FILE, read_validation_record, write_validation_record
from policy.evaluation.independent import agreement_with_humans, load_rm_scorers, scorer_standing
from policy.evaluation.trust import qwk_from_confusion

DIMS = ["Mistake_Identification", "Mistake_Location", "Providing_Guidance", "Actionability"]
STRONG = [[40, 2, 0], [2, 40, 2], [0, 2, 40]]  # 130 pairs, nearly all on the diagonal
UNRELATED = [[18, 18, 18], [18, 18, 18], [18, 18, 18]]  # the RM's level says nothing of the human's
MIN_QWK = 0.2


@pytest.fixture(scope="module")
def rm_folder(tiny_encoder, tmp_path_factory) -> Path:
    from core.reward_model import HPCRewardModel

    folder = tmp_path_factory.mktemp("rms") / "mrbench_rm"
    HPCRewardModel.from_backbone(tiny_encoder, "mrbench").save_pretrained(folder)
    return folder


def planted_record(confusion, rubric: str = "mrbench", annotator: str = "human:mrbench") -> dict:
    n = int(sum(map(sum, confusion)))
    row = {"qwk": float(qwk_from_confusion(confusion)), "n": n, "confusion": confusion}
    return {"rubric": rubric, "items": n, "labels": "heldout.jsonl", "annotators": [annotator],
            "human_labels": annotator.startswith("human:"), "written_by": "test", "dimensions": {d: row for d in DIMS}}


def standing_with(folder: Path, record: dict | None) -> str:
    (folder / VALIDATION_RECORD_FILE).unlink(missing_ok=True)
    if record is not None:
        write_validation_record(folder, record)
    scorer, = load_rm_scorers([str(folder)], batch_size=4)
    return scorer_standing(scorer, MIN_QWK)


def labeled_items(n_problems: int, annotator: str = "human:mrbench") -> list[LabeledItem]:
    """Two responses per problem, each in its own dialogue, so a held-out split must keep a problem whole."""
    items = []
    for p in range(n_problems):
        for k in range(2):
            level = (p + k) % 3
            items.append(LabeledItem(
                id=f"mrbench:conv{p}-{k}:tutor", context=f"Student: is {p} + {k} = {p + k}?",
                response=f"Tutor: let us check {p} + {k} step by step.", annotator=annotator,
                scores={d: level for d in DIMS}, meta={"group": f"conv{p}-{k}", "problem_id": f"problem{p}"}))
    return items


def train(tiny_encoder: str, labels: Path, out: Path, *extra: str) -> None:
    from hpc_rm.train import main

    main(["--labels", str(labels), "--rubric", "mrbench", "--backbone", tiny_encoder, "--out", str(out),
          "--epochs", "1", "--batch-size", "8", "--max-length", "32", "--checkpoints", "false",
          "--progress", "false", *extra])


def test_an_rm_folder_without_a_record_is_unmeasured_and_says_how_to_get_one(rm_folder):
    standing = standing_with(rm_folder, None)
    assert standing.startswith(f"unmeasured: no validation record on human labels in {rm_folder}")
    assert "--validation" in standing and "hpc_rm eval --record" in standing


def test_a_record_whose_qwk_lower_bound_reaches_the_threshold_is_trusted(rm_folder):
    assert standing_with(rm_folder, planted_record(STRONG)) == "trusted"
    scorer, = load_rm_scorers([str(rm_folder)], batch_size=4)
    assert agreement_with_humans(scorer)["Actionability"]["confusion"] == STRONG  # what report.json shows


def test_a_record_whose_qwk_lower_bound_is_below_the_threshold_is_untrusted(rm_folder):
    standing = standing_with(rm_folder, planted_record(UNRELATED))
    assert standing.startswith("untrusted: mean QWK with humans") and f"< {MIN_QWK}" in standing


def test_a_strong_record_on_another_rubric_is_unmeasured(rm_folder):
    standing = standing_with(rm_folder, planted_record(STRONG, rubric="hpc"))
    assert standing.startswith("unmeasured") and "rubric hpc, not the RM's mrbench" in standing


def test_a_strong_record_on_llm_labels_is_unmeasured(rm_folder):
    assert standing_with(rm_folder, planted_record(STRONG, annotator="llm:judge")).startswith(
        "unmeasured: no validation record on human labels")


def test_a_record_missing_a_field_is_an_error_naming_the_file_and_field(tmp_path):
    record = planted_record(STRONG)
    del record["dimensions"]
    write_validation_record(tmp_path, record)
    with pytest.raises(DataError, match=rf"{tmp_path / VALIDATION_RECORD_FILE}: field dimensions: missing"):
        read_validation_record(tmp_path)


def test_train_with_a_held_out_share_writes_a_record_on_held_out_human_problems(tiny_encoder, tmp_path):
    labels, out = tmp_path / "human.jsonl", tmp_path / "rm"
    write_jsonl(labels, labeled_items(6))
    train(tiny_encoder, labels, out, "--validation-share", "0.34")
    record = json.loads((out / VALIDATION_RECORD_FILE).read_text())
    held = [json.loads(line) for line in (out / "validation" / "heldout.jsonl").read_text().splitlines()]
    assert record["rubric"] == "mrbench" and record["human_labels"] and record["annotators"] == ["human:mrbench"]
    assert record["items"] == len(held) == 4  # 2 of 6 problems, both responses of each
    assert len({item["meta"]["problem_id"] for item in held}) == 2
    for row in record["dimensions"].values():
        assert len(row["confusion"]) == 3 and sum(map(sum, row["confusion"])) == row["n"] == 4
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["train_items"] == 8  # the held-out problems were not trained on
    scorer, = load_rm_scorers([str(out)], batch_size=4)
    assert not scorer_standing(scorer, MIN_QWK).startswith("unmeasured")  # measured: trusted or not by its QWK


def test_train_without_validation_removes_an_earlier_record(tiny_encoder, rm_folder, tmp_path):
    labels, out = tmp_path / "human.jsonl", tmp_path / "rm"
    write_jsonl(labels, labeled_items(3))
    out.mkdir()
    write_validation_record(out, planted_record(STRONG))  # the record of weights that are about to be replaced
    train(tiny_encoder, labels, out)
    assert not (out / VALIDATION_RECORD_FILE).exists()


def test_eval_record_writes_the_record_into_the_model_folder(rm_folder, tmp_path):
    from hpc_rm.evaluate import main

    labels = tmp_path / "human.jsonl"
    write_jsonl(labels, labeled_items(3))
    (rm_folder / VALIDATION_RECORD_FILE).unlink(missing_ok=True)
    main(["--model", str(rm_folder), "--labels", str(labels), "--out", str(tmp_path / "eval"), "--record", "true"])
    record = read_validation_record(rm_folder)
    assert record["written_by"] == "hpc_rm eval --record" and record["human_labels"] and record["items"] == 6
    assert set(record["dimensions"]) == set(DIMS)


def test_validation_file_and_held_out_share_together_are_refused(tmp_path):
    from hpc_rm.train import TrainConfig

    with pytest.raises(ValueError, match="either validation"):
        TrainConfig(labels=tmp_path / "a.jsonl", validation=tmp_path / "b.jsonl", validation_share=0.2)


def test_the_pipelines_mrbench_rm_stage_holds_out_problems_and_lists_its_record():
    from core.config import load_config
    from pipeline.stages import PipelineConfig, plan_stages

    cfg = load_config(PipelineConfig, Path(__file__).parents[1] / "configs" / "tiny.yaml")
    plan = plan_stages(cfg)["mrbench_rm"]
    assert plan.argv[plan.argv.index("--validation-share") + 1] == "0.2"
    assert cfg.run_dir / "mrbench_rm" / VALIDATION_RECORD_FILE in plan.outputs
