"""The wire shapes the client decodes answers into: msgspec structs whose field names are exactly
those of the wire (``rename`` maps the vendors' camelCase), kept apart from the server's code so
that a client and a server of different versions still understand each other (unknown keys are
ignored, so a newer server's extra field does not break an older client)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

import msgspec

T = TypeVar("T")

# -- Tally's own API -------------------------------------------------------------------------


class Rejection(msgspec.Struct, frozen=True):
    """One event the server (or the client, before sending) refused: ``index`` into the
    caller's iterable, the event's ``id`` (``None`` when it had none) and the reason."""

    index: int
    id: str | None
    error: str


class IngestAnswer(msgspec.Struct):
    """The answer of one ``POST /api/v1/orgs/{org}/events``."""

    accepted: int
    duplicates: int
    rejected: list[Rejection]


class Organization(msgspec.Struct):
    id: str
    name: str
    domain: str
    timezone: str


class Department(msgspec.Struct):
    id: str
    name: str
    parent: str | None = None


class MemberVersion(msgspec.Struct):
    effective_at: str | None
    developer: bool
    departments: list[str]


class Member(msgspec.Struct):
    id: str
    name: str
    email: str
    developer: bool
    departments: list[str]
    created_at: str | None
    deleted_at: str | None = None
    versions: list[MemberVersion] = msgspec.field(default_factory=list)


class WorkspaceMembership(msgspec.Struct):
    member: str
    since: str | None
    until: str | None = None


class Workspace(msgspec.Struct):
    id: str
    name: str
    created_at: str | None
    deleted_at: str | None = None
    members: list[WorkspaceMembership] = msgspec.field(default_factory=list)


class App(msgspec.Struct):
    id: str
    name: str
    creator: str
    created_at: str | None
    deleted_at: str | None = None


class Event(msgspec.Struct, omit_defaults=True):
    """A stored event as ``GET /api/v1/orgs/{org}/events`` lists it (the sent shape; the
    type-specific fields are ``None`` where the type has none)."""

    id: str
    time: str
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


class EventPage(msgspec.Struct):
    events: list[Event]
    next_cursor: str | None


# -- the AI assistant's department usage and sibling calls (camelCase on the wire) ----------


class ChattingEntry(msgspec.Struct, rename="camel"):
    active_developer: int
    chat_turns: int
    chat_turns_accepted: int
    chat_type: str
    ide: str


class CodingEntry(msgspec.Struct, rename="camel"):
    accept_assistant_newline_count: int
    active_developer: int
    language: str
    lines_accepted: int
    lines_changed: int


class CompletionEntry(msgspec.Struct, rename="camel"):
    active_developer: int
    count_accepted: int
    count_suggested: int
    ide: str
    language: str
    lines_accepted: int
    lines_suggested: int


class Breakdown(msgspec.Struct):
    chatting: list[ChattingEntry]
    coding: list[CodingEntry]
    completion: list[CompletionEntry]


class DepartmentUsageRow(msgspec.Struct, rename="camel"):
    """One day of ``GET /oapi/v1/lingma/organizations/{org}/departmentUsage``."""

    active_developer: int
    active_developer_chat: int
    active_developer_completion: int
    breakdown: Breakdown
    date: int
    department_id: str
    total_chat_turns: int
    total_chat_turns_accepted: int
    total_count_accepted_completion: int
    total_count_suggested_completion: int
    total_lines_accepted: int
    total_lines_accepted_chat: int
    total_lines_accepted_completion: int
    total_lines_changed: int
    total_lines_suggested_completion: int


class MemberChattingEntry(msgspec.Struct, rename="camel"):
    chat_turns: int
    chat_turns_accepted: int
    chat_type: str
    ide: str


class MemberCodingEntry(msgspec.Struct, rename="camel"):
    accept_assistant_newline_count: int
    language: str
    lines_accepted: int
    lines_changed: int


class MemberCompletionEntry(msgspec.Struct, rename="camel"):
    count_accepted: int
    count_suggested: int
    ide: str
    language: str
    lines_accepted: int
    lines_suggested: int


class MemberBreakdown(msgspec.Struct):
    chatting: list[MemberChattingEntry]
    coding: list[MemberCodingEntry]
    completion: list[MemberCompletionEntry]


class DeveloperUsageRow(msgspec.Struct, rename="camel"):
    """One (member, day) of ``GET /oapi/v1/lingma/organizations/{org}/developerUsage``."""

    breakdown: MemberBreakdown
    date: int
    status_active: bool
    status_active_chat: bool
    status_active_completion: bool
    status_active_lasted_time: int
    total_chat_turns: int
    total_lines_accepted: int
    total_lines_changed: int
    user_id: str


class MemberItem(msgspec.Struct, rename="camel"):
    """One member of ``GET /oapi/v1/platform/organizations/{org}/members``."""

    dept_ids: list[str]
    id: str
    joined: str
    name: str
    email: str
    organization_id: str
    role_ids: list[str]
    status: str
    user_id: str
    visited: str | None = None


class DepartmentItem(msgspec.Struct, rename="camel"):
    """One department of ``GET /oapi/v1/platform/organizations/{org}/departments``."""

    has_sub: bool
    id: str
    name: str
    organization_id: str
    parent_id: str | None = None
    creator_id: str | None = None


# -- environment statistics ----------------------------------------------------------------


class DayCount(msgspec.Struct):
    year: int
    month: int
    count: int
    day: int


class WeekCount(msgspec.Struct):
    year: int
    count: int
    week: int


class MonthCount(msgspec.Struct):
    year: int
    month: int
    count: int


class DailyActive(msgspec.Struct):
    per_day: list[DayCount]
    per_week: list[WeekCount]
    per_month: list[MonthCount]


class UserStats(msgspec.Struct):
    total_users: list[DayCount]
    monthly_active_users: list[MonthCount]
    daily_active_users: DailyActive


class DeveloperStats(msgspec.Struct):
    total_developers: list[DayCount]
    monthly_active_developers: list[MonthCount]
    daily_active_developers: DailyActive


class WorkspaceStats(msgspec.Struct):
    """Rows keyed ``year``/``month``(/``day``) plus one key per workspace id."""

    total_users: list[dict[str, int]]
    monthly_active_users: list[dict[str, int]]
    daily_active_users: dict[str, list[dict[str, int]]]


class Statistics(msgspec.Struct):
    """``GET /api/statistics/``: exactly one of the three is set, as ``stats_type`` asked."""

    users: UserStats | None = None
    developers: DeveloperStats | None = None
    workspaces: WorkspaceStats | None = None


# -- app resource usage --------------------------------------------------------------------


class AppMetrics(msgspec.Struct):
    app: int
    form_coop: int
    form_workflow: int
    dash: int
    etl: int
    aggregate: int
    public_link: int
    data_trigger: int
    automation: int
    bpa: int
    data: int


class AppUsageCreator(msgspec.Struct):
    member_id: str
    name: str


class AppUsageItem(msgspec.Struct):
    app_id: str
    app_name: str
    creator: AppUsageCreator
    created_at: str
    last_edit_at: str | None
    last_visit_at: str | None
    metrics: AppMetrics


class AppUsageStats(msgspec.Struct):
    """``POST /api/v1/app/usage_stats``: one page of one day."""

    date: str
    has_next: bool
    items: list[AppUsageItem]


# -- what the client itself builds ---------------------------------------------------------


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a paged vendor list, with its ``x-*`` headers read as integers
    (``next_page`` is ``None`` where the header is empty: the page was empty)."""

    rows: list[T]
    page: int
    per_page: int
    total: int
    total_pages: int
    next_page: int | None
    request_id: str


@dataclass
class SendSummary:
    """What :meth:`TallyClient.send_events` did: events stored now (``accepted``), already
    stored before (``duplicates``: also those a lost answer of a retried batch had stored),
    and every rejection with its index into the caller's iterable."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    batches: int = 0
    #: Requests sent again after a connection error, a 429 or a 5xx.
    retries: int = 0

    @property
    def sent(self) -> int:
        """Events the server answered for (stored, duplicate or rejected by it)."""
        return self.accepted + self.duplicates + len(self.rejected)
