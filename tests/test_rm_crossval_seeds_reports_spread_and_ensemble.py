"""`python -m hpc_rm.crossval_seeds` over cross-validation runs that differ only in the training seed: each seed's
figures come from its run, mean and sd are over the seeds, the ensemble averages the seeds' level probabilities and
reads levels like a single RM, and runs that differ in anything else are refused."""
import json

import numpy as np
import pytest

from core.rubric import load_rubric
from core.schema import write_jsonl
from hpc_rm import crossval, crossval_seeds
from tests.test_rm_train_score_resume import synthetic_items


def _run(tmp_path, tiny_encoder, name, *extra):
    out = tmp_path / name
    crossval.main([
        "--labels", str(tmp_path / "labels.jsonl"), "--out", str(out), "--folds", "3", "--heads", "[ordinal]",
        "--quality-bar", "0.62", "--train.rubric", "hpc", "--train.backbone", tiny_encoder,
        "--train.freeze-backbone", "true", "--train.epochs", "2", "--train.max-length", "48",
        "--train.progress", "false", *extra,
    ])
    return out


def test_seed_runs_give_mean_sd_and_an_ensemble_read_like_one_rm(tiny_encoder, tmp_path):
    write_jsonl(tmp_path / "labels.jsonl", synthetic_items(60))
    runs = [_run(tmp_path, tiny_encoder, f"seed{s}", "--train.seed", str(s)) for s in (0, 1)]
    crossval_seeds.main(["--runs", *map(str, runs), "--out", str(tmp_path / "seeds")])

    summary = json.loads((tmp_path / "seeds" / "seeds.json").read_text())
    reports = [json.loads((r / "crossval.json").read_text()) for r in runs]
    f1 = [r["rm_ordinal"]["mean"]["macro_f1"] for r in reports]
    assert [s["seed"] for s in summary["per_seed"]] == [0, 1]
    assert [s["macro_f1"] for s in summary["per_seed"]] == f1
    assert summary["mean_macro_f1"] == pytest.approx(np.mean(f1))
    assert summary["sd_macro_f1"] == pytest.approx(np.std(f1, ddof=1))

    # One run's own probabilities, read with each fold's training-label shift, give back that run's levels.
    rubric = load_rubric("hpc")
    _, oof = crossval_seeds._read_run(runs[0])
    readout = (reports[0]["config"]["train"]["class_weighting"], reports[0]["config"]["train"]["rare_level_boost"])
    alone = crossval_seeds.ensemble_report(rubric, [oof], *readout)
    for d in rubric.names:
        levels = np.array([x["rm_ordinal"][d]["level"] for x in oof])
        truth = np.array([-1 if x["human"][d] is None else x["human"][d] for x in oof])
        assert alone["dimensions"][d]["pred_counts"] == np.bincount(levels[truth >= 0], minlength=3).tolist()
    # The ensemble averages the two runs' probabilities: its expected levels are the mean of theirs.
    _, oof1 = crossval_seeds._read_run(runs[1])
    both = crossval_seeds.ensemble_report(rubric, [oof, oof1], *readout)
    assert summary["ensemble"]["mean"]["macro_f1"] == pytest.approx(both["mean"]["macro_f1"])
    dim = rubric.names[0]
    truth = np.array([x["human"][dim] for x in oof if x["human"][dim] is not None], dtype=float)
    mean_score = np.array([(a["rm_ordinal"][dim]["score"] + b["rm_ordinal"][dim]["score"]) / 2
                           for a, b in zip(oof, oof1) if a["human"][dim] is not None])
    assert both["dimensions"][dim]["mae"] == pytest.approx(np.abs(mean_score - truth).mean(), abs=1e-4)

    # Pairs ordered within a context, recomputed from each run's stored scores, match the run's own report.
    pairs = [r["rm_ordinal"]["mean"]["group_pair_accuracy"] for r in reports]
    assert [s["group_pair_accuracy"] for s in summary["per_seed"]] == pytest.approx(pairs, abs=1e-3)
    assert summary["mean_group_pair_accuracy"] == pytest.approx(np.mean(pairs), abs=1e-3)
    assert summary["tfidf"]["group_pair_accuracy"] == pytest.approx(
        reports[0]["tfidf"]["mean"]["group_pair_accuracy"], abs=1e-3)
    assert 0.0 <= summary["ensemble"]["mean"]["group_pair_accuracy"] <= 1.0

    text = (tmp_path / "seeds" / "seeds.md").read_text()
    assert "mean of 2 seeds" in text and "ensemble of 2" in text and "TF-IDF" in text
    assert "pairs ordered within a context" in text
    assert (tmp_path / "seeds" / "seeds.png").stat().st_size > 1000

    # Predictions written before crossval recorded each item's context: the same report without the pair column.
    for run in runs:
        path = run / "oof_predictions.jsonl"
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({k: v for k, v in x.items() if k != "group"}) + "\n" for x in lines))
    crossval_seeds.main(["--runs", *map(str, runs), "--out", str(tmp_path / "old")])
    old = json.loads((tmp_path / "old" / "seeds.json").read_text())
    assert old["mean_group_pair_accuracy"] is None and old["mean_macro_f1"] == summary["mean_macro_f1"]
    assert "pairs ordered" not in (tmp_path / "old" / "seeds.md").read_text()


def test_runs_that_differ_in_more_than_the_seed_are_refused(tiny_encoder, tmp_path):
    write_jsonl(tmp_path / "labels.jsonl", synthetic_items(60))
    base = _run(tmp_path, tiny_encoder, "base")
    other = _run(tmp_path, tiny_encoder, "other", "--train.seed", "1", "--train.epochs", "1")
    with pytest.raises(SystemExit, match="config differs from .* in train.epochs"):
        crossval_seeds.main(["--runs", str(base), str(other), "--out", str(tmp_path / "seeds")])
    with pytest.raises(SystemExit, match="share a training seed"):
        crossval_seeds.main(["--runs", str(base), str(base), "--out", str(tmp_path / "seeds")])
    # Same config and seed-only difference, but one human label changed: refused.
    relabeled = tmp_path / "relabeled"
    relabeled.mkdir()
    report = json.loads((base / "crossval.json").read_text())
    report["config"]["train"]["seed"] = 7
    (relabeled / "crossval.json").write_text(json.dumps(report))
    lines = [json.loads(x) for x in (base / "oof_predictions.jsonl").read_text().splitlines()]
    old = lines[0]["human"]["Helpfulness"]
    lines[0]["human"]["Helpfulness"] = 0 if old is None else (old + 1) % 3
    (relabeled / "oof_predictions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(SystemExit, match="oof_predictions.jsonl: items, human labels"):
        crossval_seeds.main(["--runs", str(base), str(relabeled), "--out", str(tmp_path / "seeds")])
    assert not (tmp_path / "seeds").exists()
    with pytest.raises(SystemExit, match="oof_predictions.jsonl: missing"):
        (base / "oof_predictions.jsonl").unlink()
        crossval_seeds.main(["--runs", str(base), str(other), "--out", str(tmp_path / "seeds")])
