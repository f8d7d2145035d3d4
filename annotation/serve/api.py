"""JSON API under /api: the same operations as the pages, for scripts and tests.

Labels live at /api/annotators/{name}/labels/{item_id}: an annotator reads and writes only their own
(403 otherwise); an admin may read anyone's but writes no one's.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from core.rubric import Rubric
from annotation.serve.auth import current_annotator
from annotation.serve.db import Annotator, Item, LabelStore, NotAssigned, SlotTaken

router = APIRouter(prefix="/api")


class LabelSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scores: dict[str, StrictInt] | None = Field(None, description="one level per rubric dimension; omit to skip")
    skip: StrictBool = Field(False, description="true: skip this item (its slot goes to another annotator)")
    comment: str = Field("", max_length=4000, description="optional free text")
    flagged: StrictBool = Field(False, description="mark the item as problematic for the admin")


def check_submission(rubric: Rubric, submission: LabelSubmission) -> None:
    """422 naming the field when the scores do not fit the rubric; a skip carries no scores."""
    if submission.skip:
        if submission.scores:
            raise HTTPException(422, "a skip carries no scores: send either scores or skip=true")
        return
    if submission.scores is None:
        raise HTTPException(422, f"scores: required (one level for each of {rubric.names}) unless skip=true")
    try:
        rubric.check_scores(submission.scores)
    except ValueError as err:
        raise HTTPException(422, str(err)) from None
    missing = [n for n in rubric.names if n not in submission.scores]
    if missing:
        raise HTTPException(422, f"scores: missing {missing} (rubric {rubric.name} needs {rubric.names})")


def known_item(store: LabelStore, item_id: str) -> Item:
    item = store.item(item_id)
    if item is None:
        raise HTTPException(404, f"no item {item_id!r}")
    return item


def save_submission(request: Request, who: Annotator, item_id: str, submission: LabelSubmission):
    """Validate, then write in one transaction; shared by the API and the HTML form."""
    state = request.app.state
    known_item(state.store, item_id)
    check_submission(state.rubric, submission)
    try:
        return state.store.save_label(
            item_id, who.name, state.k, None if submission.skip else submission.scores,
            comment=submission.comment, flagged=submission.flagged,
        )
    except NotAssigned as err:
        raise HTTPException(403, str(err)) from None
    except SlotTaken as err:
        raise HTTPException(409, str(err)) from None


def item_json(item: Item) -> dict:
    return {"id": item.id, "context": item.context, "response": item.response}


def progress_of(request: Request, name: str) -> dict:
    empty = {"labeled": 0, "skipped": 0, "pending": 0, "flagged": 0, "assigned": 0}
    return request.app.state.store.progress().get(name, empty)


@router.get("/me")
def me(request: Request, who: Annotator = Depends(current_annotator)):
    return {"name": who.name, "admin": who.is_admin, "progress": progress_of(request, who.name)}


@router.get("/next")
def next_item(request: Request, who: Annotator = Depends(current_annotator)):
    """The first pending item (claiming new ones when needed), or null when nothing is left for this annotator."""
    state = request.app.state
    item = state.store.next_item(who.name, state.k, state.claim_batch)
    return {"item": item_json(item) if item else None, "progress": progress_of(request, who.name)}


@router.get("/items/{item_id:path}")
def read_item(item_id: str, request: Request, who: Annotator = Depends(current_annotator)):
    store: LabelStore = request.app.state.store
    item = known_item(store, item_id)
    mine = store.assignment(item_id, who.name)
    if mine is None and not who.is_admin:
        raise HTTPException(403, f"item {item_id!r} is not assigned to {who.name}")
    return {"item": item_json(item), "label": mine.as_json() if mine else None}


def _own_or_admin(who: Annotator, name: str, write: bool) -> None:
    if who.name != name and (write or not who.is_admin):
        raise HTTPException(403, f"{who.name} may not {'change' if write else 'read'} the labels of {name}")


@router.get("/annotators/{name}/labels")
def list_labels(name: str, request: Request, who: Annotator = Depends(current_annotator)):
    _own_or_admin(who, name, write=False)
    return {"labels": [a.as_json() for a in request.app.state.store.assignments_of(name)]}


@router.get("/annotators/{name}/labels/{item_id:path}")
def read_label(name: str, item_id: str, request: Request, who: Annotator = Depends(current_annotator)):
    _own_or_admin(who, name, write=False)
    known_item(request.app.state.store, item_id)
    label = request.app.state.store.assignment(item_id, name)
    if label is None:
        raise HTTPException(404, f"item {item_id!r} is not assigned to {name}")
    return label.as_json()


@router.put("/annotators/{name}/labels/{item_id:path}")
def write_label(
    name: str, item_id: str, submission: LabelSubmission, request: Request,
    who: Annotator = Depends(current_annotator),
):
    _own_or_admin(who, name, write=True)
    return save_submission(request, who, item_id, submission).as_json()
