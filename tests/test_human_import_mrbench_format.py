"""`import --format mrbench` turns the shipped MRBench V3 dev set into interchange labels (human:mrbench)."""
from pathlib import Path

import pytest

from annotation.human_import import main
from core.schema import LabeledItem, read_jsonl

MRBENCH = Path(__file__).resolve().parent.parent / "data/mrbench_v3_dev/mrbench_v3_devset.json"


def test_mrbench_import(tmp_path):
    out = tmp_path / "mrbench.jsonl"
    main(["--format", "mrbench", "--input", str(MRBENCH), "--rubric", "mrbench", "--out", str(out)])
    items = read_jsonl(out, LabeledItem)
    assert len(items) == 2476 and {i.annotator for i in items} == {"human:mrbench"}
    assert len({i.id for i in items}) == 2476
    # the first response of the file (Sonnet, conversation 221-...) is rated "Yes" on every dimension
    assert items[0].scores == {"Mistake_Identification": 2, "Mistake_Location": 2, "Providing_Guidance": 2,
                               "Actionability": 2}
    with pytest.raises(SystemExit, match="Mistake_Identification: not a dimension of rubric hpc"):
        main(["--format", "mrbench", "--input", str(MRBENCH), "--rubric", "hpc", "--out", str(tmp_path / "x.jsonl")])
