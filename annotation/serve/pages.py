"""Server-rendered pages: login, one page per item with the rubric form, the annotator's own list, admin.

Every page is a Jinja2 template with autoescaping, so dataset and model text is always shown as text. Forms
work without JavaScript; static/keys.js only adds the keyboard shortcuts.
"""
from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from core.schema import PROFILE_HEADER
from annotation.serve.api import LabelSubmission, progress_of, save_submission
from annotation.serve.auth import COOKIE, current_annotator, request_token, require_admin
from annotation.serve.db import Annotator, LabelStore
from annotation.serve.summary import admin_summary

router = APIRouter()


def render(request: Request, name: str, status_code: int = 200, **context) -> Response:
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status_code)


def item_url(item_id: str) -> str:
    return "/items/" + quote(item_id, safe="")


def context_blocks(context: str) -> list[dict]:
    """Split a rendered context at its `## ` headers; the student profile block is marked to stand out."""
    blocks: list[dict] = []
    for line in context.splitlines():
        if line.startswith("## "):
            blocks.append({"title": line[3:].strip(), "lines": [], "profile": line.strip() == PROFILE_HEADER})
        else:
            if not blocks:
                blocks.append({"title": None, "lines": [], "profile": False})
            blocks[-1]["lines"].append(line)
    for block in blocks:
        block["text"] = "\n".join(block.pop("lines")).strip()
    return blocks


@router.get("/healthz")
def healthz():
    return {"ok": True}


@router.get("/favicon.ico")
def favicon():
    return Response(status_code=204)  # no icon; this keeps the browser console free of 404s


@router.get("/")
def home(request: Request):
    token = request_token(request)
    who = request.app.state.store.annotator_for_token(token) if token else None
    if who is not None:  # already logged in
        return RedirectResponse("/admin" if who.is_admin else "/next", status_code=303)
    return render(request, "login.html", error=None)


@router.post("/login")
async def login(request: Request):
    form = await request.form()
    token = str(form.get("token", "")).strip()
    store: LabelStore = request.app.state.store
    who = await run_in_threadpool(store.annotator_for_token, token) if token else None
    if who is None:
        return render(request, "login.html", status_code=401, error="That token is not valid (or was revoked).")
    response = RedirectResponse("/admin" if who.is_admin else "/next", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout():
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/next")
def next_page(request: Request, who: Annotator = Depends(current_annotator)):
    state = request.app.state
    item = state.store.next_item(who.name, state.k, state.claim_batch)
    if item is not None:
        return RedirectResponse(item_url(item.id), status_code=303)
    return render(request, "done.html", who=who, my_progress=progress_of(request, who.name))


@router.get("/mine")
def my_items(request: Request, who: Annotator = Depends(current_annotator)):
    rows = [(a, item_url(a.item_id)) for a in request.app.state.store.assignments_of(who.name)]
    return render(request, "mine.html", who=who, rows=rows, my_progress=progress_of(request, who.name))


def item_page(request: Request, who: Annotator, item_id: str, status_code: int = 200, error: str | None = None,
              submitted: dict | None = None) -> Response:
    store: LabelStore = request.app.state.store
    item = store.item(item_id)
    if item is None:
        raise HTTPException(404, f"no item {item_id!r}")
    mine = store.assignment(item_id, who.name)
    if mine is None:
        raise HTTPException(403, f"item {item_id!r} is not assigned to {who.name}")
    chosen = submitted if submitted is not None else (mine.scores or {})
    return render(
        request, "item.html", status_code=status_code, who=who, item=item, label=mine, chosen=chosen,
        blocks=context_blocks(item.context), rubric=request.app.state.rubric, error=error,
        action=item_url(item_id), my_progress=progress_of(request, who.name),
    )


@router.get("/items/{item_id:path}")
def show_item(item_id: str, request: Request, who: Annotator = Depends(current_annotator)):
    return item_page(request, who, item_id)


def form_submission(form, rubric) -> LabelSubmission:
    """The item form as a LabelSubmission; a value that is not a level or too long a comment is a 422."""
    skip = form.get("action") == "skip"
    scores = {}
    for name in rubric.names:
        value = str(form.get(f"score_{name}") or "")
        if value:
            if not value.isdigit():
                raise HTTPException(422, f"scores.{name}: {value!r} is not a level")
            scores[name] = int(value)
    try:
        return LabelSubmission(
            scores=None if skip else scores, skip=skip, comment=str(form.get("comment", "")).strip(),
            flagged=form.get("flagged") == "on",
        )
    except ValidationError as err:
        e = err.errors()[0]
        raise HTTPException(422, f"{'.'.join(map(str, e['loc']))}: {e['msg']}") from None


@router.post("/items/{item_id:path}")
async def submit_item(item_id: str, request: Request, who: Annotator = Depends(current_annotator)):
    form = await request.form()
    try:
        submission = form_submission(form, request.app.state.rubric)
        await run_in_threadpool(save_submission, request, who, item_id, submission)
    except HTTPException as err:
        if err.status_code != 422:
            raise
        submitted = {k.removeprefix("score_"): v for k, v in form.items() if k.startswith("score_")}
        return await run_in_threadpool(item_page, request, who, item_id, 422, err.detail, submitted)
    return RedirectResponse("/next", status_code=303)


@router.get("/admin")
def admin_page(request: Request, who: Annotator = Depends(require_admin)):
    state = request.app.state
    return render(request, "admin.html", who=who, **admin_summary(state.store, state.rubric, state.k))
