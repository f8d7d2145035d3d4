"""Real data: MRBench V3 dev human labels against a copy with 20% of the labels changed."""
import random
from pathlib import Path


from annotation.agreement import agreement_report, main
from core.rubric import load_rubric
from core.schema import LabeledItem, write_jsonl
from core.sources import load_mrbench

ROOT = Path(__file__).resolve().parent.parent
MRBENCH = ROOT / "data/mrbench_v3_dev/mrbench_v3_devset.json"  # shipped with the repo: no skip if it is missing


def perturbed(items: list[LabeledItem], annotator: str, rate: float, seed: int = 0) -> list[LabeledItem]:
    rng = random.Random(seed)
    out = []
    for item in items:
        scores = {d: (rng.choice([k for k in range(3) if k != v]) if rng.random() < rate else v)
                  for d, v in item.scores.items()}
        out.append(item.model_copy(update={"annotator": annotator, "scores": scores}))
    return out


def test_mrbench_vs_perturbed_copy(tmp_path):
    rubric = load_rubric("mrbench")
    original = load_mrbench(MRBENCH, rubric)
    assert {i.annotator for i in original} == {"human:mrbench"}
    assert len(original) == 2476
    noisy = perturbed(original, "human:perturbed", rate=0.2)
    report = agreement_report(original + perturbed(original, "llm:noisy", rate=0.2, seed=1) + noisy, rubric)
    for dim in rubric.names:
        human = report["dimensions"][dim]["human_human"]
        assert human["n_items"] == 2476
        assert 0.5 < human["qwk"] < 1 and 0.5 < human["alpha"] < 1
        assert 0.75 < human["exact"] < 0.85  # about 80% of labels kept
        assert report["dimensions"][dim]["human_llm"]["llm:noisy"]["qwk"] < 1

    labels = tmp_path / "mrbench.jsonl"
    write_jsonl(labels, original + noisy)
    main(["--labels", str(labels), "--rubric", "mrbench", "--out", str(tmp_path / "report")])
    for name in ("agreement.json", "agreement.md", "agreement_heatmap.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
