"""The FastAPI application: pages, JSON API, admin views, static files, and the security headers on every reply."""
from __future__ import annotations

from pathlib import Path

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.rubric import Rubric
from annotation.serve import api, pages, summary
from annotation.serve.db import LabelStore

HERE = Path(__file__).resolve().parent

# No inline script or style is allowed, so even text that slipped past escaping could not run.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def create_app(store: LabelStore, rubric: Rubric, k: int = 2, claim_batch: int = 10) -> FastAPI:
    app = FastAPI(title="tutor-align annotation", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.store = store
    app.state.rubric = rubric
    app.state.k = k
    app.state.claim_batch = claim_batch
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    app.state.templates = Jinja2Templates(env=env)

    app.include_router(api.router)
    app.include_router(summary.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        if not wants_html(request):
            return JSONResponse({"detail": err.detail}, status_code=err.status_code, headers=err.headers)
        if err.status_code == 401:
            return pages.render(request, "login.html", status_code=401, error=err.detail)
        return pages.render(request, "error.html", status_code=err.status_code, message=err.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError):
        problems = [
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors()
        ]
        return JSONResponse({"detail": "; ".join(problems), "errors": problems}, status_code=422)

    return app
