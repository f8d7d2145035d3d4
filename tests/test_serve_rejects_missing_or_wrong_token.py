"""No token, a wrong token or a revoked token gets 401 on every protected page and API route."""
import pytest

from browser_support import bearer, local_app

PROTECTED = [
    ("GET", "/api/me"), ("GET", "/api/next"), ("GET", "/api/items/item-000"),
    ("GET", "/api/annotators/alice/labels"), ("PUT", "/api/annotators/alice/labels/item-000"),
    ("GET", "/api/admin/summary"), ("GET", "/admin/export.jsonl"),
    ("GET", "/next"), ("GET", "/mine"), ("GET", "/items/item-000"), ("POST", "/items/item-000"), ("GET", "/admin"),
]
BODY = {"scores": {"Helpfulness": 2, "Personalization": 1, "Creativity": 0}}


@pytest.fixture()
def app(tmp_path):
    return local_app(tmp_path)


def call(client, method, path, headers):
    return client.request(method, path, headers=headers, json=BODY if method == "PUT" else None)


def test_no_token_gets_401(app):
    for method, path in PROTECTED:
        response = call(app.client, method, path, {})
        assert response.status_code == 401, (method, path, response.text)
        if path.startswith("/api/"):
            assert response.headers["www-authenticate"] == "Bearer"
            assert "no access token" in response.json()["detail"]


def test_wrong_token_gets_401_with_header_or_cookie(app):
    wrong = app.tokens["alice"][:-2] + "xx"
    for method, path in PROTECTED:
        assert call(app.client, method, path, bearer(wrong)).status_code == 401, (method, path)
    app.client.cookies.set("tutor_align_token", wrong)
    page = app.client.get("/next", headers={"accept": "text/html"})
    assert page.status_code == 401 and 'id="token"' in page.text  # the login form, not a stack trace
    assert app.store.progress()["alice"]["assigned"] == 0  # nothing was claimed or written


def test_wrong_token_on_login_form_gets_401(app):
    response = app.client.post("/login", data={"token": "not-a-token"}, follow_redirects=False)
    assert response.status_code == 401 and "not valid" in response.text
    assert "set-cookie" not in response.headers
    ok = app.client.post("/login", data={"token": app.tokens["alice"]}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/next"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    again = app.client.get("/", follow_redirects=False)  # logged in: the front page goes straight to work
    assert again.status_code == 303 and again.headers["location"] == "/next"


def test_revoked_token_gets_401(app):
    headers = bearer(app.tokens["alice"])
    assert app.client.get("/api/me", headers=headers).json()["name"] == "alice"
    app.store.revoke_annotator("alice")
    assert app.client.get("/api/me", headers=headers).status_code == 401
    assert app.client.get("/api/me", headers=bearer(app.tokens["bob"])).status_code == 200
