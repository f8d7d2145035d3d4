"""`python -m hpc_rm.crossval` on a small synthetic set: every system is scored on the same grouped folds, the
RM + TF-IDF blend averages the two models' level probabilities, and the report, JSON and plot are written."""
import json

import numpy as np
import pytest

from core.rubric import load_rubric
from core.schema import write_jsonl
from hpc_rm import crossval
from hpc_rm.baseline import TfidfBaseline, scores_and_levels
from tests.test_rm_train_score_resume import synthetic_items


def test_crossval_reports_rm_tfidf_and_their_blend(tiny_encoder, tmp_path):
    write_jsonl(tmp_path / "labels.jsonl", synthetic_items(60))
    out = tmp_path / "cv"
    crossval.main([
        "--labels", str(tmp_path / "labels.jsonl"), "--out", str(out), "--folds", "3", "--heads", "[ordinal]",
        "--quality-bar", "0.62", "--train.rubric", "hpc", "--train.backbone", tiny_encoder,
        "--train.freeze-backbone", "true", "--train.epochs", "2", "--train.max-length", "48",
        "--train.progress", "false",
    ])
    report = json.loads((out / "crossval.json").read_text())
    assert {"tfidf", "rm_ordinal", "rm_ordinal+tfidf"} <= set(report)
    for system in ("tfidf", "rm_ordinal", "rm_ordinal+tfidf"):
        assert len(report[system]["fold_macro_f1"]) == 3
        assert 0 <= report[system]["mean"]["macro_f1"] <= 1
    # The level is written in each response, so TF-IDF learns it; the tiny random encoder does not.
    assert report["tfidf"]["mean"]["macro_f1"] > 0.9
    assert report["rm_ordinal"]["mean"]["macro_f1"] < report["tfidf"]["mean"]["macro_f1"]
    # Groups are pairs of items: TF-IDF reads the level, so it orders each differing pair right.
    assert report["tfidf"]["mean"]["group_pair_accuracy"] > 0.9
    text = (out / "crossval.md").read_text()
    assert "rm_ordinal+tfidf" in text and "| **mean** |" in text and "pairs ordered within a context" in text
    assert (out / "crossval.png").stat().st_size > 1000
    # Out-of-fold predictions, one line per item, match the report and hold each system's level probabilities.
    lines = [json.loads(x) for x in (out / "oof_predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 60 and {x["fold"] for x in lines} == {0, 1, 2}
    for x in lines:
        rm, tfidf, mixed = (x[s]["Helpfulness"]["proba"] for s in ("rm_ordinal", "tfidf", "rm_ordinal+tfidf"))
        assert np.allclose(mixed, (np.array(rm) + np.array(tfidf)) / 2, atol=1e-4)
        assert x["tfidf"]["Helpfulness"]["level"] == int(np.argmax(tfidf))
    labeled = [x for x in lines if x["human"]["Creativity"] is not None]
    accuracy = np.mean([x["tfidf"]["Creativity"]["level"] == x["human"]["Creativity"] for x in labeled])
    assert accuracy == pytest.approx(report["tfidf"]["dimensions"]["Creativity"]["accuracy"])


def test_tfidf_level_probabilities_cover_every_level_and_give_its_predictions():
    rubric = load_rubric("hpc")
    items = synthetic_items(40)
    # No item of level 1 in training: that column must exist and stay 0.
    train = [i for i in items if i.scores["Helpfulness"] != 1]
    model = TfidfBaseline(rubric).fit(train)
    proba = model.predict_proba(items)
    p = proba["Helpfulness"]
    assert p.shape == (40, 3) and np.allclose(p.sum(1), 1) and np.all(p[:, 1] == 0)
    scores, levels = model.predict(items)
    assert np.allclose(scores["Helpfulness"], p @ [0, 1, 2]) and np.array_equal(levels["Helpfulness"], p.argmax(1))
    blended = scores_and_levels({"d": np.array([[0.6, 0.4, 0.0], [0.0, 0.2, 0.8]])})
    assert np.allclose(blended[0]["d"], [0.4, 1.8]) and list(blended[1]["d"]) == [0, 2]
