"""What the sync and the async client share: each call written once, as a generator that
yields what to do (send this request, sleep this long) and receives what happened, so that the
retry policy, the batching of events and the parsing of answers exist in one copy only.

A driver (:class:`tally.client.sync.TallyClient`, :class:`tally.client.aio.AsyncTallyClient`)
runs a call: it sends each :class:`Send` with its ``httpx`` client and answers the response (or
the ``httpx.TransportError`` it raised), and sleeps each :class:`Sleep`.
"""

from __future__ import annotations

import email.utils
import importlib.util
import random
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from tally.client.shapes import (
    App,
    AppUsageStats,
    Department,
    DepartmentItem,
    DepartmentUsageRow,
    DeveloperUsageRow,
    EventPage,
    IngestAnswer,
    Member,
    MemberItem,
    Organization,
    Page,
    Rejection,
    SendSummary,
    Statistics,
    Workspace,
)

T = TypeVar("T")
Auth = Literal["bearer", "yunxiao"]
StatsType = Literal["users", "developers", "workspaces"]

#: Below the server's default 16 MiB events body limit, with room for a proxy's smaller one.
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024
DEFAULT_BATCH_EVENTS = 5_000


class TallyClientError(Exception):
    """Base of the client's errors."""


class TallyAPIError(TallyClientError):
    """The server answered with an error the client does not retry (4xx but 429), or a
    retryable one after the retries ran out. ``body`` is the decoded error body (each API
    family has its vendor's shape), ``request_id`` the ``x-request-id`` header when sent."""

    def __init__(self, status: int, body: Any, request_id: str | None) -> None:
        self.status = status
        self.body = body
        self.request_id = request_id
        super().__init__(f"HTTP {status}: {body!r}")


class RetriesExhausted(TallyClientError):
    """A request kept failing with connection errors, 429 or 5xx past the retry policy's
    attempts or time. For :meth:`send_events`, ``summary`` holds what was done until then
    (the failed batch may or may not be stored: sending it again is safe)."""

    def __init__(self, message: str, summary: SendSummary | None = None) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt ``n`` (from 1) waits a random time in
    ``[0, min(max_delay, base_delay * 2**(n-1))]``, and at least what ``Retry-After`` says.
    A request is given up after ``max_attempts`` sends or ``max_seconds`` since its first."""

    max_attempts: int = 10
    max_seconds: float = 120.0
    base_delay: float = 0.2
    max_delay: float = 10.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        wait = rng.uniform(0, ceiling)
        return max(wait, retry_after or 0.0)


#: The policy of a call that must not be sent twice (creating a token).
ONCE = RetryPolicy(max_attempts=1)


#: What a request is retried on (besides a connection error): too many requests, any 5xx.
def retryable(status: int) -> bool:
    return status == 429 or status >= 500


@dataclass(frozen=True)
class Send:
    """Send this request."""

    method: str
    path: str
    auth: Auth = "bearer"
    params: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = Send | Sleep
Outcome = httpx.Response | httpx.TransportError
#: A call: yields steps, receives each :class:`Send`'s outcome (``None`` after a sleep).
Call = Generator[Step, Outcome | None, T]


def run_sync(call: Call[T], send: Any, sleep: Any) -> T:
    """Drive ``call`` with blocking ``send(step) -> Outcome`` and ``sleep(seconds)``."""
    try:
        step = next(call)
        while True:
            if isinstance(step, Sleep):
                sleep(step.seconds)
                step = call.send(None)
            else:
                step = call.send(send(step))
    except StopIteration as done:
        result: T = done.value
        return result


# -- requests and answers --------------------------------------------------------------------


def segment(value: str) -> str:
    """One path segment, percent-encoded (ids may hold any character but control ones)."""
    return quote(value, safe="")


def encode(body: Any) -> bytes:
    return msgspec.json.encode(body)


def request_with_retries(
    step: Send, policy: RetryPolicy, rng: random.Random
) -> Generator[Step, Outcome | None, tuple[httpx.Response, int]]:
    """Send ``step`` until it is answered with something not retryable; answers the response
    and how many times it was sent again. Raises :class:`RetriesExhausted`."""
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        outcome = yield step
        retry_after: float | None = None
        if isinstance(outcome, httpx.Response):
            if not retryable(outcome.status_code):
                return outcome, attempt - 1
            retry_after = parse_retry_after(outcome.headers.get("retry-after"))
            problem = f"HTTP {outcome.status_code}"
        else:
            problem = f"{type(outcome).__name__}: {outcome}"
        elapsed = time.monotonic() - started
        wait = policy.delay(attempt, retry_after, rng)
        if attempt >= policy.max_attempts or elapsed + wait > policy.max_seconds:
            raise RetriesExhausted(
                f"{step.method} {step.path} failed {attempt} times in {elapsed:.1f} s;"
                f" last: {problem}"
            )
        yield Sleep(wait)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def check(response: httpx.Response) -> httpx.Response:
    """``response`` when it is a success, else a :class:`TallyAPIError`."""
    if response.is_success:
        return response
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    raise TallyAPIError(response.status_code, body, response.headers.get("x-request-id"))


def decode(response: httpx.Response, kind: type[T]) -> T:
    return msgspec.json.decode(check(response).content, type=kind)


def call_json(step: Send, kind: type[T], policy: RetryPolicy, rng: random.Random) -> Call[T]:
    response, _ = yield from request_with_retries(step, policy, rng)
    return decode(response, kind)


def page_of(response: httpx.Response, kind: type[T]) -> Page[T]:
    """A vendor page: the rows and the seven ``x-*`` headers."""
    rows = msgspec.json.decode(check(response).content, type=list[kind])  # type: ignore[valid-type]
    headers = response.headers

    def number(name: str, default: int = 0) -> int:
        raw = headers.get(name, "")
        return int(raw) if raw.strip().isdigit() else default

    next_raw = headers.get("x-next-page", "")
    return Page(
        rows=rows,
        page=number("x-page", 1),
        per_page=number("x-per-page", len(rows)),
        total=number("x-total"),
        total_pages=number("x-total-pages"),
        next_page=int(next_raw) if next_raw.strip().isdigit() else None,
        request_id=headers.get("x-request-id", ""),
    )


def opened(step: Send, policy: RetryPolicy, rng: random.Random) -> Call[httpx.Response]:
    """The response of ``step`` (a success or not), once it is not retryable."""
    response, _ = yield from request_with_retries(step, policy, rng)
    return response


def call_page(step: Send, kind: type[T], policy: RetryPolicy, rng: random.Random) -> Call[Page[T]]:
    response, _ = yield from request_with_retries(step, policy, rng)
    return page_of(response, kind)


def day(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else value


def instant(value: datetime | date | str) -> str:
    """RFC 3339 (a ``datetime`` must be aware: the server refuses times without an offset)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone: the server needs an offset")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def optional_instant(value: datetime | date | str | None) -> str | None:
    return None if value is None else instant(value)


