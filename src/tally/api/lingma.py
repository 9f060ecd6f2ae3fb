"""The AI coding assistant's usage APIs (``/oapi/v1/lingma/...``: per department, per member),
byte-compatible with the vendor page: ``x-yunxiao-token``, ``x-*`` paging headers, ``errorCode``
bodies. :class:`YunxiaoFacade` and the paging helpers are shared with the platform listings."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any, ClassVar

import msgspec
from starlette.responses import Response

from tally.api.base import Call, Facade, JSONResponse, Operation, Param
from tally.engine.department_usage import (
    DepartmentDay,
    DepartmentUsageQuery,
    department_usage,
)
from tally.engine.member_usage import MemberUsageDay, MemberUsageQuery, member_usage
from tally.errors import BadRequest, TallyError
from tally.timeutil import DATE_PATTERN, parse_date, to_micros

PATH = "/oapi/v1/lingma/organizations/{organizationId}/departmentUsage"
DEVELOPER_PATH = "/oapi/v1/lingma/organizations/{organizationId}/developerUsage"
ERROR_CODES = frozenset(
    {
        "BadRequest",
        "Unauthorized",
        "InvalidTokenError",
        "Forbidden",
        "NotFound",
        "TooManyRequests",
        "InternalServerError",
    }
)
PER_PAGE_MAX = 100
_DIGITS = re.compile(r"^[0-9]+$")


# The wire shapes: fields in the vendor example's (alphabetical) order, camelCase on the wire.
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


# Per-member rows: the same breakdowns, each entry without ``activeDeveloper`` (one member).
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


#: A day parameter: exactly ``YYYY-MM-DD``.
DAY = {"type": "string", "pattern": DATE_PATTERN}

#: ``startTime`` and ``endTime``: the window, in org days.
WINDOW_PARAMS = [
    Param("startTime", required=True, description="First day, YYYY-MM-DD", schema=DAY),
    Param("endTime", required=True, description="Last day, YYYY-MM-DD", schema=DAY),
]

#: The documented paging parameters of every list of the family.
PAGING_PARAMS = [
    Param(
        "page",
        description="Page number (default 1)",
        schema={"type": "integer", "minimum": 1, "default": 1},
    ),
    Param(
        "perPage",
        description="Rows per page (default 100)",
        schema={"type": "integer", "minimum": 1, "maximum": 100, "default": 100},
    ),
]


class YunxiaoFacade(Facade):
    """What the calls sharing the ``x-yunxiao-token`` have in common: the token rules and the
    ``errorCode`` error shape."""

    error_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["errorCode", "errorMessage", "requestId"],
        "properties": {
            "errorCode": {"type": "string", "enum": sorted(ERROR_CODES)},
            "errorMessage": {"type": "string"},
            "requestId": {"type": "string"},
        },
    }

    def render_error(self, error: TallyError, call: Call | None, request_id: str) -> Response:
        code = error.code if error.code in ERROR_CODES else "InternalServerError"
        body = {"errorCode": code, "errorMessage": error.detail, "requestId": request_id}
        return JSONResponse(body, status_code=error.status)

    def authorized_org(self, call: Call) -> str:
        """The path's organization, once the token may read it (before any parameter is
        checked): another org's token 403 whether or not the org exists; the environment
        admin's token and an unknown org 404 (when the directory is asked for it)."""
        org_id = call.path("organizationId")
        token = self.tally.access.authenticate(call.header("x-yunxiao-token"))
        exists = token.org is not None or self.tally.directory.get(org_id) is not None
        self.tally.access.authorize(token, org_id, "read", org_exists=exists)
        return org_id


