"""Overlap k: every item ends with exactly k different annotators; a skip frees its slot; work resumes in order."""
from collections import Counter

from browser_support import FULL_SCORES, bearer, local_app


def drain(app, name, skip_first=False) -> list[str]:
    """Label (or skip the first) until nothing is left for this annotator; returns the items in order served."""
    headers, served = bearer(app.tokens[name]), []
    while (item := app.client.get("/api/next", headers=headers).json()["item"]) is not None:
        body = {"skip": True} if skip_first and not served else {"scores": FULL_SCORES}
        assert app.client.put(f"/api/annotators/{name}/labels/{item['id']}", headers=headers, json=body).status_code == 200
        served.append(item["id"])
    return served


def test_every_item_gets_exactly_k_annotators(tmp_path):
    app = local_app(tmp_path, n_items=7, k=2, claim_batch=3, annotators=("alice", "bob", "carol"))
    served = {name: drain(app, name) for name in ("alice", "bob", "carol")}
    assert served["alice"] == app.ids  # a fast annotator may label everything once, in file order
    assert len(set(served["bob"])) == len(served["bob"]) == 7  # never the same item twice
    assert served["carol"] == []  # every slot already taken
    per_item = Counter(item.id for item in app.store.export())
    assert per_item == {item_id: 2 for item_id in app.ids}


def test_skip_frees_the_slot_for_someone_else(tmp_path):
    app = local_app(tmp_path, n_items=3, k=1, claim_batch=1, annotators=("alice", "bob"))
    alice = drain(app, "alice", skip_first=True)
    assert alice == app.ids  # alice skipped item 0 and labeled 1 and 2
    assert drain(app, "bob") == [app.ids[0]]  # the skipped slot went to bob
    labels = {(item.id, item.annotator) for item in app.store.export()}
    assert labels == {(app.ids[0], "human:bob"), (app.ids[1], "human:alice"), (app.ids[2], "human:alice")}
    late = app.client.put(f"/api/annotators/alice/labels/{app.ids[0]}", headers=bearer(app.tokens["alice"]),
                          json={"scores": FULL_SCORES})
    assert late.status_code == 409  # labeling after skipping would make k+1 annotators


def test_next_resumes_at_the_first_unfinished_item(tmp_path):
    app = local_app(tmp_path, n_items=5, k=1, claim_batch=5)
    alice = bearer(app.tokens["alice"])
    first = app.client.get("/api/next", headers=alice).json()
    assert first["item"]["id"] == app.ids[0] and first["progress"]["assigned"] == 5
    assert app.client.get("/api/next", headers=alice).json()["item"]["id"] == app.ids[0]  # no double claim
    app.client.put(f"/api/annotators/alice/labels/{app.ids[0]}", headers=alice, json={"scores": FULL_SCORES})
    again = app.client.get("/api/next", headers=alice).json()
    assert again["item"]["id"] == app.ids[1]
    assert again["progress"] == {"labeled": 1, "skipped": 0, "pending": 4, "flagged": 0, "assigned": 5}


def test_revoking_an_annotator_releases_their_unfinished_items(tmp_path):
    app = local_app(tmp_path, n_items=4, k=1, claim_batch=4)
    alice = bearer(app.tokens["alice"])
    first = app.client.get("/api/next", headers=alice).json()["item"]["id"]
    app.client.put(f"/api/annotators/alice/labels/{first}", headers=alice, json={"scores": FULL_SCORES})
    assert app.client.get("/api/next", headers=bearer(app.tokens["bob"])).json()["item"] is None  # all held
    assert app.store.revoke_annotator("alice") == 3
    assert drain(app, "bob") == app.ids[1:]  # alice's three unfinished items, not her labeled one
    assert {(i.id, i.annotator) for i in app.store.export()} >= {(first, "human:alice")}
