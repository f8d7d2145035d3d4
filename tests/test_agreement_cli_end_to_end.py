"""`python -m annotation agreement` on a small synthetic file: two humans and one LLM judge with samples."""
import json

import pytest

from annotation.agreement import main
from core.schema import write_jsonl

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _labels():
    # Helpfulness only. Humans agree on 3 of 4 items; the judge differs from the human consensus on item 2,
    # and its three samples agree on every item except the last. Samples are stored as the label stage does.
    human_a = [2, 1, 0, 2]
    human_b = [2, 1, 0, 1]  # consensus on item 3: tie 2 vs 1 -> mean 1.5 rounded half up = 2
    judge = [2, 1, 1, 2]
    samples = [[2, 1, 1, 2], [2, 1, 1, 2], [2, 1, 1, 0]]
    rows = []
    for i in range(4):
        base = {"id": f"item{i}", "context": "Student: 3 + 4 = 8?", "response": f"r{i}"}
        rows.append(dict(base, annotator="human:ann", scores={"Helpfulness": human_a[i]}))
        rows.append(dict(base, annotator="human:bo", scores={"Helpfulness": human_b[i]}))
        rows.append(dict(base, annotator="llm:judge", scores={"Helpfulness": judge[i]},
                         meta={"samples": {str(k): {"Helpfulness": s[i]} for k, s in enumerate(samples)}}))
    return rows


def test_cli_writes_json_markdown_and_plots(tmp_path):
    labels = tmp_path / "labels.jsonl"
    write_jsonl(labels, _labels())
    out = tmp_path / "report"
    main(["--labels", str(labels), "--rubric", "hpc", "--out", str(out)])

    report = json.loads((out / "agreement.json").read_text())
    help_ = report["dimensions"]["Helpfulness"]
    assert help_["human_human"]["n_items"] == 4
    assert help_["human_human"]["exact"] == pytest.approx(0.75)
    vs_judge = help_["human_llm"]["llm:judge"]
    assert vs_judge["n"] == 4 and vs_judge["exact"] == pytest.approx(0.75)
    # rows = human consensus [2,1,0,2], columns = judge [2,1,1,2]
    assert vs_judge["confusion"] == [[0, 1, 0], [0, 1, 0], [0, 0, 2]]
    # judge [2,1,1,2] vs human:ann [2,1,0,2] agrees on 3/4, vs human:bo [2,1,0,1] on 2/4
    assert vs_judge["vs_each_human"]["exact"] == pytest.approx(0.625)
    assert vs_judge["vs_each_human"]["n_humans"] == 2
    self_ = help_["llm_self"]["llm:judge"]
    assert self_["n_raters"] == 3 and self_["n_items"] == 4
    assert self_["exact"] == pytest.approx((1 + 0.75 + 0.75) / 3)  # sample pairs (0,1), (0,2), (1,2)
    assert report["dimensions"]["Creativity"]["human_human"]["n_items"] == 0

    markdown = (out / "agreement.md").read_text()
    assert "| Helpfulness | `llm:judge` | 4 | 0.750 |" in markdown
    assert "(n=4)" in markdown
    assert "| Helpfulness | `llm:judge` | 0 | 2 | 2 | 4 |" in markdown  # label distribution
    for name in ("agreement_heatmap.png", "agreement_confusion.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC


def test_sample_annotators_count_as_self_consistency(tmp_path):
    rows = [r for r in _labels() if r["annotator"] != "llm:judge"]
    for k, sample in enumerate([[2, 1, 1, 2], [2, 1, 1, 2]]):
        rows += [{"id": f"item{i}", "context": "Student: 3 + 4 = 8?", "response": f"r{i}",  # one id, one pair
                  "annotator": f"llm:judge#{k}", "scores": {"Helpfulness": s}} for i, s in enumerate(sample)]
    labels = tmp_path / "labels.jsonl"
    write_jsonl(labels, rows)
    main(["--labels", str(labels), "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "agreement.json").read_text())
    help_ = report["dimensions"]["Helpfulness"]
    assert help_["llm_self"]["llm:judge"]["exact"] == 1.0
    assert help_["human_llm"]["llm:judge"]["n"] == 4  # the judge's label = consensus of its samples


def test_several_label_files_and_bad_file_errors(tmp_path):
    rows = _labels()
    write_jsonl(tmp_path / "humans.jsonl", [r for r in rows if r["annotator"].startswith("human:")])
    write_jsonl(tmp_path / "llm.jsonl", [r for r in rows if r["annotator"].startswith("llm:")])
    main(["--labels", str(tmp_path / "humans.jsonl"), str(tmp_path / "llm.jsonl"), "--out", str(tmp_path / "o")])
    report = json.loads((tmp_path / "o" / "agreement.json").read_text())
    assert report["dimensions"]["Helpfulness"]["human_llm"]["llm:judge"]["n"] == 4

    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, [dict(rows[0], scores={"Helpfulness": 1, "Clarity": 2})])
    with pytest.raises(SystemExit, match=r"bad.jsonl:1: field scores.Clarity: not a dimension of rubric hpc"):
        main(["--labels", str(bad), "--out", str(tmp_path / "o2")])
