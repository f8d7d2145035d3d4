"""An annotator can neither read nor change another annotator's labels (403); admins read but never write them."""
import pytest

from browser_support import FULL_SCORES, bearer, local_app

OTHER = {"Helpfulness": 0, "Personalization": 0, "Creativity": 0}


@pytest.fixture()
def app(tmp_path):
    app = local_app(tmp_path, n_items=4, k=2)
    alice = bearer(app.tokens["alice"])
    first = app.client.get("/api/next", headers=alice).json()["item"]["id"]
    put = app.client.put(f"/api/annotators/alice/labels/{first}", headers=alice,
                         json={"scores": FULL_SCORES, "comment": "alice's private note"})
    assert put.status_code == 200
    app.first = first
    return app


def test_other_annotator_gets_403_on_read_and_write(app):
    bob = bearer(app.tokens["bob"])
    before = app.store.export()
    assert app.client.get("/api/annotators/alice/labels", headers=bob).status_code == 403
    assert app.client.get(f"/api/annotators/alice/labels/{app.first}", headers=bob).status_code == 403
    for body in ({"scores": OTHER}, {"skip": True}):
        response = app.client.put(f"/api/annotators/alice/labels/{app.first}", headers=bob, json=body)
        assert response.status_code == 403 and "may not change the labels of alice" in response.json()["detail"]
    assert app.store.export() == before


def test_shared_item_shows_only_your_own_label(app):
    bob = bearer(app.tokens["bob"])
    item = app.client.get("/api/next", headers=bob).json()["item"]
    assert item["id"] == app.first  # overlap: bob gets the item alice labeled
    seen = app.client.get(f"/api/items/{app.first}", headers=bob).json()
    assert seen["label"]["annotator"] == "bob" and seen["label"]["scores"] is None
    app.client.cookies.set("tutor_align_token", app.tokens["bob"])
    page = app.client.get(f"/items/{app.first}").text
    assert "alice" not in page and "private note" not in page and "checked" not in page


def test_items_not_assigned_to_you_are_403(tmp_path):
    app = local_app(tmp_path, n_items=4, k=1, claim_batch=2)
    alice, bob = bearer(app.tokens["alice"]), bearer(app.tokens["bob"])
    alice_item = app.client.get("/api/next", headers=alice).json()["item"]["id"]
    app.client.get("/api/next", headers=bob)  # bob claims the other two items (k=1: no overlap)
    assert app.client.get(f"/api/items/{alice_item}", headers=bob).status_code == 403
    assert app.client.put(f"/api/annotators/bob/labels/{alice_item}", headers=bob,
                          json={"scores": OTHER}).status_code == 403
    app.client.cookies.set("tutor_align_token", app.tokens["bob"])
    assert app.client.get(f"/items/{alice_item}").status_code == 403
    assert app.store.assignment(alice_item, "bob") is None


def test_admin_reads_but_cannot_write_and_annotators_cannot_admin(app):
    boss, bob = bearer(app.tokens["boss"]), bearer(app.tokens["bob"])
    labels = app.client.get("/api/annotators/alice/labels", headers=boss).json()["labels"]
    assert [a["scores"] for a in labels if a["status"] == "labeled"] == [FULL_SCORES]
    assert app.client.put(f"/api/annotators/alice/labels/{app.first}", headers=boss,
                          json={"scores": OTHER}).status_code == 403
    for path in ("/admin", "/admin/export.jsonl", "/api/admin/summary"):
        assert app.client.get(path, headers=bob).status_code == 403, path
    assert app.store.assignment(app.first, "alice").scores == FULL_SCORES