class LingmaAPI(YunxiaoFacade):
    name = "lingma"
    tag = "Lingma"

    def department_usage(self, call: Call) -> Response:
        org_id = self.authorized_org(call)
        query = self._query(call)
        page = department_usage(self.tally.event_store, self.tally.directory.require(org_id), query)
        rows = [_row(day, query.department_id) for day in page.days]
        headers = page_headers(query.page, query.per_page, len(rows), page.total, page.total_pages)
        return JSONResponse(rows, headers=headers)

    def _query(self, call: Call) -> DepartmentUsageQuery:
        department_id = _required(call, "departmentId")
        first, last = self._window(call)
        page, per_page = paging(call)
        return DepartmentUsageQuery(
            department_id=department_id,
            first_day=first,
            last_day=last,
            page=page,
            per_page=per_page,
        )

    def developer_usage(self, call: Call) -> Response:
        org_id = self.authorized_org(call)
        first, last = self._window(call)
        page, per_page = paging(call)
        query = MemberUsageQuery(
            first_day=first,
            last_day=last,
            user_id=call.query("userId") or None,
            department_id=call.query("departmentId") or None,
            page=page,
            per_page=per_page,
        )
        found = member_usage(self.tally.event_store, self.tally.directory.require(org_id), query)
        rows = [_developer_row(day) for day in found.rows]
        headers = page_headers(page, per_page, len(rows), found.total, found.total_pages)
        return JSONResponse(rows, headers=headers)

    def _window(self, call: Call) -> tuple[date, date]:
        """``startTime`` and ``endTime``: org days, in order, at most the configured span."""
        first, last = _date(call, "startTime"), _date(call, "endTime")
        if last < first:
            raise BadRequest("endTime must not be before startTime", field="endTime")
        max_days = self.tally.settings.lingma_max_days
        if (last - first).days >= max_days:
            raise BadRequest(
                f"the window from startTime to endTime may span at most {max_days} days",
                field="endTime",
            )
        return first, last

    def operations(self) -> list[Operation]:
        return [
            Operation(
                "GET",
                PATH,
                self.department_usage,
                "AI coding assistant usage of a department (and its sub-departments) per day",
                params=[
                    Param("organizationId", "path", True, "Organization id"),
                    Param(
                        "departmentId",
                        required=True,
                        description="Department id",
                        schema={"type": "string", "minLength": 1},
                    ),
                    *WINDOW_PARAMS,
                    *PAGING_PARAMS,
                ],
                response=list[DepartmentUsageRow],
                auth="x-yunxiao-token",
            ),
            Operation(
                "GET",
                DEVELOPER_PATH,
                self.developer_usage,
                "AI coding assistant usage per member and day (of a member, a department, or all)",
                params=[
                    Param("organizationId", "path", True, "Organization id"),
                    *WINDOW_PARAMS,
                    Param("userId", description="Only this member (wins over departmentId)"),
                    Param("departmentId", description="Only this department's subtree"),
                    *PAGING_PARAMS,
                ],
                response=list[DeveloperUsageRow],
                auth="x-yunxiao-token",
            ),
        ]

    @classmethod
    def demo_curl(
        cls, *, base: str, org: str, domain: str, department: str, token: str, today: date
    ) -> str:
        path = PATH.replace("{organizationId}", org)
        week = f"startTime={today - timedelta(days=6)}&endTime={today}"
        query = f"departmentId={department}&{week}"
        return f"curl -si -H 'x-yunxiao-token: {token}' '{base}{path}?{query}&page=1&perPage=100'"


def _required(call: Call, name: str) -> str:
    value = call.query(name)
    if not value:
        raise BadRequest(f"{name} is required", field=name)
    return value


def _date(call: Call, name: str) -> date:
    try:
        return parse_date(_required(call, name))
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}", field=name) from exc


def _integer(call: Call, name: str, default: int, low: int, high: int | None) -> int:
    raw = call.query(name)
    if raw is None:
        return default
    bounds = f"from {low} to {high}" if high is not None else f">= {low}"
    problem = BadRequest(f"{name} must be an integer {bounds}", field=name)
    try:
        value = int(raw) if _DIGITS.match(raw) else None
    except ValueError as exc:  # more digits than Python converts
        raise problem from exc
    if value is None or value < low or (high is not None and value > high):
        raise problem
    return value


