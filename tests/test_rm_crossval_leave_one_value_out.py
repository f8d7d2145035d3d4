"""`python -m hpc_rm.crossval --leave-out KEY`: one fold per value of meta.KEY (e.g. MRBench's dialogue origin), so
the report says whether the RM carries over to data from another source; bad keys fail with the item named."""
import json
from pathlib import Path

import numpy as np
import pytest

from core.sources import load_mrbench
from core.schema import write_jsonl
from hpc_rm import crossval
from hpc_rm.data import folds_by_meta, group_of
from tests.test_rm_train_score_resume import synthetic_items

MRBENCH = Path(__file__).resolve().parent.parent / "data/mrbench_v3_dev/mrbench_v3_devset.json"


def with_origin(n: int) -> list:
    """Synthetic items, groups g0-g9 from 'alpha' and the rest from 'beta'."""
    items = synthetic_items(n)
    for item in items:
        item.meta["origin"] = "alpha" if int(group_of(item)[1:]) < 10 else "beta"
    return items


def test_folds_by_meta_tests_each_value_and_trains_on_the_others():
    items = with_origin(40)
    names, folds = folds_by_meta(items, "origin")
    assert names == ["alpha", "beta"]
    for name, (train_idx, test_idx) in zip(names, folds):
        assert sorted(np.concatenate([train_idx, test_idx])) == list(range(40))
        assert {items[i].meta["origin"] for i in test_idx} == {name}
        assert name not in {items[i].meta["origin"] for i in train_idx}
    assert len(folds[0][1]) == 20


def test_folds_by_meta_names_the_item_when_the_key_is_missing_or_a_group_straddles():
    items = with_origin(20)
    del items[7].meta["origin"]
    with pytest.raises(ValueError, match=r"item syn:3:1: field meta.origin: missing"):
        folds_by_meta(items, "origin")
    items = with_origin(24)
    items[1].meta["origin"] = "beta"  # its pair items[0] (group g0) is alpha
    with pytest.raises(ValueError, match=r"item syn:0:1: field meta.origin: 'beta', but its group 'g0' also has"):
        folds_by_meta(items, "origin")
    with pytest.raises(ValueError, match="at least 2 values"):
        folds_by_meta(with_origin(20), "origin")  # groups g0-g9 only: all alpha


def test_crossval_leave_out_reports_one_fold_per_value(tiny_encoder, tmp_path):
    write_jsonl(tmp_path / "labels.jsonl", with_origin(40))
    out = tmp_path / "cv"
    crossval.main([
        "--labels", str(tmp_path / "labels.jsonl"), "--out", str(out), "--leave-out", "origin",
        "--heads", "[ordinal]", "--train.rubric", "hpc", "--train.backbone", tiny_encoder,
        "--train.freeze-backbone", "true", "--train.epochs", "1", "--train.max-length", "48",
        "--train.progress", "false",
    ])
    report = json.loads((out / "crossval.json").read_text())
    assert report["folds"] == [{"name": "alpha", "test_items": 20}, {"name": "beta", "test_items": 20}]
    assert len(report["tfidf"]["fold_macro_f1"]) == len(report["rm_ordinal"]["fold_macro_f1"]) == 2
    text = (out / "crossval.md").read_text()
    assert text.startswith("# Leave-one-`origin`-out cross-validation (alpha, beta)")
    alpha_row = next(line for line in text.splitlines() if line.startswith("| alpha | 20 |"))
    assert f"{report['tfidf']['fold_macro_f1'][0]:.3f}" in alpha_row


def test_mrbench_items_carry_the_dialogue_origin():
    items = load_mrbench(MRBENCH)
    origins = {}
    for item in items:
        origins.setdefault(item.meta["origin"], set()).add(item.meta["group"])
    # MathDial-derived dialogues quote their GSM8K problem (224 of them); the other 76 come from Bridge.
    assert {k: len(v) for k, v in origins.items()} == {"mathdial": 224, "bridge": 76}
    assert all(("problem_id" in item.meta) == (item.meta["origin"] == "mathdial") for item in items)


def test_crossval_with_a_missing_leave_out_key_stops_before_training_and_names_the_file(tmp_path, capsys):
    write_jsonl(tmp_path / "labels.jsonl", synthetic_items(20))  # no meta.origin
    with pytest.raises(SystemExit):
        crossval.main(["--labels", str(tmp_path / "labels.jsonl"), "--out", str(tmp_path / "cv"),
                       "--leave-out", "origin", "--train.rubric", "hpc"])
    assert f"{tmp_path / 'labels.jsonl'}: item syn:0:0: field meta.origin: missing" in capsys.readouterr().err
    assert not (tmp_path / "cv").exists()
