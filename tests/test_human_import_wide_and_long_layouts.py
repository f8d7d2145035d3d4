"""`python -m annotation import`: wide and long CSV, JSONL with nested columns, YAML column maps; one
LabeledItem per (item, annotator), levels mapped through the rubric."""
import json

from annotation.human_import import main
from core.schema import LabeledItem, read_jsonl, write_jsonl

WIDE_CSV = """item_id,text,ctx,rater,help_score,pers,Creativity
a1,"Try 3+4 again, counting on your fingers","Student: 3+4=8",ann,Yes,1,
a1,"Try 3+4 again, counting on your fingers","Student: 3+4=8",bo,2,To some extent,0
a2,"It is 7.","Student: 3+4=8",ann,0,no,NA
a2,"It is 7.","Student: 3+4=8",bo,1.0,Generic,Rote
"""
WIDE_MAP = ["--map", "id=item_id", "--map", "response=text", "--map", "context=ctx", "--map", "annotator=rater",
            "--map", "Helpfulness=help_score", "--map", "Personalization=pers"]


def _scores(path):
    return {(i.id, i.annotator): i.scores for i in read_jsonl(path, LabeledItem)}


def test_wide_csv_with_column_map(tmp_path):
    (tmp_path / "labels.csv").write_text(WIDE_CSV)
    out = tmp_path / "human.jsonl"
    main(["--input", str(tmp_path / "labels.csv"), "--out", str(out), *WIDE_MAP])
    items = read_jsonl(out, LabeledItem)
    assert len(items) == 4  # two annotators on the same item stay two items
    assert _scores(out) == {
        ("a1", "human:ann"): {"Helpfulness": 2, "Personalization": 1},  # empty Creativity cell = not labeled
        ("a1", "human:bo"): {"Helpfulness": 2, "Personalization": 1, "Creativity": 0},
        ("a2", "human:ann"): {"Helpfulness": 0, "Personalization": 0},  # "NA" = not labeled
        ("a2", "human:bo"): {"Helpfulness": 1, "Personalization": 0, "Creativity": 0},
    }
    first = items[0]
    assert first.response == "Try 3+4 again, counting on your fingers" and first.context == "Student: 3+4=8"
    assert first.meta["source"].endswith("labels.csv:2")


def test_long_csv_takes_texts_from_an_items_file(tmp_path):
    items = tmp_path / "items.jsonl"
    write_jsonl(items, [LabeledItem(id=f"a{k}", context=f"c{k}", response=f"r{k}") for k in (1, 2)])
    (tmp_path / "long.csv").write_text(
        "id,who,dim,value\n"
        "a1,ann,Helpfulness,2\n"
        "a1,ann,creativity,Stimulating\n"  # dimension names match case-insensitively
        "a2,llm:gpt,Helpfulness,Not helpful\n"  # names that already carry a prefix keep it
        "a2,bo,Helpfulness,\n"  # empty score: no label
    )
    out = tmp_path / "out.jsonl"
    main(["--input", str(tmp_path / "long.csv"), "--out", str(out), "--items", str(items),
          "--map", "annotator=who", "--map", "dimension=dim", "--map", "score=value"])
    assert _scores(out) == {("a1", "human:ann"): {"Helpfulness": 2, "Creativity": 2},
                            ("a2", "llm:gpt"): {"Helpfulness": 0}}
    by_id = {i.id: i for i in read_jsonl(out, LabeledItem)}
    assert (by_id["a2"].context, by_id["a2"].response) == ("c2", "r2")


def test_jsonl_with_nested_columns_and_yaml_map(tmp_path):
    rows = [
        {"uid": 7, "dialogue": "Student: 2x=6", "reply": "What is 6/2?", "annotator": "cara",
         "labels": {"H": "high", "P": "medium", "C": 2}},
        {"uid": 8, "dialogue": "Student: 2x=6", "reply": "x=3", "annotator": "cara", "labels": {"H": 0}},
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "import.yaml").write_text(
        "map: {id: uid, context: dialogue, response: reply, Helpfulness: labels.H, Personalization: labels.Q,"
        " Creativity: labels.C}\n"
    )
    out = tmp_path / "out.jsonl"
    # the flag fixes the YAML's typo (labels.Q) and keeps the rest of its map
    main(["--config", str(tmp_path / "import.yaml"), "--input", str(tmp_path / "in.jsonl"), "--out", str(out),
          "--map", "Personalization=labels.P", "--layout", "wide"])
    assert _scores(out) == {("7", "human:cara"): {"Helpfulness": 2, "Personalization": 1, "Creativity": 2},
                            ("8", "human:cara"): {"Helpfulness": 0}}


def test_default_annotator_when_there_is_no_annotator_column(tmp_path):
    (tmp_path / "one.csv").write_text("id,context,response,Helpfulness\nq1,c,r,2\n")
    out = tmp_path / "out.jsonl"
    main(["--input", str(tmp_path / "one.csv"), "--out", str(out), "--default-annotator", "teacher1"])
    assert _scores(out) == {("q1", "human:teacher1"): {"Helpfulness": 2}}


def test_long_layout_texts_may_come_from_any_row_of_the_item(tmp_path):
    (tmp_path / "long.csv").write_text(
        "id,annotator,dimension,score,context,response\n"
        "a1,ann,Helpfulness,2,,\n"  # texts left empty on the first row of the item
        "a1,ann,Creativity,1,Student: 5*3=8?,What does 5*3 mean?\n"
    )
    out = tmp_path / "out.jsonl"
    main(["--input", str(tmp_path / "long.csv"), "--out", str(out)])
    (item,) = read_jsonl(out, LabeledItem)
    assert (item.context, item.response, item.scores) == ("Student: 5*3=8?", "What does 5*3 mean?",
                                                         {"Helpfulness": 2, "Creativity": 1})
