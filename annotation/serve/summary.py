"""Admin views: progress per annotator, live agreement per dimension, flagged items, and the label export."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from core.rubric import Rubric
from annotation.serve.auth import require_admin
from annotation.serve.db import Annotator, LabelStore

router = APIRouter()

AGREEMENT_COLUMNS = ("alpha", "exact", "qwk", "n_items", "n_raters")


def live_agreement(store: LabelStore, rubric: Rubric) -> tuple[dict | None, str | None]:
    """The same statistics as `annotation agreement` on the labels so far, or why they cannot be computed yet."""
    from annotation.agreement import human_agreement  # the statistics live in one place

    items = store.export()
    if len({item.annotator for item in items}) < 2:
        return None, "Agreement needs labels from at least two annotators."
    try:
        return human_agreement(items, rubric), None
    except ValueError as err:  # e.g. no item labeled by two annotators yet
        return None, str(err)


def admin_summary(store: LabelStore, rubric: Rubric, k: int) -> dict:
    agreement, agreement_note = live_agreement(store, rubric)
    return {
        "k": k,
        "progress": store.progress(),
        "coverage": store.coverage(k),
        "agreement": agreement,
        "agreement_note": agreement_note,
        "agreement_columns": AGREEMENT_COLUMNS,
        "flagged": [a.as_json() for a in store.flagged()],
    }


@router.get("/api/admin/summary")
def summary_json(request: Request, who: Annotator = Depends(require_admin)):
    state = request.app.state
    return admin_summary(state.store, state.rubric, state.k)


@router.get("/admin/export.jsonl")
def export_jsonl(request: Request, who: Annotator = Depends(require_admin)):
    """All labels as interchange JSONL (annotator `human:<name>`; comment and flag in meta)."""
    lines = "".join(item.model_dump_json(exclude_none=True) + "\n" for item in request.app.state.store.export())
    return Response(
        lines, media_type="application/jsonl; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="human_labels.jsonl"'},
    )
