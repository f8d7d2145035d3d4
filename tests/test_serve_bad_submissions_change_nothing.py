"""Unknown item, score out of range, wrong or missing dimension, malformed body: a clear 4xx, nothing stored."""
import re

import pytest

from browser_support import FULL_SCORES, bearer, local_app

BAD = [
    # (item, body, status, words the message must contain)
    ("no-such-item", {"scores": FULL_SCORES}, 404, "no item 'no-such-item'"),
    (None, {"scores": {**FULL_SCORES, "Creativity": 3}}, 422, "scores.Creativity: 3 is outside 0..2"),
    (None, {"scores": {**FULL_SCORES, "Helpfulness": -1}}, 422, "scores.Helpfulness: -1 is outside 0..2"),
    (None, {"scores": {**FULL_SCORES, "Humour": 1}}, 422, "scores.Humour: not a dimension of rubric hpc"),
    (None, {"scores": {"Helpfulness": 2}}, 422, "missing ['Personalization', 'Creativity']"),
    (None, {"scores": {**FULL_SCORES, "Creativity": "2"}}, 422, "scores.Creativity: Input should be a valid integer"),
    (None, {"scores": {**FULL_SCORES, "Creativity": 1.5}}, 422, "scores.Creativity: Input should be a valid integer"),
    (None, {"scores": FULL_SCORES, "skip": True}, 422, "a skip carries no scores"),
    (None, {}, 422, "scores: required"),
    (None, {"scores": FULL_SCORES, "rating": 5}, 422, "body.rating: Extra inputs are not permitted"),
    (None, {"scores": FULL_SCORES, "comment": "x" * 5000}, 422, "body.comment"),
    ("unassigned", {"scores": FULL_SCORES}, 403, "is not assigned to alice"),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = local_app(tmp_path_factory.mktemp("bad"), n_items=6, k=1, claim_batch=2)
    alice = bearer(app.tokens["alice"])
    app.mine = app.client.get("/api/next", headers=alice).json()["item"]["id"]
    app.client.put(f"/api/annotators/alice/labels/{app.mine}", headers=alice,
                   json={"scores": {"Helpfulness": 1, "Personalization": 1, "Creativity": 1}})
    app.unassigned = app.ids[-1]
    return app


def snapshot(app):
    return [a.as_json() for name in ("alice", "bob") for a in app.store.assignments_of(name)]


@pytest.mark.parametrize("item, body, status, words", BAD, ids=[b[3][:40] for b in BAD])
def test_bad_submission_is_refused_and_changes_nothing(app, item, body, status, words):
    item = {None: app.mine, "unassigned": app.unassigned}.get(item, item)
    before = snapshot(app)
    response = app.client.put(f"/api/annotators/alice/labels/{item}", headers=bearer(app.tokens["alice"]), json=body)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert snapshot(app) == before


def test_body_that_is_not_json_is_refused(app):
    before = snapshot(app)
    response = app.client.put(f"/api/annotators/alice/labels/{app.mine}", headers={
        **bearer(app.tokens["alice"]), "content-type": "application/json"}, content=b"{scores: 2")
    assert response.status_code == 422 and "JSON decode error" in response.json()["detail"]
    assert snapshot(app) == before


def test_html_form_with_a_missing_dimension_shows_the_error(app):
    app.client.cookies.set("tutor_align_token", app.tokens["alice"])
    before = snapshot(app)
    response = app.client.post(f"/items/{app.mine}", data={"action": "label", "score_Helpfulness": "2"})
    assert response.status_code == 422
    assert "missing [&#39;Personalization&#39;, &#39;Creativity&#39;]" in response.text
    assert snapshot(app) == before
    out_of_range = app.client.post(f"/items/{app.mine}", data={
        "action": "label", "score_Helpfulness": "7", "score_Personalization": "0", "score_Creativity": "0"})
    assert out_of_range.status_code == 422 and "7 is outside 0..2" in out_of_range.text
    not_a_number = app.client.post(f"/items/{app.mine}", data={
        "action": "label", "score_Helpfulness": "two", "score_Personalization": "0", "score_Creativity": "0"})
    assert not_a_number.status_code == 422 and "scores.Helpfulness: &#39;two&#39; is not a level" in not_a_number.text
    assert re.search(r'id="Personalization-0"[^>]*checked', not_a_number.text)  # the other choices are kept
    assert snapshot(app) == before
