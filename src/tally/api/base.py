"""What every facade shares: the operation table (routes and OpenAPI from one list), reading a
body within its limit, running the handler off the event loop, and the error mapping."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tally import metrics
from tally.errors import BadRequest, RequestTimeout, TallyError, TooLarge, UnsupportedMediaType
from tally.limits import Reservation
from tally.model.events import undecodable_reason
from tally.service import Tally

log = logging.getLogger("tally.api")
T = TypeVar("T")


@dataclass(frozen=True)
class Param:
    """A documented query or path parameter."""

    name: str
    where: str = "query"  # or "path" / "header"
    required: bool = False
    description: str = ""
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Call:
    """What a handler gets: the request, its body (already read within the limit), an id."""

    request: Request
    body: bytes
    request_id: str

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def bearer(self) -> str | None:
        """The token of an ``Authorization: Bearer <token>`` header."""
        value = self.request.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None


Handler = Callable[[Call], Response]


@dataclass(frozen=True)
class Operation:
    """One route: its handler and what the OpenAPI document says about it."""

    method: str
    path: str
    handler: Handler
    summary: str
    params: Sequence[Param] = ()
    body: Any = None  # a msgspec type, or a media-type -> schema mapping
    response: Any = None
    status: int = 200
    auth: str = "bearer"  # or "x-yunxiao-token" / "none"
    max_body: int | None = None
    #: Error statuses beyond those every operation of the family may answer (documented).
    errors: Sequence[int] = ()
    #: Whether a request must carry a body (the OpenAPI document says so).
    body_required: bool = True
    #: The media type(s) of a successful answer: JSON (``response`` is its schema), or files.
    response_media: str | tuple[str, ...] = "application/json"


class Facade:
    """One API family. Subclasses list their operations and render errors in their shape."""

    name = "facade"
    tag = "API"

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def operations(self) -> list[Operation]:
        raise NotImplementedError

    def render_error(self, error: TallyError, call: Call | None, request_id: str) -> Response:
        raise NotImplementedError

    #: The JSON schema of this family's error bodies, and their media type (OpenAPI).
    error_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    error_media = "application/json"

    def error_statuses(self, op: Operation) -> list[int]:
        """The error statuses ``op`` may answer: a bad parameter or body, no or an unknown
        token, another organization or a missing scope, an unknown resource; for a body, one
        too slow, too large, or past the bodies in flight; and the operation's own."""
        statuses = {400, 401, 403, 404, *op.errors}
        if op.method in ("POST", "PUT"):
            statuses |= {408, 413, 415, 503}
        return sorted(statuses)

    def routes(self) -> list[Route]:
        """One route per path, so that every method of a path answers ``OPTIONS`` and a
        method the path lacks gets a 405 whose ``Allow`` names them all."""
        by_path: dict[str, dict[str, Operation]] = {}
        for op in self.operations():
            by_path.setdefault(op.path, {})[op.method] = op
        return [
            Route(
                path,
                self._path_endpoint(ops),
                methods=[*ops, "OPTIONS"],
                name=f"{self.name}:{path}",
            )
            for path, ops in by_path.items()
        ]

    def _path_endpoint(self, ops: dict[str, Operation]) -> Callable[[Request], Any]:
        endpoints = {method: self._endpoint(op) for method, op in ops.items()}
        methods = {*ops, "OPTIONS"} | ({"HEAD"} if "GET" in ops else set())
        allow = ", ".join(sorted(methods))

        async def endpoint(request: Request) -> Response:
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": allow})
            method = "GET" if request.method == "HEAD" else request.method
            response: Response = await endpoints[method](request)
            return response

        return endpoint

    def _handle(self, op: Operation, call: Call) -> Response:
        """One call, on a worker thread: first catch up with other workers' directory writes."""
        self.tally.sync()
        return op.handler(call)

    def _endpoint(self, op: Operation) -> Callable[[Request], Any]:
        settings = self.tally.settings
        limit = op.max_body or settings.max_body_bytes
        server_timing = settings.server_timing
        has_body = op.method in ("POST", "PUT")
        json_body = has_body and op.body is not None and not isinstance(op.body, dict)

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            request_id = metrics.request_id(request.scope)  # the access log's too
            call: Call | None = None
            reservation = self.tally.body_budget.reservation()
            try:
                if json_body:
                    require_json(request)
                body = (
                    await read_body(request, limit, settings.body_timeout_seconds, reservation)
                    if has_body
                    else b""
                )
                call = Call(request, body, request_id)
                response = await run_in_threadpool(self._handle, op, call)
            except TallyError as error:
                response = self.render_error(error, call, request_id)
                response.headers.update(error.headers)
            except Exception:  # a bug, never the client's fault: answer in the family's shape
                log.exception("request %s failed", request_id)
                response = self.render_error(TallyError("internal error"), call, request_id)
            finally:
                reservation.release()
            response.headers["x-request-id"] = request_id
            if server_timing:
                took_ms = (time.perf_counter() - started) * 1000
                response.headers["server-timing"] = f"app;dur={took_ms:.3f}"
            log.debug(
                "%s %s -> %s [%s]",
                request.method,
                request.url.path,
                response.status_code,
                request_id,
            )
            return response

        return endpoint


def require_json(request: Request) -> None:
    """Refuse (415) a body declared as anything but JSON: a ``text/plain`` or form body is
    what a browser may send across origins without asking, so it is never taken for JSON.
    A body without a ``Content-Type`` is read as JSON (scripts often omit it)."""
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media = declared.split(";")[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise UnsupportedMediaType(f"send the body as application/json, not {media or 'nothing'}")


async def read_body(
    request: Request,
    limit: int,
    timeout: float | None = None,
    reservation: Reservation | None = None,
) -> bytes:
    """The request body, refusing (413) anything past ``limit`` bytes without reading it all,
    (408) a body that has not arrived after ``timeout`` seconds, and (503) one that would pass
    the process's budget of bodies in flight (``reservation``)."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit():
        if int(declared) > limit:
            raise TooLarge(f"the body is larger than the limit of {limit} bytes")
        if reservation is not None:
            reservation.grow(int(declared))
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"the body is larger than the limit of {limit} bytes")
                if reservation is not None:
                    reservation.grow(size)
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(
            f"the request's body did not arrive within {timeout:g} seconds"
        ) from None
    return b"".join(chunks)


def decode_json(body: bytes, kind: type[T]) -> T:
    """Decode a JSON body into ``kind``; a readable 400 names the field at fault."""
    if not body.strip():
        raise BadRequest("the request needs a JSON body")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        what, _, where = str(exc).partition(" - at `$")
        path = where.rstrip("`").lstrip(".")
        field_name = path.split("[")[0].split(".")[0] or None
        detail = f"{path}: {what}" if path else what
        raise BadRequest(detail, field=field_name) from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    except (UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"the body {undecodable_reason(exc)}") from exc


_encoder = msgspec.json.Encoder()


class JSONResponse(Response):
    """A JSON response encoded by msgspec (fast, and exact for our structs)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)
