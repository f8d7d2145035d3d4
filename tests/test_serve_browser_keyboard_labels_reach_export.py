"""In headless Chromium: an annotator logs in with a token, labels items with the keyboard (levels, flag, skip,
comment), comes back later to the item where they stopped, and an admin downloads exactly those labels."""
import pytest
from playwright.sync_api import expect, sync_playwright

from core.schema import LabeledItem
from annotation.serve.db import LabelStore
from browser_support import Server, expect_item_page, launch_chromium, log_in, write_tasks

pytestmark = pytest.mark.browser


@pytest.fixture()
def served(tmp_path):
    db, tasks = tmp_path / "labels.sqlite", tmp_path / "tasks.jsonl"
    ids = write_tasks(tasks, 4)
    store = LabelStore(db)
    tokens = {"alice": store.create_annotator("alice"), "boss": store.create_annotator("boss", admin=True)}
    server = Server(db, tasks, k=1).start()
    yield server, tokens, ids
    server.stop()


def test_keyboard_labeling_lands_in_export(served, tmp_path):
    server, tokens, ids = served
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        log_in(page, server.url, tokens["alice"])
        expect_item_page(page, server.url, ids[0])
        expect(page.locator("#student-profile")).to_contain_text("Known misconception: adds the denominators")
        expect(page.locator("#progress")).to_contain_text("0 done of 4 assigned")

        for key in "210":  # Helpfulness 2, Personalization 1, Creativity 0
            page.keyboard.press(key)
        expect(page.locator("#Helpfulness-2")).to_be_checked()
        expect(page.locator("#Personalization-1")).to_be_checked()
        expect(page.locator("#Creativity-0")).to_be_checked()
        expect(page.locator("#submit-label")).to_be_focused()
        page.keyboard.press("Enter")
        expect_item_page(page, server.url, ids[1])

        page.keyboard.press("1")
        page.keyboard.press("ArrowUp")  # go back and change Helpfulness
        page.keyboard.press("0")
        page.keyboard.press("1")
        page.keyboard.press("2")
        page.keyboard.press("f")
        expect(page.locator("#flagged")).to_be_checked()
        page.keyboard.press("Enter")
        expect_item_page(page, server.url, ids[2])
        expect(page.locator("#progress")).to_contain_text("2 done of 4 assigned")

        page.keyboard.press("s")  # skip
        expect_item_page(page, server.url, ids[3])
        page.close()

        later = browser.new_context().new_page()  # a new session resumes at the first unfinished item
        log_in(later, server.url, tokens["alice"])
        expect_item_page(later, server.url, ids[3])
        later.click("#comment")
        later.keyboard.type("2 s f <b>not bold</b>")  # keys typed in the comment are text, not shortcuts
        expect(later.locator("#flagged")).not_to_be_checked()
        later.click("#Creativity-2")  # the mouse works too
        later.click("fieldset[data-dimension=Helpfulness] legend")  # highlight a dimension by clicking it
        for key in "00":
            later.keyboard.press(key)  # Helpfulness, then the next unanswered one: Personalization
        expect(later.locator("#Creativity-2")).to_be_checked()
        later.click("#submit-label")
        expect(later.locator("h1")).to_have_text("Nothing left for you right now")

        admin = browser.new_context(accept_downloads=True).new_page()
        log_in(admin, server.url, tokens["boss"])
        expect(admin).to_have_url(f"{server.url}/admin")
        expect(admin.locator("#progress-table")).to_contain_text("alice")
        with admin.expect_download() as download:
            admin.click("#export")
        path = tmp_path / "export.jsonl"
        download.value.save_as(path)
        browser.close()

    labels = {item.id: item for item in map(LabeledItem.model_validate_json, path.read_text().splitlines())}
    assert sorted(labels) == [ids[0], ids[1], ids[3]]  # the skipped item has no label
    assert {item.annotator for item in labels.values()} == {"human:alice"}
    assert labels[ids[0]].scores == {"Helpfulness": 2, "Personalization": 1, "Creativity": 0}
    assert labels[ids[1]].scores == {"Helpfulness": 0, "Personalization": 1, "Creativity": 2}
    assert labels[ids[1]].meta["flagged"] is True and labels[ids[0]].meta["flagged"] is False
    assert labels[ids[3]].scores == {"Helpfulness": 0, "Personalization": 0, "Creativity": 2}
    assert labels[ids[3]].meta["comment"] == "2 s f <b>not bold</b>"