def paging(call: Call) -> tuple[int, int]:
    """``page`` (default 1, >= 1) and ``perPage`` (default 100, 1 to 100)."""
    page = _integer(call, "page", 1, 1, None)
    return page, _integer(call, "perPage", PER_PAGE_MAX, 1, PER_PAGE_MAX)


def page_headers(
    page: int, per_page: int, rows: int, total: int, total_pages: int
) -> dict[str, str]:
    """The vendor's paging headers for ``rows`` rows on page ``page`` (``x-request-id`` is
    added for every answer by the base): a next page whenever this one holds rows."""
    return {
        "x-next-page": str(page + 1) if rows else "",
        "x-page": str(page),
        "x-per-page": str(per_page),
        "x-prev-page": str(page - 1),
        "x-total": str(total),
        "x-total-pages": str(total_pages),
    }


def _row(day: DepartmentDay, department_id: str) -> DepartmentUsageRow:
    usage, totals = day.usage, day.totals
    return DepartmentUsageRow(
        active_developer=usage.active_developers,
        active_developer_chat=usage.active_chat,
        active_developer_completion=usage.active_completion,
        breakdown=Breakdown(
            chatting=[
                ChattingEntry(
                    active_developer=c.active_developers,
                    chat_turns=c.turns,
                    chat_turns_accepted=c.turns_accepted,
                    chat_type=c.chat_type,
                    ide=c.ide,
                )
                for c in usage.chatting
            ],
            coding=[
                CodingEntry(
                    accept_assistant_newline_count=c.lines_accepted_chat,
                    active_developer=c.active_developers,
                    language=c.language,
                    lines_accepted=c.lines_accepted,
                    lines_changed=c.lines_changed,
                )
                for c in usage.coding
            ],
            completion=[
                CompletionEntry(
                    active_developer=c.active_developers,
                    count_accepted=c.count_accepted,
                    count_suggested=c.count_suggested,
                    ide=c.ide,
                    language=c.language,
                    lines_accepted=c.lines_accepted,
                    lines_suggested=c.lines_suggested,
                )
                for c in usage.completion
            ],
        ),
        date=to_micros(day.starts_at) // 1000,
        department_id=department_id,
        total_chat_turns=totals.chat_turns,
        total_chat_turns_accepted=totals.chat_turns_accepted,
        total_count_accepted_completion=totals.count_accepted_completion,
        total_count_suggested_completion=totals.count_suggested_completion,
        total_lines_accepted=totals.lines_accepted,
        total_lines_accepted_chat=totals.lines_accepted_chat,
        total_lines_accepted_completion=totals.lines_accepted_completion,
        total_lines_changed=totals.lines_changed,
        total_lines_suggested_completion=totals.lines_suggested_completion,
    )


def _developer_row(row: MemberUsageDay) -> DeveloperUsageRow:
    usage = row.usage
    return DeveloperUsageRow(
        breakdown=MemberBreakdown(
            chatting=[
                MemberChattingEntry(
                    chat_turns=c.turns,
                    chat_turns_accepted=c.turns_accepted,
                    chat_type=c.chat_type,
                    ide=c.ide,
                )
                for c in usage.chatting
            ],
            coding=[
                MemberCodingEntry(
                    accept_assistant_newline_count=c.lines_accepted_chat,
                    language=c.language,
                    lines_accepted=c.lines_accepted,
                    lines_changed=c.lines_changed,
                )
                for c in usage.coding
            ],
            completion=[
                MemberCompletionEntry(
                    count_accepted=c.count_accepted,
                    count_suggested=c.count_suggested,
                    ide=c.ide,
                    language=c.language,
                    lines_accepted=c.lines_accepted,
                    lines_suggested=c.lines_suggested,
                )
                for c in usage.completion
            ],
        ),
        date=to_micros(row.starts_at) // 1000,
        status_active=True,
        status_active_chat=bool(usage.chatting),
        status_active_completion=bool(usage.completion),
        status_active_lasted_time=usage.last_us // 1000,
        total_chat_turns=row.chat_turns,
        total_lines_accepted=row.lines_accepted,
        total_lines_changed=row.lines_changed,
        user_id=usage.member,
    )
