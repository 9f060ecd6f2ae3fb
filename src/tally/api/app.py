"""The ASGI application: every facade's routes, plus health, OpenAPI and docs."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tally.api.apps import AppsAPI
from tally.api.base import Facade, JSONResponse
from tally.api.environment import EnvironmentAPI
from tally.api.export import ExportAPI
from tally.api.lingma import LingmaAPI
from tally.api.openapi import DOCS_STYLE, build_openapi, docs_page
from tally.api.platform import PlatformAPI
from tally.api.tally import TallyAPI
from tally.engine.refresh import IdleCheckpointer, Refresher
from tally.metrics import observability
from tally.service import Tally, settle_heap
from tally.web.routes import ui_routes

#: The API families, in routing order. A new vendor API is one module plus one entry here.
FACADES: list[type[Facade]] = [TallyAPI, LingmaAPI, PlatformAPI, EnvironmentAPI, AppsAPI]
FACADES.append(ExportAPI)


def _style_hash(style: str) -> str:
    return base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()


#: Sent with every answer: no sniffing, no referrer, no framing, and a policy that lets a page
#: load nothing but the docs page's own style sheet (no script anywhere).
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        (
            f"default-src 'none'; style-src 'sha256-{_style_hash(DOCS_STYLE)}';"
            " frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        ).encode(),
    ),
]


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    tally: Tally, facades: list[type[Facade]] | None = None, *, close_on_shutdown: bool = False
) -> Starlette:
    """The app over ``tally``. ``close_on_shutdown``: close the stores when the server shuts
    down (``tally serve``: uvicorn re-raises SIGTERM after its graceful shutdown, so code after
    ``uvicorn.run`` never runs, and the DuckDB log would stay unfolded)."""
    instances = [cls(tally) for cls in (facades or FACADES)]
    document: dict[str, Any] = build_openapi(instances)
    page = docs_page(document)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
    for facade in instances:
        routes.extend(facade.routes())
    routes.extend(ui_routes(tally))  # the dashboard, /ui/

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        threads = _background_threads(tally)
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            for thread in threads:
                thread.stop()
            if close_on_shutdown:
                tally.close()

    extra_routes, extra_middleware = observability(tally)  # /metrics, the access log
    routes.extend(extra_routes)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders), *extra_middleware],
    )
    app.state.tally = tally
    return app


def _background_threads(tally: Tally) -> list[Refresher | IdleCheckpointer]:
    """The server's housekeeping: the second-level rollups' refresh, the idle checkpoint."""
    settings = tally.settings
    threads: list[Refresher | IdleCheckpointer] = []
    if settings.rollup_refresh_seconds > 0:
        threads.append(
            Refresher(tally.event_store, tally.directory, settings.rollup_refresh_seconds)
        )
    if settings.idle_checkpoint_seconds > 0:
        threads.append(IdleCheckpointer(tally.event_store, settings.idle_checkpoint_seconds))
    return threads


def worker_app() -> Starlette:
    """The app of one ``tally serve --workers N`` process: its settings from the environment
    (set by the parent), its own connections to the shared stores."""
    from tally.server import configure_protocol
    from tally.settings import Settings

    tally = Tally(Settings.from_env())
    configure_protocol(tally.settings)  # this process's header deadline
    tally.access.bootstrap_admin(tally.settings.admin_token)
    settle_heap(tally)  # load every directory now, not on the first request
    return create_app(tally, close_on_shutdown=True)
