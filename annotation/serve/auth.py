"""Who is asking: a per-annotator token, sent as `Authorization: Bearer <token>` (API clients) or held in an
HttpOnly, SameSite=Strict cookie after the login form (browsers). The store keeps only token hashes."""
from __future__ import annotations

from fastapi import HTTPException, Request

from annotation.serve.db import Annotator, LabelStore

COOKIE = "tutor_align_token"


def request_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE) or None


def current_annotator(request: Request) -> Annotator:
    """FastAPI dependency: 401 without a valid, unrevoked token."""
    token = request_token(request)
    if token is None:
        raise HTTPException(401, "no access token: log in, or send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    store: LabelStore = request.app.state.store
    annotator = store.annotator_for_token(token)
    if annotator is None:
        raise HTTPException(401, "unknown or revoked access token", headers={"WWW-Authenticate": "Bearer"})
    return annotator


def require_admin(request: Request) -> Annotator:
    annotator = current_annotator(request)
    if not annotator.is_admin:
        raise HTTPException(403, f"{annotator.name} is not an admin")
    return annotator