def clean(params: Mapping[str, object | None]) -> dict[str, str]:
    """Query parameters without the ``None`` ones, as strings."""
    return {k: str(v) for k, v in params.items() if v is not None}


# -- the requests of each call ---------------------------------------------------------------

ORGS = "/api/v1/orgs"


def org_path(org: str, *rest: str) -> str:
    return "/".join([ORGS, segment(org), *(segment(part) for part in rest)])


def put(path: str, body: Mapping[str, Any]) -> Send:
    return Send("PUT", path, content=encode(body), content_type="application/json")


def put_org(org: str, name: str, domain: str, timezone: str) -> Send:
    return put(org_path(org), {"name": name, "domain": domain, "timezone": timezone})


def put_department(org: str, department: str, name: str, parent: str | None) -> Send:
    return put(org_path(org, "departments", department), {"name": name, "parent": parent})


def put_member(
    org: str,
    member: str,
    *,
    name: str,
    email: str,
    developer: bool,
    departments: Sequence[str],
    created_at: datetime | str,
    deleted_at: datetime | str | None,
    effective_at: datetime | str | None,
) -> Send:
    body: dict[str, Any] = {
        "name": name,
        "email": email,
        "developer": developer,
        "departments": list(departments),
        "created_at": instant(created_at),
        "deleted_at": optional_instant(deleted_at),
    }
    if effective_at is not None:
        body["effective_at"] = instant(effective_at)
    return put(org_path(org, "members", member), body)


def put_workspace(
    org: str,
    workspace: str,
    *,
    name: str,
    created_at: datetime | str,
    deleted_at: datetime | str | None,
    members: Iterable[Mapping[str, Any]],
) -> Send:
    body = {
        "name": name,
        "created_at": instant(created_at),
        "deleted_at": optional_instant(deleted_at),
        "members": [
            {
                "member": m["member"],
                "since": instant(m["since"]),
                "until": optional_instant(m.get("until")),
            }
            for m in members
        ],
    }
    return put(org_path(org, "workspaces", workspace), body)


def put_app(
    org: str,
    app: str,
    *,
    name: str,
    creator: str,
    created_at: datetime | str,
    deleted_at: datetime | str | None,
) -> Send:
    body = {
        "name": name,
        "creator": creator,
        "created_at": instant(created_at),
        "deleted_at": optional_instant(deleted_at),
    }
    return put(org_path(org, "apps", app), body)


#: The answer types of the directory PUTs.
PUT_ANSWERS: dict[str, type[Any]] = {
    "org": Organization,
    "department": Department,
    "member": Member,
    "workspace": Workspace,
    "app": App,
}


