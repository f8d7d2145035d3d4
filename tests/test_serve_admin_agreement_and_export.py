"""The admin page shows progress, live agreement (the same numbers as `annotation agreement`) and exports
every label as interchange JSONL with annotator `human:<name>` and the comment and flag in meta."""
import json

from annotation.agreement import human_agreement
from annotation.serve import admin
from core.rubric import load_rubric
from core.schema import LabeledItem
from browser_support import bearer, local_app


def label(app, name, item_id, helpfulness, creativity, **extra):
    body = {"scores": {"Helpfulness": helpfulness, "Personalization": 1, "Creativity": creativity}, **extra}
    reply = app.client.put(f"/api/annotators/{name}/labels/{item_id}", headers=bearer(app.tokens[name]), json=body)
    assert reply.status_code == 200, reply.text


def test_live_agreement_and_export(tmp_path):
    app = local_app(tmp_path, n_items=4, k=2, claim_batch=4)
    boss = bearer(app.tokens["boss"])
    for name in ("alice", "bob"):
        app.client.get("/api/next", headers=bearer(app.tokens[name]))
    label(app, "alice", app.ids[0], 2, 0)
    note = app.client.get("/api/admin/summary", headers=boss).json()
    assert note["agreement"] is None and "at least two annotators" in note["agreement_note"]

    for i, item_id in enumerate(app.ids):
        if i:
            label(app, "alice", item_id, i % 3, 0)
        label(app, "bob", item_id, (i if i else 2) % 3, 2, comment=f"bob on {i}", flagged=i == 3)
    summary = app.client.get("/api/admin/summary", headers=boss).json()
    assert summary["coverage"] == {"items": 4, "items_with_k_labels": 4, "labels": 8}
    assert summary["progress"]["alice"]["labeled"] == summary["progress"]["bob"]["labeled"] == 4
    assert summary["agreement"]["Helpfulness"]["exact"] == 1.0  # same Helpfulness everywhere
    assert summary["agreement"]["Creativity"]["exact"] == 0.0  # 0 vs 2 everywhere
    expected = human_agreement(app.store.export(), load_rubric("hpc"))
    assert summary["agreement"] == json.loads(json.dumps(expected))
    assert [f["item_id"] for f in summary["flagged"]] == [app.ids[3]]

    export = app.client.get("/admin/export.jsonl", headers=boss)
    assert export.status_code == 200 and "human_labels.jsonl" in export.headers["content-disposition"]
    items = [LabeledItem.model_validate_json(line) for line in export.text.splitlines()]
    assert len(items) == 8 and {item.annotator for item in items} == {"human:alice", "human:bob"}
    bob_last = next(i for i in items if i.annotator == "human:bob" and i.id == app.ids[3])
    assert bob_last.meta["comment"] == "bob on 3" and bob_last.meta["flagged"] is True
    assert bob_last.meta["n"] == 3 and bob_last.prompt[0].content == "What is 1/2 + 1/6?"  # task fields kept
    assert bob_last.scores == {"Helpfulness": 0, "Personalization": 1, "Creativity": 2}

    exported = tmp_path / "human_labels.jsonl"  # the same file from the shell
    admin.main(["export", "--db", str(app.store.path), "--out", str(exported)])
    assert exported.read_text() == export.text

    page = app.client.get("/admin", headers={**boss, "accept": "text/html"}).text
    assert 'id="agreement-table"' in page and "1.000" in page and "bob on 3" in page
    assert "8 labels; 4 of 4 items have 2 or more labels" in page
