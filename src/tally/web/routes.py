"""The dashboard's routes under ``/ui``: sign-in and sign-out, the page shells, the JSON each
page draws (``/ui/api/<view>``), the CSV of each table (``/ui/csv/<view>/<table>``) and the
static files. Thin: check the session and the organization, call a view, shape the answer."""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tally.api.base import JSONResponse
from tally.errors import Forbidden, NotFound, TallyError
from tally.model.directory import Directory
from tally.service import Tally
from tally.tokens import TokenRecord
from tally.web import session as sessions
from tally.web.pages import PAGES, error_page, signin_page, view_page
from tally.web.views import VIEWS, Context

log = logging.getLogger("tally.web")
STATIC = Path(__file__).parent / "static"

#: The pages' policy: script and style from this server only (no inline script or style), no
#: framing, forms posting only here.
UI_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
#: ``same-origin`` rather than the APIs' ``no-referrer``: with ``no-referrer`` a browser sends
#: ``Origin: null`` on the sign-in and sign-out forms, and the same-origin check needs the real
#: origin. Other sites still learn nothing.
REFERRER_POLICY = b"same-origin"
_OURS = (b"content-security-policy", b"cache-control", b"referrer-policy")
MESSAGES = {
    "expired": "Your session has expired or its token is no longer valid: sign in again.",
    "signedout": "You have signed out.",
}