class TokenAnswer(msgspec.Struct):
    token: str


def create_token(org: str, scopes: Sequence[str]) -> Send:
    return Send(
        "POST",
        org_path(org, "tokens"),
        content=encode({"scopes": list(scopes)}),
        content_type="application/json",
    )


def list_events(
    org: str,
    start: datetime | str | None,
    end: datetime | str | None,
    limit: int,
    cursor: str | None,
) -> Send:
    params = clean(
        {
            "start": optional_instant(start),
            "end": optional_instant(end),
            "limit": limit,
            "cursor": cursor,
        }
    )
    return Send("GET", org_path(org, "events"), params=params)


def event_page(step: Send, policy: RetryPolicy, rng: random.Random) -> Call[EventPage]:
    return (yield from call_json(step, EventPage, policy, rng))


LINGMA = "/oapi/v1/lingma/organizations"
PLATFORM = "/oapi/v1/platform/organizations"


def department_usage(
    org: str, department: str, start: date | str, end: date | str, page: int, per_page: int
) -> Send:
    params = clean(
        {
            "departmentId": department,
            "startTime": day(start),
            "endTime": day(end),
            "page": page,
            "perPage": per_page,
        }
    )
    return Send("GET", f"{LINGMA}/{segment(org)}/departmentUsage", "yunxiao", params)


def developer_usage(
    org: str,
    start: date | str,
    end: date | str,
    user_id: str | None,
    department: str | None,
    page: int,
    per_page: int,
) -> Send:
    params = clean(
        {
            "startTime": day(start),
            "endTime": day(end),
            "userId": user_id,
            "departmentId": department,
            "page": page,
            "perPage": per_page,
        }
    )
    return Send("GET", f"{LINGMA}/{segment(org)}/developerUsage", "yunxiao", params)


def members(org: str, page: int, per_page: int) -> Send:
    params = clean({"page": page, "perPage": per_page})
    return Send("GET", f"{PLATFORM}/{segment(org)}/members", "yunxiao", params)


def departments(org: str, parent: str | None, page: int, per_page: int) -> Send:
    params = clean({"parentId": parent, "page": page, "perPage": per_page})
    return Send("GET", f"{PLATFORM}/{segment(org)}/departments", "yunxiao", params)


def department(org: str, department_id: str) -> Send:
    path = f"{PLATFORM}/{segment(org)}/departments/{segment(department_id)}"
    return Send("GET", path, "yunxiao")


def environment_statistics(
    stats_type: StatsType,
    start: datetime | date | str,
    end: datetime | date | str,
    org_domain: str | None,
) -> Send:
    params = clean(
        {
            "stats_type": stats_type,
            "start": instant(start),
            "end": instant(end),
            "org_domain": org_domain,
        }
    )
    return Send("GET", "/api/statistics/", params=params)


def app_usage_stats(
    day_: date | str | None, app_ids: Sequence[str] | None, skip: int, limit: int
) -> Send:
    body: dict[str, Any] = {"skip": skip, "limit": limit}
    if day_ is not None:
        body["date"] = day(day_)
    if app_ids is not None:
        body["app_ids"] = list(app_ids)
    return Send(
        "POST", "/api/v1/app/usage_stats", content=encode(body), content_type="application/json"
    )


PAGE_KINDS: dict[str, type[Any]] = {
    "department_usage": DepartmentUsageRow,
    "developer_usage": DeveloperUsageRow,
    "members": MemberItem,
    "departments": DepartmentItem,
}
ONE_KINDS: dict[str, type[Any]] = {
    "department": DepartmentItem,
    "environment_statistics": Statistics,
    "app_usage_stats": AppUsageStats,
}


# -- events: batching and sending ----------------------------------------------------------


@dataclass
class Batch:
    """Encoded events ready to send, and each one's index in the caller's iterable."""

    indexes: list[int]
    items: list[bytes]
    ids: list[str]

    def body(self) -> bytes:
        return b"[" + b",".join(self.items) + b"]"

    def split(self) -> tuple[Batch, Batch]:
        half = len(self.items) // 2
        return (
            Batch(self.indexes[:half], self.items[:half], self.ids[:half]),
            Batch(self.indexes[half:], self.items[half:], self.ids[half:]),
        )


def event_id(event: Any) -> str | None:
    """The event's ``id`` when it is a non-empty string (a mapping's key or an attribute)."""
    value = event.get("id") if isinstance(event, Mapping) else getattr(event, "id", None)
    return value if isinstance(value, str) and value else None


