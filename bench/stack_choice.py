"""Stack-choice benchmark for Tally's ingest path (``POST /events`` with 1,000-event batches).

What it measures
----------------
1. Decode + validate of one 1,000-event JSON array (a realistic mix: 60% completion, 15% chat,
   15% code, 5% activity, 5% workspace_activity; ~235 bytes an event), in events/s, best of
   several timed repeats, for:

   * msgspec: typed Structs as a tagged union on ``type`` (strict, ``Meta(ge=0)`` ints,
     tz-aware ``datetime``), decoding ``list[Event]`` in one call;
   * msgspec "fast path + fallback" (Tally's per-item semantics: one bad item never fails the
     batch): ``list[Event]`` in one call, and when that raises, ``list[msgspec.Raw]`` then each
     item on its own; timed on the all-valid batch and on a batch with one bad item;
   * pydantic v2: ``TypeAdapter(list[discriminated union])`` of strict models, one call;
   * pydantic v2 per item: the same union wrapped in a ``WrapValidator`` that turns an item's
     ``ValidationError`` into a rejection, so one bad item does not fail the batch;
   * ``orjson.loads`` and stdlib ``json.loads``, each followed by the same hand-written checks.

   Every per-item variant is first checked to accept the valid batch, to reject exactly the one
   bad item, and to reject a set of malformed items (wrong types, negative counts, naive times,
   unknown tags, unknown fields), so the figures compare like with like. One difference
   remains: pydantic's per-item wrap validator re-validates an item in Python mode, where a
   strict datetime would refuse the JSON string, so both pydantic variants make ``time`` lax
   (pydantic then also takes a Unix timestamp number there).

2. Framework overhead on that endpoint: the same tiny app in Starlette, Litestar and FastAPI,
   each served by uvicorn (uvloop + httptools, 1 worker, access log off) on 127.0.0.1 on a free
   port, in a subprocess. ``POST /events`` reads the raw body, decodes it with the msgspec fast
   path + fallback above and answers ``{"accepted": n}``; ``GET /healthz`` answers a constant.
   A separate load process keeps 8 concurrent clients (one keep-alive connection each) posting
   the same 1,000-event body in a closed loop for a bounded time, then getting ``/healthz``,
   and reports events/s acknowledged, requests/s, p50/p99 latency, and the share of a core
   that the server and the load process used. It does so twice per framework: with 8
   ``httpx.AsyncClient`` clients, and with 8 minimal asyncio HTTP/1.1 clients (pre-built
   request, response read by Content-Length), because on two cores httpx itself saturates
   first on small requests and would hide the servers' differences. The server's CPU time per
   request under the raw load is the cleanest per-framework overhead figure. Each framework is
   measured in ``--rounds`` rounds (alternating order, fresh server each) and the best round is
   reported; all rounds go to the JSON. Only loopback is used; every server and load process is
   stopped by its PID at the end, also on error, SIGTERM or Ctrl-C.

How to run (from the repository root; about 3 minutes on 2 cores)::

    python3 -m venv /tmp/stackvenv
    /tmp/stackvenv/bin/pip install msgspec pydantic orjson starlette litestar fastapi \\
        'uvicorn[standard]' httpx
    /tmp/stackvenv/bin/python bench/stack_choice.py

It prints one table and writes the figures as JSON to
``bench/results/stack-choice-<YYYY-MM-DD>.json``. ``--quick`` makes a short smoke run;
``--help`` lists the other knobs.
"""

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import math
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import msgspec
import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

BATCH_SIZE = 1_000
SEED = 20260301
BAD_INDEX = 500
FRAMEWORKS = ("starlette", "litestar", "fastapi")
LIBRARIES = (
    "msgspec",
    "pydantic",
    "pydantic-core",
    "orjson",
    "starlette",
    "litestar",
    "fastapi",
    "uvicorn",
    "uvloop",
    "httptools",
    "httpx",
)
SCRIPT = str(Path(__file__).resolve())
RESULTS_DIR = Path(SCRIPT).parent / "results"

# --------------------------------------------------------------------------------------------
# The payload
# --------------------------------------------------------------------------------------------

