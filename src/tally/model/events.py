"""Events: the wire shapes platforms send (one msgspec Struct per type, tagged by ``type``), the
row Tally stores, and the decoding that turns a body into items with per-item reasons.

Decoding is msgspec's (typed, strict, in C); this module only adds the batch handling (one bad
item never fails the others) and turns msgspec's messages into sentences a person can act on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import msgspec
import pyarrow as pa

#: Ids, references and labels hold no control characters (C0, DEL, C1).
_PRINTABLE = "^[^\x00-\x1f\x7f-\x9f]*$"
EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=_PRINTABLE)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=_PRINTABLE)]
Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=_PRINTABLE)]
Lines = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Count = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
Delta = Annotated[int, msgspec.Meta(ge=-1_000_000_000, le=1_000_000_000)]
Instant = Annotated[datetime, msgspec.Meta(tz=True)]

CHAT_TYPES = frozenset(
    {"CODE_GENERATE_COMMENT", "GENERATE_TESTCASE", "EXPLAIN_CODE", "OPTIMIZE_CODE", "FREE_INPUT"}
)
RESOURCES = (
    "form_coop",
    "form_workflow",
    "dash",
    "etl",
    "aggregate",
    "public_link",
    "data_trigger",
    "automation",
    "bpa",
)
Resource = Literal[
    "form_coop",
    "form_workflow",
    "dash",
    "etl",
    "aggregate",
    "public_link",
    "data_trigger",
    "automation",
    "bpa",
]
Source = Literal["completion", "chat"]


class _Event(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    id: EventId
    time: Instant
    member: Reference


class Completion(_Event, tag="completion"):
    ide: Label
    language: Label
    lines_suggested: Lines
    accepted: bool
    lines_accepted: Lines = 0


class Chat(_Event, tag="chat"):
    ide: Label
    chat_type: Label
    accepted: bool


class Code(_Event, tag="code"):
    language: Label
    source: Source
    lines_accepted: Lines
    lines_changed: Lines


class Activity(_Event, tag="activity"):
    pass


class WorkspaceActivity(_Event, tag="workspace_activity"):
    workspace: Reference


class AppVisit(_Event, tag="app_visit"):
    app: Reference


class AppEdit(_Event, tag="app_edit"):
    app: Reference


class AppResource(_Event, tag="app_resource"):
    app: Reference
    resource: Resource
    delta: Delta


class AppData(_Event, tag="app_data"):
    app: Reference
    records: Count


Event = (
    Completion
    | Chat
    | Code
    | Activity
    | WorkspaceActivity
    | AppVisit
    | AppEdit
    | AppResource
    | AppData
)
EVENT_TYPES: tuple[str, ...] = tuple(
    str(cls.__struct_config__.tag)
    for cls in (
        Completion,
        Chat,
        Code,
        Activity,
        WorkspaceActivity,
        AppVisit,
        AppEdit,
        AppResource,
        AppData,
    )
)


class StoredEvent(msgspec.Struct, kw_only=True):
    """One event as the stores keep it: flat, typed columns, ``None`` where a type has no field."""

    id: str
    ts: int  # epoch microseconds
    day: date  # the org-local calendar day of ``ts``
    type: str
    member: str
    ide: str | None = None
    language: str | None = None
    chat_type: str | None = None
    source: str | None = None
    accepted: bool | None = None
    lines_suggested: int | None = None
    lines_accepted: int | None = None
    lines_changed: int | None = None
    workspace: str | None = None
    app: str | None = None
    resource: str | None = None
    delta: int | None = None
    records: int | None = None


STORED_COLUMNS: tuple[str, ...] = StoredEvent.__struct_fields__
#: The stored layout as Arrow: ``org``, then the columns of :class:`StoredEvent`.
STORED_SCHEMA = pa.schema(
    [
        ("org", pa.string()),
        ("id", pa.string()),
        ("ts", pa.int64()),
        ("day", pa.date32()),
        ("type", pa.string()),
        ("member", pa.string()),
        ("ide", pa.string()),
        ("language", pa.string()),
        ("chat_type", pa.string()),
        ("source", pa.string()),
        ("accepted", pa.bool_()),
        ("lines_suggested", pa.int64()),
        ("lines_accepted", pa.int64()),
        ("lines_changed", pa.int64()),
        ("workspace", pa.string()),
        ("app", pa.string()),
        ("resource", pa.string()),
        ("delta", pa.int64()),
        ("records", pa.int64()),
    ]
)


@dataclass(frozen=True)
class DecodedItem:
    """One item of a batch: its index, and either the event or why it was rejected."""

    index: int
    event: Event | None
    error: str | None = None
    raw_id: str | None = None


_single_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)
_batch_decoder: msgspec.json.Decoder[list[Event]] = msgspec.json.Decoder(list[Event])
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_any_decoder = msgspec.json.Decoder()


#: What decoding untrusted JSON may raise besides a validation error: malformed JSON, bytes
#: that are not UTF-8 inside a string, and nesting deeper than the decoder recurses.
UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def undecodable_reason(exc: BaseException) -> str:
    """Why a JSON text could not be read, in words a client can act on."""
    if isinstance(exc, UnicodeDecodeError):
        return "is not valid UTF-8"
    if isinstance(exc, RecursionError):
        return "is nested too deeply"
    return "is not valid JSON"


def decode_json_array(body: bytes) -> Iterator[DecodedItem]:
    """Items of a JSON array body. Raises ``ValueError`` when the body is not a JSON array."""
    try:  # the fast path: the whole batch is valid
        events = _batch_decoder.decode(body)
    except UNDECODABLE:
        pass
    else:
        for index, event in enumerate(events):
            yield DecodedItem(index, event)
        return
    try:
        raws = _raw_list_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"the body is not a JSON array of events: {exc}") from exc
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"the body {undecodable_reason(exc)}") from exc
    for index, raw in enumerate(raws):
        yield decode_item(index, bytes(raw))


def decode_ndjson(body: bytes) -> Iterator[DecodedItem]:
    """Items of an NDJSON body; blank lines are skipped and ``index`` is the 0-based line."""
    for index, line in enumerate(body.split(b"\n")):
        if line.strip():
            yield decode_item(index, line)


def decode_item(index: int, raw: bytes) -> DecodedItem:
    try:
        return DecodedItem(index, _single_decoder.decode(raw))
    except msgspec.ValidationError as exc:
        return DecodedItem(index, None, explain(str(exc)), _peek_id(raw))
    except UNDECODABLE as exc:
        return DecodedItem(index, None, f"the item {undecodable_reason(exc)}", None)


def decode_mapping(index: int, row: dict[str, Any]) -> DecodedItem:
    """An item given as a mapping (a Parquet row): nulls dropped, then the typed validation."""
    row = {k: v for k, v in row.items() if v is not None}
    if not isinstance(row.get("time", datetime.now(UTC)), datetime):
        return decode_item(index, msgspec.json.encode(row))
    try:
        return DecodedItem(index, msgspec.convert(row, Event))
    except msgspec.ValidationError as exc:
        raw_id = row.get("id")
        return DecodedItem(
            index, None, explain(str(exc)), raw_id if isinstance(raw_id, str) else None
        )


def _peek_id(raw: bytes) -> str | None:
    try:
        value = _any_decoder.decode(raw)
    except UNDECODABLE:
        return None
    if isinstance(value, dict):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return None


_FIELD_RULES = {
    "id": "a non-empty string of at most 200 characters, without control characters",
    "member": "a non-empty string of at most 200 characters, without control characters",
    "workspace": "a non-empty string of at most 200 characters, without control characters",
    "app": "a non-empty string of at most 200 characters, without control characters",
    "ide": "a non-empty string of at most 100 characters, without control characters",
    "language": "a non-empty string of at most 100 characters, without control characters",
    "chat_type": "a non-empty string of at most 100 characters, without control characters",
    "time": "an RFC 3339 date-time with an offset, e.g. 2026-03-01T09:15:02+08:00",
    "lines_suggested": "an integer >= 0",
    "lines_accepted": "an integer >= 0",
    "lines_changed": "an integer >= 0",
    "records": "an integer >= 0",
    "delta": "an integer between -1000000000 and 1000000000",
    "accepted": "a boolean (true or false)",
    "source": "one of: completion, chat",
    "resource": "one of: " + ", ".join(RESOURCES),
    "type": "one of: " + ", ".join(EVENT_TYPES),
}
_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?:\[\d+\])?\.?(?P<path>[^`]*)`)?$")


def explain(message: str) -> str:
    """Turn a msgspec validation message into a sentence about the field at fault."""
    match = _AT.match(message)
    what = match.group("what") if match else message
    path = (match.group("path") if match else "") or ""
    if missing := re.match(r"Object missing required field `(\w+)`", what):
        return f"{missing.group(1)} is required"
    if unknown := re.match(r"Object contains unknown field `([^`]*)`", what):
        return f'unknown field "{unknown.group(1)}" for this event type'
    if what.startswith("Expected `object`"):
        return "each event must be a JSON object"
    if path in _FIELD_RULES:
        return f"{path} must be {_FIELD_RULES[path]}"
    return what