class UIHeaders:
    """Every ``/ui`` answer gets the pages' policies (the app's own middleware then adds the
    other security headers, which it adds only when absent) and is never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OURS]
                headers.append((b"content-security-policy", UI_POLICY.encode()))
                headers.append((b"cache-control", b"no-store"))
                headers.append((b"referrer-policy", REFERRER_POLICY))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_policy)


class Dashboard:
    """The handlers, over one Tally."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    # -- the session -------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self.tally.settings.clock().timestamp())

    def token_of(self, request: Request) -> TokenRecord | None:
        """The session's token, re-checked now; ``None`` when absent, expired or unknown."""
        value = request.cookies.get(sessions.COOKIE)
        if not value:
            return None
        self.tally.sync()
        found = sessions.decode(self.tally.access.session_key(), value, self._now())
        if found is None:
            return None
        try:
            return self.tally.access.authenticate(found.token)
        except TallyError:
            return None

    def directory_for(self, token: TokenRecord, params: Mapping[str, str]) -> Directory:
        """The organization the page asks for (``org``), once the token may read it: an org
        token sees its own org only (another org's id: 403, whether it exists or not)."""
        wanted = params.get("org", "")
        if token.org is not None:
            if wanted and wanted != token.org:
                raise Forbidden("this token does not grant access to that organization")
            org_id = token.org
        else:
            org_id = wanted or min((o.id for o in self.tally.directory.orgs()), default="")
            if not org_id:
                raise NotFound("there is no organization yet")
        exists = token.org is not None or self.tally.directory.get(org_id) is not None
        self.tally.access.authorize(token, org_id, "read", org_exists=exists)
        return self.tally.directory.require(org_id)

    # -- sign-in and sign-out ----------------------------------------------------------------
    async def signin_form(self, request: Request) -> Response:
        reason = request.query_params.get("reason", "")
        message = MESSAGES.get(reason, "")
        return HTMLResponse(signin_page(message, error=reason == "expired"))

    async def signin(self, request: Request) -> Response:
        if not sessions.same_origin(request):
            return HTMLResponse(signin_page("Sign-in refused: wrong origin.", error=True), 403)
        body = (await request.body())[:8192].decode("utf-8", "replace")
        token = (parse_qs(body).get("token") or [""])[0].strip()
        try:
            record = await run_in_threadpool(self._check_token, token)
        except TallyError as error:
            return HTMLResponse(signin_page(_signin_error(error), error=True), status_code=401)
        now = self._now()
        response = RedirectResponse("/ui/", status_code=303)
        sessions.set_cookie(
            response,
            request,
            self.tally.access.session_key(),
            sessions.Session(token, now + sessions.SESSION_SECONDS),
            now,
        )
        log.info("dashboard sign-in by token %s", record.id)
        return response

    def _check_token(self, token: str) -> TokenRecord:
        self.tally.sync()
        record = self.tally.access.authenticate(token)
        if record.org is not None and "read" not in record.scopes:
            raise Forbidden('this token lacks the "read" scope')
        return record

    async def signout(self, request: Request) -> Response:
        if not sessions.same_origin(request):
            return HTMLResponse(error_page("Sign-out refused: wrong origin."), status_code=403)
        response = RedirectResponse("/ui/signin?reason=signedout", status_code=303)
        sessions.clear_cookie(response, request)
        return response

    # -- pages -------------------------------------------------------------------------------
    def page(self, view: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            token = await run_in_threadpool(self.token_of, request)
            if token is None:
                if not request.cookies.get(sessions.COOKIE):
                    return RedirectResponse("/ui/signin", status_code=303)
                response = RedirectResponse("/ui/signin?reason=expired", status_code=303)
                sessions.clear_cookie(response, request)
                return response
            params = dict(request.query_params)
            try:
                directory = await run_in_threadpool(self.directory_for, token, params)
                orgs = self.tally.directory.orgs() if token.org is None else [directory.org]
            except TallyError as error:
                return HTMLResponse(error_page(error.detail), status_code=error.status)
            return HTMLResponse(
                view_page(view, params, directory.org, orgs, admin=token.org is None)
            )

        return handler

    # -- data --------------------------------------------------------------------------------
    def _answer(self, request: Request, view: str) -> dict[str, Any]:
        token = self.token_of(request)
        if token is None:
            raise _SessionEnded()
        params = dict(request.query_params)
        directory = self.directory_for(token, params)
        started = time.perf_counter()
        answer = VIEWS[view](Context(self.tally, directory, params, self.tally.settings.clock()))
        answer["server_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return answer

    async def api(self, request: Request) -> Response:
        view = request.path_params["view"]
        if view not in VIEWS:
            return _json_error(404, f'no view "{view}"')
        try:
            answer = await run_in_threadpool(self._answer, request, view)
        except _SessionEnded:
            return _json_error(401, MESSAGES["expired"])
        except TallyError as error:
            return _json_error(error.status, error.detail)
        return JSONResponse(answer)

    async def csv(self, request: Request) -> Response:
        view, name = request.path_params["view"], request.path_params["table"]
        if view not in VIEWS:
            return _json_error(404, f'no view "{view}"')
        try:
            answer = await run_in_threadpool(self._answer, request, view)
        except _SessionEnded:
            return _json_error(401, MESSAGES["expired"])
        except TallyError as error:
            return _json_error(error.status, error.detail)
        found = answer["tables"].get(name)
        if found is None:
            return _json_error(404, f'the {view} page has no table "{name}"')
        parts = [answer["org"]["id"], view, name]
        parts += [answer[k] for k in ("from", "to", "date") if k in answer]
        filename = "-".join(str(p) for p in parts) + ".csv"
        return Response(
            to_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )

    def routes(self) -> list[BaseRoute]:
        pages: list[BaseRoute] = [
            Route(path.removeprefix("/ui") or "/", self.page(view), methods=["GET"])
            for view, path, _, _ in PAGES
        ]
        inner = Router(
            routes=[
                Route("/signin", self.signin_form, methods=["GET"]),
                Route("/signin", self.signin, methods=["POST"]),
                Route("/signout", self.signout, methods=["POST"]),
                Route("/api/{view}", self.api, methods=["GET"]),
                Route("/csv/{view}/{table}", self.csv, methods=["GET"]),
                Mount("/static", app=StaticFiles(directory=STATIC)),
                *pages,
            ]
        )
        return [
            Route("/ui", lambda request: RedirectResponse("/ui/", 307), methods=["GET"]),
            Mount("/ui", app=UIHeaders(inner)),
        ]


class _SessionEnded(Exception):
    """No valid session (absent, expired, or its token is no longer known)."""


def _signin_error(error: TallyError) -> str:
    if error.status == 401:
        return "That token is not valid (wrong, mistyped or revoked): check it and try again."
    return f"That token cannot open the dashboard: {error.detail}."


def _json_error(status: int, message: str) -> Response:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def to_csv(found: Mapping[str, Any]) -> str:
    """RFC 4180 CSV of a view's table (CRLF line ends, quoting where needed): a link's text,
    a sparkline's values separated by spaces, an absent value empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c["label"] for c in found["columns"]])
    for row in found["rows"]:
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return str(value["text"])
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def ui_routes(tally: Tally) -> list[BaseRoute]:
    """The dashboard's routes, for :func:`tally.api.app.create_app`."""
    return Dashboard(tally).routes()
