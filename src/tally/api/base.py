"""What every facade shares: the operation table (routes and OpenAPI from one list), reading a
body within its limit, running the handler off the event loop, and the error mapping."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tally import metrics
from tally.errors import BadRequest, TallyError, TooLarge
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

    def routes(self) -> list[Route]:
        return [
            Route(op.path, self._endpoint(op), methods=[op.method], name=f"{self.name}:{op.path}")
            for op in self.operations()
        ]

    def _handle(self, op: Operation, call: Call) -> Response:
        """One call, on a worker thread: first catch up with other workers' directory writes."""
        self.tally.sync()
        return op.handler(call)

    def _endpoint(self, op: Operation) -> Callable[[Request], Any]:
        limit = op.max_body or self.tally.settings.max_body_bytes
        server_timing = self.tally.settings.server_timing

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            request_id = metrics.request_id(request.scope)  # the access log's too
            call: Call | None = None
            try:
                body = await read_body(request, limit) if op.method in ("POST", "PUT") else b""
                call = Call(request, body, request_id)
                response = await run_in_threadpool(self._handle, op, call)
            except TallyError as error:
                response = self.render_error(error, call, request_id)
                response.headers.update(error.headers)
            except Exception:  # a bug, never the client's fault: answer in the family's shape
                log.exception("request %s failed", request_id)
                response = self.render_error(TallyError("internal error"), call, request_id)
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


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything past ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the body is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
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
