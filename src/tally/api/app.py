"""The ASGI application: every facade's routes, plus health, OpenAPI and docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tally.api.apps import AppsAPI
from tally.api.base import Facade, JSONResponse
from tally.api.environment import EnvironmentAPI
from tally.api.lingma import LingmaAPI
from tally.api.openapi import build_openapi, docs_page
from tally.api.platform import PlatformAPI
from tally.api.tally import TallyAPI
from tally.engine.refresh import Refresher
from tally.service import Tally, settle_heap

#: The API families, in routing order. A new vendor API is one module plus one entry here.
FACADES: list[type[Facade]] = [TallyAPI, LingmaAPI, PlatformAPI, EnvironmentAPI, AppsAPI]


def create_app(tally: Tally, facades: list[type[Facade]] | None = None) -> Starlette:
    instances = [cls(tally) for cls in (facades or FACADES)]
    document: dict[str, Any] = build_openapi(instances)
    page = docs_page(document)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
    for facade in instances:
        routes.extend(facade.routes())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        interval = tally.settings.rollup_refresh_seconds
        refresher = (
            Refresher(tally.event_store, tally.directory, interval) if interval > 0 else None
        )
        if refresher is not None:
            refresher.start()
        try:
            yield
        finally:
            if refresher is not None:
                refresher.stop()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.tally = tally
    return app


def worker_app() -> Starlette:
    """The app of one ``tally serve --workers N`` process: its settings from the environment
    (set by the parent), its own connections to the shared stores."""
    import atexit

    from tally.settings import Settings

    tally = Tally(Settings.from_env())
    tally.access.bootstrap_admin(tally.settings.admin_token)
    settle_heap(tally)  # load every directory now, not on the first request
    atexit.register(tally.close)
    return create_app(tally)
