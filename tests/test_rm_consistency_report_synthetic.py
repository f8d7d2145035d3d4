"""`hpc_rm consistency` on a small synthetic set: LLM labels equal the human ones except on Creativity, where
the "judge" inverts them; the report must see exactly that, over 3 seeds, with every table and the plot."""
import json

from core.schema import write_jsonl
from hpc_rm import consistency
from tests.test_rm_train_score_resume import synthetic_items


def test_consistency_report_sees_the_inverted_dimension(tiny_encoder, tmp_path):
    human = synthetic_items(60)
    llm = [item.model_copy(update={
        "annotator": "llm:fake",
        "scores": {d: (2 - v if d == "Creativity" else v) for d, v in item.scores.items()},
    }) for item in human]
    write_jsonl(tmp_path / "human.jsonl", human)
    write_jsonl(tmp_path / "llm.jsonl", llm + llm[:10])  # a second judge line for some items: majority is kept
    out = tmp_path / "report"
    consistency.main([
        "--human", str(tmp_path / "human.jsonl"), "--llm", str(tmp_path / "llm.jsonl"), "--rubric", "hpc",
        "--out", str(out), "--train.backbone", tiny_encoder, "--train.freeze-backbone", "true",
        "--train.epochs", "3", "--train.max-length", "48", "--train.progress", "false",
        "--train.head-hidden", "16",
    ])
    report = json.loads((out / "consistency.json").read_text())
    assert report["items"] == 60 and len(report["seeds"]) == 3
    s = report["summary"]
    judge = s["llm_labels_vs_human"]
    assert judge["Helpfulness"]["accuracy"]["mean"] == 1.0
    assert judge["Creativity"]["qwk"]["mean"] < 0
    for system in ("rm_human", "rm_llm", "tfidf_human", "tfidf_llm"):
        f1 = s["systems"][system]["mean_macro_f1"]
        assert f1["n"] == 3 and 0 <= f1["mean"] <= 1
    # Inverted Creativity labels teach TF-IDF the opposite order inside each context, which the human labels catch.
    pairs = {(x, d): [seed["systems"][x]["dimensions"][d]["group_pair_accuracy"] for seed in report["seeds"]]
             for x in ("tfidf_human", "tfidf_llm") for d in ("Helpfulness", "Creativity")}
    assert pairs["tfidf_human", "Helpfulness"] == pairs["tfidf_llm", "Helpfulness"] == [1.0] * 3
    inverted = [(h, x) for h, x in zip(pairs["tfidf_human", "Creativity"], pairs["tfidf_llm", "Creativity"])
                if h is not None]  # a seed's test split may hold no two differing Creativity labels in one context
    assert inverted and all(h == 1.0 and x == 0.0 for h, x in inverted)
    assert s["systems"]["tfidf_human"]["mean_group_pair_accuracy"]["mean"] == 1.0
    # Trained on identical Helpfulness labels with the same seeds and frozen vectors: the two RMs agree exactly.
    assert s["rm_agreement"]["Helpfulness"]["exact"]["mean"] == 1.0
    assert s["profile_shift"]["Helpfulness"]["rm_human"]["mean_abs_shift"]["mean"] > 0
    assert "built-in contrasting profiles" in report["profile_source"]
    text = (out / "consistency.md").read_text()
    assert "| Creativity |" in text and "tfidf_llm" in text and "pairs ordered within a context" in text
    assert (out / "consistency.png").stat().st_size > 1000