def batches(
    events: Iterable[Any], max_events: int, max_bytes: int, summary: SendSummary
) -> Iterator[Batch]:
    """Group ``events`` into batches of at most ``max_events`` events and ``max_bytes`` bytes
    (as a JSON array). An event without an ``id``, that does not encode as JSON, or larger than
    ``max_bytes`` alone is not sent: it goes to ``summary.rejected`` with its index."""
    current = Batch([], [], [])
    size = 2  # the brackets
    for index, event in enumerate(events):
        ident = event_id(event)
        if ident is None:
            summary.rejected.append(
                Rejection(
                    index,
                    None,
                    "the event has no id (a non-empty string): the client sends none without"
                    " one, so that sending again is safe",
                )
            )
            continue
        try:
            encoded = msgspec.json.encode(event)
        except (TypeError, msgspec.EncodeError) as exc:
            summary.rejected.append(Rejection(index, ident, f"cannot encode as JSON: {exc}"))
            continue
        if len(encoded) + 2 > max_bytes:
            summary.rejected.append(
                Rejection(
                    index, ident, f"the event alone is larger than the batch limit ({max_bytes} B)"
                )
            )
            continue
        if current.items and (
            len(current.items) >= max_events or size + 1 + len(encoded) > max_bytes
        ):
            yield current
            current, size = Batch([], [], []), 2
        current.indexes.append(index)
        current.items.append(encoded)
        current.ids.append(ident)
        size += len(encoded) + (1 if len(current.items) > 1 else 0)
    if current.items:
        yield current


def send_events(
    org: str,
    events: Iterable[Any],
    *,
    max_events: int,
    max_bytes: int,
    policy: RetryPolicy,
    rng: random.Random,
) -> Call[SendSummary]:
    """Send ``events`` batch by batch; each batch is sent again, unchanged (same ids: the
    server stores each id once), until it is answered. A 413 splits the batch in two."""
    summary = SendSummary()
    path = org_path(org, "events")
    for first in batches(events, max_events, max_bytes, summary):
        pending = [first]
        while pending:
            batch = pending.pop()
            step = Send("POST", path, content=batch.body(), content_type="application/json")
            try:
                response, retries = yield from request_with_retries(step, policy, rng)
            except RetriesExhausted as exc:
                raise RetriesExhausted(str(exc), summary) from exc
            summary.retries += retries
            if response.status_code == 413 and len(batch.items) > 1:
                low, high = batch.split()
                pending.extend([high, low])  # low first
                continue
            answer = decode(response, IngestAnswer)
            summary.batches += 1
            summary.accepted += answer.accepted
            summary.duplicates += answer.duplicates
            for rejection in answer.rejected:
                inside = rejection.index
                known = 0 <= inside < len(batch.indexes)
                summary.rejected.append(
                    Rejection(
                        batch.indexes[inside] if known else -1,
                        rejection.id
                        if rejection.id is not None or not known
                        else batch.ids[inside],
                        rejection.error,
                    )
                )
    summary.rejected.sort(key=lambda r: r.index)
    return summary


# -- export ----------------------------------------------------------------------------------

ExportFormat = Literal["parquet", "csv"]


def export(org: str, dataset: str, start: date | str, end: date | str, fmt: ExportFormat) -> Send:
    """The export of ``dataset`` over the org days ``start`` .. ``end`` (inclusive)."""
    params = {"start": org_day(start), "end": org_day(end), "format": fmt}
    return Send("GET", org_path(org, "export", dataset), params=params)


def org_day(value: date | str) -> str:
    """An org day as ``YYYY-MM-DD``; a datetime is refused (which zone's day would it be?)."""
    if isinstance(value, datetime):
        raise TypeError("export windows are org days: pass a date or 'YYYY-MM-DD', not a datetime")
    return value.isoformat() if isinstance(value, date) else value


def export_file_name(response: httpx.Response, dataset: str, fmt: ExportFormat) -> str:
    """The file name ``Content-Disposition`` suggests (only its last path part), else
    ``<dataset>.<format>``."""
    disposition = str(response.headers.get("content-disposition", ""))
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value.strip('"'):
            return value.strip('"').replace("\\", "/").rsplit("/", 1)[-1]
    return f"{dataset}.{fmt}"


def headers_for(step: Send, token: str) -> dict[str, str]:
    headers = (
        {"x-yunxiao-token": token}
        if step.auth == "yunxiao"
        else {"Authorization": f"Bearer {token}"}
    )
    if step.content_type:
        headers["Content-Type"] = step.content_type
    return headers


def read_table(data: bytes, fmt: ExportFormat, pandas: bool) -> Any:
    """An export's body as a pyarrow table, or a pandas DataFrame."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is a dependency of tally
        raise ImportError("export(to='arrow'|'pandas') needs pyarrow: pip install pyarrow") from exc
    source = pa.BufferReader(data)
    table = pq.read_table(source) if fmt == "parquet" else pa_csv.read_csv(source)
    if not pandas:
        return table
    if importlib.util.find_spec("pandas") is None:
        raise ImportError("export(to='pandas') needs pandas: pip install pandas")
    return table.to_pandas()
