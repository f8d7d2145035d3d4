"""Training through the CLI with the transformers Trainer: checkpoints, resume, score CLI output, eval report."""
import json

import numpy as np
import pytest

from core.reward_model import HPCRewardModel
from core.schema import LabeledItem, read_jsonl, write_jsonl
from hpc_rm import evaluate, score, train


def synthetic_items(n: int, dims=("Helpfulness", "Personalization", "Creativity")) -> list[LabeledItem]:
    """Responses whose level is written in them, so even a tiny model can pick it up; some labels missing."""
    rng = np.random.default_rng(0)
    words = {0: "wrong lazy", 1: "partly okay", 2: "excellent clear hint"}
    items = []
    for k in range(n):
        level = int(rng.integers(3))
        scores = {d: level for d in dims if not (d == dims[-1] and k % 4 == 0)}
        items.append(LabeledItem(
            id=f"syn:{k // 2}:{k % 2}", context=f"## Dialogue so far\nStudent: question {k}",
            response=f"{words[level]} answer number {k}", scores=scores, annotator="human:test",
            meta={"group": f"g{k // 2}"}))
    return items


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("rmdata") / "labels.jsonl"
    write_jsonl(path, synthetic_items(48))
    return path


def test_train_checkpoints_resume_and_score(tiny_encoder, labels_file, tmp_path):
    out = tmp_path / "rm"
    common = ["--labels", str(labels_file), "--backbone", tiny_encoder, "--out", str(out), "--rubric", "hpc",
              "--batch-size", "8", "--max-length", "48", "--progress", "false", "--head-learning-rate", "0.01"]
    train.main(common + ["--epochs", "1"])
    first = sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*"))
    assert first == ["checkpoint-6"]
    train.main(common + ["--epochs", "2", "--resume", "true", "--validation", str(labels_file)])
    state = json.loads((out / "checkpoints" / "checkpoint-12" / "trainer_state.json").read_text())
    # Resumed: the second run continued from step 6 instead of starting over (its log starts after step 6).
    assert state["global_step"] == 12
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["validation"]["items"] == 48
    assert (out / "validation" / "calibration.png").stat().st_size > 0

    scored = tmp_path / "scored.jsonl"
    score.main(["--model", str(out), "--input", str(labels_file), "--out", str(scored)])
    rows = [json.loads(line) for line in scored.read_text().splitlines()]
    weights = json.loads((out / "config.json").read_text())["weights"]  # the rubric's aggregation weights
    originals = read_jsonl(labels_file, LabeledItem)
    assert [r["id"] for r in rows] == [i.id for i in originals]
    for row in rows:
        assert set(row["pred"]) == {"Helpfulness", "Personalization", "Creativity"}
        assert all(0 <= v <= 2 for v in row["pred"].values())
        assert row["reward"] == pytest.approx(sum(weights[d] * v for d, v in row["pred"].items()), abs=1e-4)
    # The level column is the model's own readout (the one validation measured), not a rounding of pred.
    rm = HPCRewardModel.from_pretrained(out)
    _, levels = rm.predict([i.context for i in originals], [i.response for i in originals])
    assert [r["level"] for r in rows] == [{d: int(levels[d][k]) for d in rm.dimensions} for k in range(len(rows))]
    # bf16 autocast scores the same lines in the same order, close to fp32.
    score.main(["--model", str(out), "--input", str(labels_file), "--out", str(tmp_path / "bf16.jsonl"),
                "--bf16", "true"])
    bf16_rows = [json.loads(line) for line in (tmp_path / "bf16.jsonl").read_text().splitlines()]
    assert [r["id"] for r in bf16_rows] == [r["id"] for r in rows]
    assert max(abs(a["pred"][d] - b["pred"][d]) for a, b in zip(rows, bf16_rows) for d in a["pred"]) < 0.05

    evaluate.main(["--model", str(out), "--labels", str(labels_file), "--out", str(tmp_path / "eval")])
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["dimensions"]["Creativity"]["n"] == 36  # every 4th Creativity label is missing
    assert "| **mean** |" in (tmp_path / "eval" / "metrics.md").read_text()
