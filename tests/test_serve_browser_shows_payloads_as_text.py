"""Text from datasets, models and annotators is shown as text: `<script>`, `onerror` and `onload` payloads in an
item's id, context and response, and in a comment, run nothing in Chromium and are visible literally."""
import pytest
from playwright.sync_api import expect, sync_playwright

from core.schema import write_jsonl
from annotation.serve.db import LabelStore
from browser_support import Server, launch_chromium, log_in

pytestmark = pytest.mark.browser

SCRIPT = "<script>window.__xss = 'script'</script>"
IMG = "<img src=x onerror=\"window.__xss = 'img'\">"
SVG = "<svg onload=alert('svg')></svg>"
ITEM_ID = "q1\"><img src=x onerror=\"window.__xss='id'\">"
CONTEXT = f"## Student profile\nInterests: {SVG}\n\n## Dialogue so far\nStudent: what is {SCRIPT}?"
RESPONSE = f"Try this: {IMG} and then {SCRIPT} -- what do you notice?"
COMMENT = "</textarea><img src=x onerror=\"window.__xss='comment'\">"


def assert_nothing_ran(page, dialogs):
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    assert page.locator("main img, main svg").count() == 0
    assert page.locator("script").count() <= 1  # at most our own /static/keys.js
    assert page.locator("script:not([src='/static/keys.js'])").count() == 0


@pytest.fixture()
def served(tmp_path):
    db, tasks = tmp_path / "labels.sqlite", tmp_path / "tasks.jsonl"
    write_jsonl(tasks, [{"id": ITEM_ID, "context": CONTEXT, "response": RESPONSE, "meta": {"note": SCRIPT}}])
    store = LabelStore(db)
    tokens = {"alice": store.create_annotator("alice"), "boss": store.create_annotator("boss", admin=True)}
    server = Server(db, tasks, k=1).start()
    yield server, tokens
    server.stop()


def test_payloads_run_nothing_and_read_as_text(served):
    server, tokens = served
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        log_in(page, server.url, tokens["alice"])
        expect(page.locator("#response")).to_contain_text(RESPONSE)
        expect(page.locator("#student-profile")).to_contain_text(f"Interests: {SVG}")
        expect(page.locator(".item-id code")).to_have_text(ITEM_ID)
        assert_nothing_ran(page, dialogs)

        page.fill("#comment", COMMENT)
        page.check("#flagged")
        for dimension in ("Helpfulness", "Personalization", "Creativity"):
            page.check(f"#{dimension}-1")
        page.click("#submit-label")
        expect(page.locator("h1")).to_have_text("Nothing left for you right now")

        page.goto(server.url + "/mine")  # the own-items list shows id and comment
        expect(page.locator("table")).to_contain_text(COMMENT)
        assert_nothing_ran(page, dialogs)
        page.click("table a")  # back to the item: the comment is inside the textarea, not after it
        expect(page.locator("#comment")).to_have_value(COMMENT)
        assert_nothing_ran(page, dialogs)

        admin = browser.new_context().new_page()
        admin.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        log_in(admin, server.url, tokens["boss"])
        expect(admin.locator("main")).to_contain_text(COMMENT)  # flagged list: comment and item id as text
        expect(admin.locator("main")).to_contain_text(ITEM_ID)
        assert_nothing_ran(admin, dialogs)
        browser.close()