IDES = ("vscode", "jetbrains-intellij-idea", "jetbrains-pycharm", "visual-studio", "neovim")
LANGUAGES = ("python", "typescript", "java", "go", "rust", "kotlin", "csharp", "cpp")
CHAT_TYPES = ("CODE_GENERATE_COMMENT", "GENERATE_TESTCASE", "EXPLAIN_CODE", "OPTIMIZE_CODE")
MIX = {"completion": 600, "chat": 150, "code": 150, "activity": 50, "workspace_activity": 50}


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def make_events(seed: int = SEED, size: int = BATCH_SIZE) -> list[dict[str, Any]]:
    """A deterministic, shuffled batch with the MIX proportions (scaled to ``size``)."""
    rng = random.Random(seed)
    tags = [tag for tag, count in MIX.items() for _ in range(count * size // BATCH_SIZE)]
    tags += ["completion"] * (size - len(tags))
    rng.shuffle(tags)
    if size > BAD_INDEX and tags[BAD_INDEX] != "completion":  # the item the bad batch breaks
        swap = tags.index("completion")
        tags[swap], tags[BAD_INDEX] = tags[BAD_INDEX], tags[swap]
    tz = dt.timezone(dt.timedelta(hours=8))
    start = dt.datetime(2026, 3, 1, 9, 0, tzinfo=tz)
    events: list[dict[str, Any]] = []
    for index, tag in enumerate(tags):
        when = start + dt.timedelta(seconds=index * 3.7, microseconds=rng.randrange(1_000_000))
        event: dict[str, Any] = {
            "id": f"evt-{_uuid(rng)}",
            "time": when.isoformat(timespec="microseconds"),
            "type": tag,
            "member": f"member-{rng.randrange(5_000):05d}@corp.example.com",
        }
        if tag == "completion":
            suggested = rng.randrange(1, 40)
            accepted = rng.random() < 0.3
            event |= {
                "ide": rng.choice(IDES),
                "language": rng.choice(LANGUAGES),
                "lines_suggested": suggested,
                "accepted": accepted,
                "lines_accepted": rng.randrange(1, suggested + 1) if accepted else 0,
            }
        elif tag == "chat":
            event |= {
                "ide": rng.choice(IDES),
                "chat_type": rng.choice(CHAT_TYPES),
                "accepted": rng.random() < 0.5,
            }
        elif tag == "code":
            event |= {
                "language": rng.choice(LANGUAGES),
                "source": rng.choice(("completion", "chat")),
                "lines_accepted": rng.randrange(0, 60),
                "lines_changed": rng.randrange(0, 200),
            }
        elif tag == "workspace_activity":
            event["workspace"] = f"ws-{rng.randrange(300):04d}-{rng.getrandbits(32):08x}"
        events.append(event)
    return events


def encode(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events, separators=(",", ":")).encode()


def make_bodies() -> tuple[bytes, bytes]:
    """The all-valid body, and the same body with one bad item (a negative count)."""
    events = make_events()
    bad = [dict(e) for e in events]
    bad[BAD_INDEX]["lines_accepted"] = -1
    return encode(events), encode(bad)


# Items that every per-item decoder must reject (checked before timing).
MALFORMED_ITEMS: tuple[str, ...] = (
    '{"id":"x","time":"2026-03-01T09:00:00+08:00","type":"completion","member":"m","ide":"v",'
    '"language":"py","lines_suggested":"4","accepted":true,"lines_accepted":3}',
    '{"id":"x","time":"2026-03-01T09:00:00+08:00","type":"completion","member":"m","ide":"v",'
    '"language":"py","lines_suggested":4,"accepted":1,"lines_accepted":3}',
    '{"id":"x","time":"2026-03-01T09:00:00+08:00","type":"completion","member":"m","ide":"v",'
    '"language":"py","lines_suggested":4.0,"accepted":true,"lines_accepted":3}',
    '{"id":"x","time":"2026-03-01T09:00:00","type":"activity","member":"m"}',
    '{"id":"x","time":"yesterday","type":"activity","member":"m"}',
    '{"id":"x","time":"2026-03-01T09:00:00Z","type":"nope","member":"m"}',
    '{"id":"x","time":"2026-03-01T09:00:00Z","member":"m"}',
    '{"id":"x","time":"2026-03-01T09:00:00Z","type":"activity","member":"m","extra":1}',
    '{"id":"x","time":"2026-03-01T09:00:00Z","type":"workspace_activity","member":"m"}',
    '{"id":"x","time":"2026-03-01T09:00:00Z","type":"code","member":"m","language":"go",'
    '"source":"paste","lines_accepted":1,"lines_changed":1}',
    '{"id":7,"time":"2026-03-01T09:00:00Z","type":"activity","member":"m"}',
    '["not", "an", "object"]',
)

# --------------------------------------------------------------------------------------------
# (a) msgspec
# --------------------------------------------------------------------------------------------

Lines = Annotated[int, msgspec.Meta(ge=0)]
Instant = Annotated[dt.datetime, msgspec.Meta(tz=True)]


class _Event(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    id: str
    time: Instant
    member: str


class Completion(_Event, tag="completion"):
    ide: str
    language: str
    lines_suggested: Lines
    accepted: bool
    lines_accepted: Lines


class Chat(_Event, tag="chat"):
    ide: str
    chat_type: str
    accepted: bool


class Code(_Event, tag="code"):
    language: str
    source: Literal["completion", "chat"]
    lines_accepted: Lines
    lines_changed: Lines


class Activity(_Event, tag="activity"):
    pass


class WorkspaceActivity(_Event, tag="workspace_activity"):
    workspace: str


Event = Completion | Chat | Code | Activity | WorkspaceActivity
Rejected = list[tuple[int, str]]

_batch_decoder = msgspec.json.Decoder(list[Event])
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_item_decoder = msgspec.json.Decoder(Event)


def msgspec_batch(body: bytes) -> list[Event]:
    """The whole batch in one call; any bad item fails it."""
    return _batch_decoder.decode(body)


def msgspec_items(body: bytes) -> tuple[list[Event], Rejected]:
    """Fast path (one call), falling back to item-by-item decoding when the batch has a bad item.

    Raises ``msgspec.DecodeError`` only when the body is not a JSON array.
    """
    try:
        return _batch_decoder.decode(body), []
    except msgspec.DecodeError:
        pass
    accepted: list[Event] = []
    rejected: Rejected = []
    for index, raw in enumerate(_raw_list_decoder.decode(body)):
        try:
            accepted.append(_item_decoder.decode(raw))
        except msgspec.DecodeError as exc:
            rejected.append((index, str(exc)))
    return accepted, rejected


# --------------------------------------------------------------------------------------------
# (b) pydantic v2
# --------------------------------------------------------------------------------------------

PLines = Annotated[int, Field(ge=0)]
# Lax so that the per-item wrap validator (which re-validates in Python mode) takes the string.
PInstant = Annotated[AwareDatetime, Strict(False)]


class _PEvent(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    id: str
    time: PInstant
    member: str


class PCompletion(_PEvent):
    type: Literal["completion"]
    ide: str
    language: str
    lines_suggested: PLines
    accepted: bool
    lines_accepted: PLines


class PChat(_PEvent):
    type: Literal["chat"]
    ide: str
    chat_type: str
    accepted: bool


class PCode(_PEvent):
    type: Literal["code"]
    language: str
    source: Literal["completion", "chat"]
    lines_accepted: PLines
    lines_changed: PLines


class PActivity(_PEvent):
    type: Literal["activity"]


class PWorkspaceActivity(_PEvent):
    type: Literal["workspace_activity"]
    workspace: str


PEvent = Annotated[
    PCompletion | PChat | PCode | PActivity | PWorkspaceActivity, Field(discriminator="type")
]


class PRejected:
    """What the per-item wrap validator leaves in place of a bad item."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _catch_item(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError as exc:
        return PRejected(str(exc.errors()[0]["msg"]))


_pydantic_batch = TypeAdapter(list[PEvent])
_pydantic_items = TypeAdapter(list[Annotated[PEvent, WrapValidator(_catch_item)]])


def pydantic_batch(body: bytes) -> list[Any]:
    """The whole batch in one call; any bad item fails it."""
    return _pydantic_batch.validate_json(body)


def pydantic_items(body: bytes) -> tuple[list[Any], Rejected]:
    accepted: list[Any] = []
    rejected: Rejected = []
    for index, item in enumerate(_pydantic_items.validate_json(body)):
        if isinstance(item, PRejected):
            rejected.append((index, item.reason))
        else:
            accepted.append(item)
    return accepted, rejected


# --------------------------------------------------------------------------------------------
# (c, d) orjson / json + hand-written checks
# --------------------------------------------------------------------------------------------

_STR, _NAT, _BOOL, _TIME, _SOURCE = "str", "nat", "bool", "time", "source"
_BASE = {"id": _STR, "time": _TIME, "type": _STR, "member": _STR}
HAND_SCHEMAS: dict[str, dict[str, str]] = {
    "completion": _BASE
    | {
        "ide": _STR,
        "language": _STR,
        "lines_suggested": _NAT,
        "accepted": _BOOL,
        "lines_accepted": _NAT,
    },
    "chat": _BASE | {"ide": _STR, "chat_type": _STR, "accepted": _BOOL},
    "code": _BASE
    | {"language": _STR, "source": _SOURCE, "lines_accepted": _NAT, "lines_changed": _NAT},
    "activity": dict(_BASE),
    "workspace_activity": _BASE | {"workspace": _STR},
}
SOURCES = frozenset({"completion", "chat"})


def check_item(item: Any) -> dict[str, Any]:
    """Validate one parsed item in place (``time`` becomes an aware datetime) and return it."""
    if type(item) is not dict:
        raise ValueError("the item is not a JSON object")
    tag = item.get("type")
    schema = HAND_SCHEMAS.get(tag) if type(tag) is str else None
    if schema is None:
        raise ValueError(f"unknown or missing type {tag!r}")
    if item.keys() != schema.keys():
        missing = sorted(schema.keys() - item.keys())
        unknown = sorted(item.keys() - schema.keys())
        raise ValueError(f"missing fields {missing}, unknown fields {unknown}")
    for name, kind in schema.items():
        value = item[name]
        if kind == _STR:
            ok = type(value) is str
        elif kind == _NAT:
            ok = type(value) is int and value >= 0
        elif kind == _BOOL:
            ok = type(value) is bool
        elif kind == _SOURCE:
            ok = type(value) is str and value in SOURCES
        else:  # _TIME
            if type(value) is not str:
                raise ValueError(f"{name}: expected an RFC 3339 string")
            try:
                when = dt.datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{name}: not an RFC 3339 datetime") from None
            if when.tzinfo is None:
                raise ValueError(f"{name}: the datetime has no offset")
            item[name] = when
            continue
        if not ok:
            raise ValueError(f"{name}: expected {kind}, got {value!r}")
    return item


def hand_items(body: bytes, loads: Callable[[bytes], Any]) -> tuple[list[Any], Rejected]:
    data = loads(body)
    if type(data) is not list:
        raise ValueError("the body is not a JSON array")
    accepted: list[Any] = []
    rejected: Rejected = []
    for index, item in enumerate(data):
        try:
            accepted.append(check_item(item))
        except ValueError as exc:
            rejected.append((index, str(exc)))
    return accepted, rejected


def orjson_items(body: bytes) -> tuple[list[Any], Rejected]:
    return hand_items(body, orjson.loads)


def json_items(body: bytes) -> tuple[list[Any], Rejected]:
    return hand_items(body, json.loads)


# --------------------------------------------------------------------------------------------
# Part 1: decode benchmark
# --------------------------------------------------------------------------------------------

BatchDecoder = Callable[[bytes], list[Any]]
ItemsDecoder = Callable[[bytes], tuple[list[Any], Rejected]]

BATCH_VARIANTS: dict[str, BatchDecoder] = {
    "msgspec Struct union, list[Event] one call": msgspec_batch,
    "pydantic TypeAdapter discriminated union": pydantic_batch,
}
MSGSPEC_ITEMS = "msgspec fast path + Raw per-item fallback"
ITEM_VARIANTS: dict[str, ItemsDecoder] = {
    MSGSPEC_ITEMS: msgspec_items,
    "pydantic union + per-item WrapValidator": pydantic_items,
    "orjson.loads + hand checks": orjson_items,
    "json.loads + hand checks": json_items,
}


def verify_decoders(good: bytes, bad: bytes) -> None:
    """Refuse to time a decoder that does not have the semantics the comparison assumes."""
    malformed = b"[" + ",".join(MALFORMED_ITEMS).encode() + b"]"
    for name, batch_fn in BATCH_VARIANTS.items():
        assert len(batch_fn(good)) == BATCH_SIZE, name
        try:
            batch_fn(bad)
        except (msgspec.DecodeError, ValidationError):
            pass
        else:
            raise AssertionError(f"{name} accepted a batch with a bad item")
    for name, items_fn in ITEM_VARIANTS.items():
        accepted, rejected = items_fn(good)
        assert (len(accepted), rejected) == (BATCH_SIZE, []), name
        accepted, rejected = items_fn(bad)
        assert len(accepted) == BATCH_SIZE - 1, name
        assert [index for index, _ in rejected] == [BAD_INDEX], (name, rejected)
        accepted, rejected = items_fn(malformed)
        assert not accepted, (name, accepted)
        assert len(rejected) == len(MALFORMED_ITEMS), (name, rejected)


def best_time(fn: Callable[[], object], repeats: int, min_time: float) -> tuple[float, int]:
    """Best seconds per call over ``repeats`` timed loops of at least ``min_time`` each."""
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    loops = max(1, round(min_time / once))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - start) / loops)
    return best, loops


def run_decode_bench(
    good: bytes, bad: bytes, repeats: int, min_time: float
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cases: list[tuple[str, str, Callable[[], object]]] = []
    for name, batch_fn in BATCH_VARIANTS.items():
        cases.append((name, "all valid", partial(batch_fn, good)))
    for name, items_fn in ITEM_VARIANTS.items():
        cases.append((name, "all valid", partial(items_fn, good)))
        cases.append((name, "1 bad item", partial(items_fn, bad)))
    for name, batch_label, call in cases:
        seconds, loops = best_time(call, repeats, min_time)
        rows.append(
            {
                "variant": name,
                "batch": batch_label,
                "per_item_semantics": name in ITEM_VARIANTS,
                "seconds_per_batch": seconds,
                "events_per_s": BATCH_SIZE / seconds,
                "loops_per_repeat": loops,
                "repeats": repeats,
            }
        )
        print(f"  {name:<44} {batch_label:<10} {BATCH_SIZE / seconds:>12,.0f} ev/s", flush=True)
    for name in BATCH_VARIANTS:
        rows.append(
            {
                "variant": name,
                "batch": "1 bad item",
                "per_item_semantics": False,
                "seconds_per_batch": None,
                "events_per_s": None,
                "note": "rejects the whole batch",
            }
        )
    return rows


# --------------------------------------------------------------------------------------------
# Part 2: the servers (run in a subprocess: ``--role serve``)
# --------------------------------------------------------------------------------------------

_response_encoder = msgspec.json.Encoder()
HEALTH_BODY = b'{"status":"ok"}'


def ingest(body: bytes) -> tuple[int, bytes]:
    """What every framework's ``POST /events`` does with the raw body."""
    try:
        accepted, _rejected = msgspec_items(body)
    except msgspec.DecodeError:
        return 400, b'{"error":"the body is not a JSON array of events"}'
    return 200, _response_encoder.encode({"accepted": len(accepted)})


def build_starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def events(request: Request) -> Response:
        status, payload = ingest(await request.body())
        return Response(payload, status_code=status, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(HEALTH_BODY, media_type="application/json")

    return Starlette(
        routes=[
            Route("/events", events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def build_litestar() -> Any:
    from litestar import Litestar, MediaType, Request, Response, get, post

    @post("/events", status_code=200)
    async def events(request: Request[Any, Any, Any]) -> Response[bytes]:
        status, payload = ingest(await request.body())
        return Response(content=payload, status_code=status, media_type=MediaType.JSON)

    @get("/healthz")
    async def healthz() -> Response[bytes]:
        return Response(content=HEALTH_BODY, media_type=MediaType.JSON)

    return Litestar(route_handlers=[events, healthz], openapi_config=None)


def build_fastapi() -> Any:
    from fastapi import FastAPI, Request, Response

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/events")
    async def events(request: Request) -> Response:
        status, payload = ingest(await request.body())
        return Response(payload, status_code=status, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(HEALTH_BODY, media_type="application/json")

    return app


BUILDERS: dict[str, Callable[[], Any]] = {
    "starlette": build_starlette,
    "litestar": build_litestar,
    "fastapi": build_fastapi,
}


def serve(framework: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        BUILDERS[framework](),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_level="warning",
    )


# --------------------------------------------------------------------------------------------
# Part 2: the load generator (run in a subprocess: ``--role load``)
# --------------------------------------------------------------------------------------------

Send = Callable[[], Awaitable[tuple[int, bytes]]]
CLIENT_KINDS = ("httpx", "raw")


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, from /proc (None where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@contextlib.asynccontextmanager
async def httpx_senders(
    port: int, method: str, path: str, body: bytes | None, count: int
) -> AsyncIterator[list[Send]]:
    """``count`` httpx.AsyncClients, one keep-alive connection each (the specified load)."""
    headers = {"content-type": "application/json"} if body is not None else {}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    base_url = f"http://127.0.0.1:{port}"
    clients = [
        httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0, trust_env=False)
        for _ in range(count)
    ]

    def sender(client: httpx.AsyncClient) -> Send:
        async def send() -> tuple[int, bytes]:
            response = await client.request(method, path, content=body, headers=headers)
            return response.status_code, response.content

        return send

    try:
        yield [sender(client) for client in clients]
    finally:
        for client in clients:
            await client.aclose()


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client on one socket: a pre-built request, and a response
    read by Content-Length. Far cheaper per request than httpx, so that the server, not the
    load process, is what saturates on two cores."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes):
        self.reader, self.writer, self.request = reader, writer, request

    async def send(self) -> tuple[int, bytes]:
        self.writer.write(self.request)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length: int | None = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError("a response without Content-Length")
        return status, await self.reader.readexactly(length)


@contextlib.asynccontextmanager
async def raw_senders(
    port: int, method: str, path: str, body: bytes | None, count: int
) -> AsyncIterator[list[Send]]:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    request = head.encode() + b"\r\n" + (body or b"")
    connections: list[RawConnection] = []
    try:
        for _ in range(count):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            connections.append(RawConnection(reader, writer, request))
        yield [connection.send for connection in connections]
    finally:
        for connection in connections:
            connection.writer.close()
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()


async def load_phase(
    senders: list[Send],
    expect_accepted: int | None,
    warmup: float,
    duration: float,
    server_pid: int,
) -> dict[str, Any]:
    """Every sender in a closed loop; statistics over requests sent in the timed window."""
    latencies: list[float] = []
    errors = 0
    acknowledged = 0
    last_done = 0.0
    window_start = time.perf_counter() + warmup
    window_end = window_start + duration
    cpu: dict[str, float | None] = {}

    async def client_loop(send: Send) -> None:
        nonlocal errors, acknowledged, last_done
        while (sent := time.perf_counter()) < window_end:
            status, content = await send()
            done = time.perf_counter()
            if sent < window_start:
                continue
            latencies.append(done - sent)
            last_done = max(last_done, done)
            if status != 200:
                errors += 1
            elif expect_accepted is not None:
                count = msgspec.json.decode(content)["accepted"]
                acknowledged += count
                errors += count != expect_accepted

    async def sample_cpu() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        cpu["server"] = process_cpu_seconds(server_pid)
        cpu["client"] = time.process_time()

    sampler = asyncio.ensure_future(sample_cpu())
    await asyncio.gather(*(client_loop(send) for send in senders))
    await sampler
    server_end = process_cpu_seconds(server_pid)
    client_end = time.process_time()
    if not latencies:
        raise RuntimeError("no request completed in the timed window")
    elapsed = last_done - window_start
    latencies.sort()
    server_start, client_start = cpu["server"], cpu["client"]
    server_cpu = (
        server_end - server_start if server_end is not None and server_start is not None else None
    )
    client_cpu = client_end - client_start if client_start is not None else None
    return {
        "requests": len(latencies),
        "errors": errors,
        "elapsed_s": elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "events_per_s": acknowledged / elapsed if expect_accepted is not None else None,
        "p50_ms": percentile(latencies, 0.50) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "max_ms": latencies[-1] * 1e3,
        "server_cpu_pct": None if server_cpu is None else 100 * server_cpu / elapsed,
        "client_cpu_pct": None if client_cpu is None else 100 * client_cpu / elapsed,
        "server_cpu_ms_per_request": (
            None if server_cpu is None else 1e3 * server_cpu / len(latencies)
        ),
    }


async def run_load(args: argparse.Namespace) -> dict[str, Any]:
    good, _bad = make_bodies()
    senders_for = httpx_senders if args.client == "httpx" else raw_senders
    result: dict[str, Any] = {}
    phases: tuple[tuple[str, Literal["GET", "POST"], str, bytes | None, float, float], ...] = (
        ("ingest", "POST", "/events", good, args.warmup, args.duration),
        ("healthz", "GET", "/healthz", None, min(args.warmup, 0.5), args.health_duration),
    )
    for name, method, path, body, warmup, duration in phases:
        async with senders_for(args.port, method, path, body, args.clients) as senders:
            result[name] = await load_phase(
                senders,
                BATCH_SIZE if body is not None else None,
                warmup,
                duration,
                args.server_pid,
            )
    return result


# --------------------------------------------------------------------------------------------
# Part 2: orchestration
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL after 5 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/healthz"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early with code {process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1.0, trust_env=False).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the server on port {port} did not answer /healthz in {timeout:.0f} s")


@contextlib.contextmanager
def running_server(
    framework: str, started: list[subprocess.Popen[bytes]]
) -> Iterator[tuple[int, int]]:
    """A uvicorn subprocess serving ``framework``; yields (port, pid) and stops it by PID."""
    port = free_port()
    cmd = [SCRIPT, "--role", "serve", "--framework", framework, "--port", str(port)]
    process = subprocess.Popen([sys.executable, *cmd], stdin=subprocess.DEVNULL)
    started.append(process)
    try:
        wait_ready(process, port)
        yield port, process.pid
    finally:
        stop(process)


def run_loader(
    args: argparse.Namespace,
    client: str,
    port: int,
    server_pid: int,
    started: list[subprocess.Popen[bytes]],
) -> dict[str, Any]:
    cmd = [
        *(SCRIPT, "--role", "load", "--client", client, "--port", str(port)),
        *("--server-pid", str(server_pid), "--clients", str(args.clients)),
        *("--warmup", str(args.warmup), "--duration", str(args.duration)),
        *("--health-duration", str(args.health_duration)),
    ]
    loader = subprocess.Popen(
        [sys.executable, *cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    started.append(loader)
    try:
        out, _ = loader.communicate(timeout=3 * (args.warmup + args.duration) + 60)
    finally:
        stop(loader)
    if loader.returncode != 0:
        raise RuntimeError(f"the {client} load process failed (exit {loader.returncode})")
    result: dict[str, Any] = json.loads(out)
    return result


def run_framework_bench(
    args: argparse.Namespace, started: list[subprocess.Popen[bytes]]
) -> list[dict[str, Any]]:
    """Each framework, each client kind, ``args.rounds`` times in alternating order."""
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        order = args.frameworks if round_ % 2 == 0 else args.frameworks[::-1]
        for framework in order:
            with running_server(framework, started) as (port, server_pid):
                for client in CLIENT_KINDS:
                    stats = run_loader(args, client, port, server_pid, started)
                    runs.append({"round": round_, "framework": framework, "client": client})
                    runs[-1] |= stats
                    ing, hz = stats["ingest"], stats["healthz"]
                    print(
                        f"  round {round_ + 1} {framework:<10} {client:<5} "
                        f"POST /events {ing['events_per_s']:>10,.0f} ev/s "
                        f"p50 {ing['p50_ms']:6.2f} ms p99 {ing['p99_ms']:6.2f} ms | "
                        f"GET /healthz {hz['requests_per_s']:>7,.0f} req/s",
                        flush=True,
                    )
    return runs


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per framework, client kind and endpoint: the round with the highest throughput, plus
    the lowest server CPU per request over all rounds (the least disturbed by other load)."""
    best: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        for endpoint in ("ingest", "healthz"):
            slot = best.setdefault(run["framework"], {}).setdefault(run["client"], {})
            stats = run[endpoint] | {"round": run["round"]}
            if endpoint not in slot or stats["requests_per_s"] > slot[endpoint]["requests_per_s"]:
                slot[endpoint] = stats
    for framework, by_client in best.items():
        for client, by_endpoint in by_client.items():
            for endpoint, stats in by_endpoint.items():
                costs = [
                    run[endpoint]["server_cpu_ms_per_request"]
                    for run in runs
                    if run["framework"] == framework and run["client"] == client
                    if run[endpoint]["server_cpu_ms_per_request"] is not None
                ]
                stats["min_server_cpu_ms_per_request"] = min(costs, default=None)
    return best


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def library_versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


def _num(value: float | None, scale: float = 1.0, fmt: str = ".2f") -> str:
    return "n/a" if value is None else format(value * scale, fmt)


def render_decode(report: dict[str, Any]) -> list[str]:
    payload = report["payload"]
    lines = [
        f"1) Decode + validate one {BATCH_SIZE:,}-event batch ({payload['body_bytes']:,} B, "
        f"{payload['mean_event_bytes']:.0f} B/event), best of {report['settings']['repeats']}",
        f"   {'variant':<44} {'batch':<10} {'events/s':>12} {'ms/batch':>9} {'vs msgspec':>10}",
    ]
    rows = report["decode"]
    baseline = next(
        r["events_per_s"]
        for r in rows
        if r["variant"] == MSGSPEC_ITEMS and r["batch"] == "all valid"
    )
    order = list(BATCH_VARIANTS) + list(ITEM_VARIANTS)
    for row in sorted(rows, key=lambda r: (order.index(r["variant"]), r["batch"] != "all valid")):
        if row["events_per_s"] is None:
            figures = f"{'(' + row['note'] + ')':>33}"
        else:
            figures = (
                f"{row['events_per_s']:>12,.0f} {row['seconds_per_batch'] * 1e3:>9.3f} "
                f"{row['events_per_s'] / baseline:>9.2f}x"
            )
        lines.append(f"   {row['variant']:<44} {row['batch']:<10} {figures}")
    return lines


def render_frameworks(report: dict[str, Any]) -> list[str]:
    settings = report["settings"]
    summary = report["framework_summary"]
    rounds, clients = settings["rounds"], settings["clients"]
    lines = [
        f"2) Framework overhead: uvicorn (uvloop, httptools, 1 worker, no access log), "
        f"{clients} concurrent clients, best of {rounds} rounds of "
        f"{settings['duration_s']:g} s (POST) / {settings['health_duration_s']:g} s (GET)",
        "   httpx = httpx.AsyncClient load (as specified); raw = minimal asyncio HTTP/1.1 client",
        "   srv/cli = share of one core used by the server / the load process",
    ]
    for endpoint, title, unit, scale, label in (
        ("ingest", "POST /events (1,000 events a request)", "events/s", 1.0, "srv ms/req"),
        ("healthz", "GET /healthz", "req/s", 1e3, "srv µs/req"),
    ):
        head = f"{unit:>10} {'p50 ms':>7} {'p99 ms':>7} {'srv':>4} {'cli':>4}"
        lines += [
            "",
            f"   {title:<38}| {'httpx clients':^36} | {'raw clients':^36} |",
            f"   {'framework':<10} {label:>11} {'errors':>14} | {head} | {head} |",
        ]
        for framework in settings["frameworks"]:
            cells: list[str] = []
            errors = 0
            for client in CLIENT_KINDS:
                stats = summary[framework][client][endpoint]
                errors += stats["errors"]
                rate = stats["events_per_s" if endpoint == "ingest" else "requests_per_s"]
                cells.append(
                    f"{rate:>10,.0f} {stats['p50_ms']:>7.2f} {stats['p99_ms']:>7.2f} "
                    f"{_pct(stats['server_cpu_pct']):>4} {_pct(stats['client_cpu_pct']):>4}"
                )
            cost = summary[framework]["raw"][endpoint]["min_server_cpu_ms_per_request"]
            lines.append(
                f"   {framework:<10} {_num(cost, scale, '.3f' if scale == 1 else '.0f'):>11} "
                f"{errors:>14} | {cells[0]} | {cells[1]} |"
            )
    lines.append(
        "   srv ms|µs/req: server CPU per request under the raw load, lowest over the rounds "
        f"(msgspec decode alone: {report['decode_ms_per_batch']:.3f} ms a batch)"
    )
    return lines


def render_table(report: dict[str, Any]) -> str:
    lines = [
        "",
        f"Tally stack choice, {report['date']}: Python {report['python']}, "
        f"{report['cpu_count']} CPUs, load average {report['load_average']['start']} at start, "
        f"{report['load_average']['end']} at end",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        "",
        *render_decode(report),
    ]
    if report["framework_summary"]:
        lines += ["", *render_frameworks(report)]
    return "\n".join(lines)


def run_all(args: argparse.Namespace) -> int:
    good, bad = make_bodies()
    events = make_events()
    report: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": {"start": _loadavg()},
        "versions": library_versions(),
        "payload": {
            "events": BATCH_SIZE,
            "mix": MIX,
            "body_bytes": len(good),
            "mean_event_bytes": (len(good) - 2) / BATCH_SIZE,
            "min_event_bytes": min(len(encode([e])) - 2 for e in events),
            "max_event_bytes": max(len(encode([e])) - 2 for e in events),
            "bad_item": f"index {BAD_INDEX}: a completion with lines_accepted = -1",
        },
        "settings": {
            "repeats": args.repeats,
            "min_time_per_repeat_s": args.min_time,
            "gc": "enabled (as in a server)",
            "frameworks": args.frameworks,
            "rounds": args.rounds,
            "clients": args.clients,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "health_duration_s": args.health_duration,
            "server": "uvicorn loop=uvloop http=httptools workers=1 access_log=False",
            "load": "a separate process on uvloop; httpx: one AsyncClient per client with one "
            "connection; raw: one asyncio stream per client, pre-built request",
        },
        "decode": [],
        "framework_runs": [],
        "framework_summary": {},
    }
    print("Checking that every decoder has the semantics compared ...", flush=True)
    verify_decoders(good, bad)
    print("1) Decode + validate", flush=True)
    gc.collect()
    report["decode"] = run_decode_bench(good, bad, args.repeats, args.min_time)
    report["decode_ms_per_batch"] = 1e3 * next(
        r["seconds_per_batch"]
        for r in report["decode"]
        if r["variant"] == MSGSPEC_ITEMS and r["batch"] == "all valid"
    )
    started: list[subprocess.Popen[bytes]] = []
    try:
        if args.frameworks:
            print("2) Framework overhead", flush=True)
            report["framework_runs"] = run_framework_bench(args, started)
            report["framework_summary"] = summarize(report["framework_runs"])
    finally:
        for process in started:
            stop(process)
    report["load_average"]["end"] = _loadavg()
    print(render_table(report))
    output = args.output or RESULTS_DIR / f"stack-choice-{report['date']}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nWrote {output}")
    return 0


def _loadavg() -> str:
    try:
        return "/".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--repeats", type=int, default=7, help="decode: timed repeats")
    parser.add_argument("--min-time", type=float, default=0.25, help="decode: s per repeat")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the frameworks")
    parser.add_argument("--warmup", type=float, default=1.0, help="s of load before timing")
    parser.add_argument("--duration", type=float, default=4.0, help="s of POST /events a round")
    parser.add_argument("--health-duration", type=float, default=2.0, help="s of GET /healthz")
    parser.add_argument(
        "--frameworks",
        nargs="*",
        choices=FRAMEWORKS,
        default=list(FRAMEWORKS),
        help="frameworks to serve (none: decode only)",
    )
    parser.add_argument("--output", type=Path, help="JSON path (default bench/results/...)")
    # Internal: the script re-runs itself as the server and as the load generator.
    parser.add_argument("--role", choices=("all", "serve", "load"), default="all", help="internal")
    parser.add_argument("--framework", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=CLIENT_KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.min_time, args.rounds = 3, 0.05, 1
        args.warmup, args.duration, args.health_duration = 0.5, 1.5, 1.0
    return args


def main() -> int:
    args = parse_args()
    if args.role == "serve":
        serve(args.framework, args.port)
        return 0
    if args.role == "load":
        import uvloop

        print(json.dumps(uvloop.run(run_load(args))))
        return 0

    def _terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop servers

    signal.signal(signal.SIGTERM, _terminate)
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
