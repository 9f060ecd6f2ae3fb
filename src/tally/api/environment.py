"""The environment statistics API (``GET /api/statistics/``) in its vendor's shape, with
DRF-style errors: field lists for validation, ``{"detail": ...}`` for everything else."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from itertools import chain
from typing import Any, ClassVar, cast

import msgspec
from starlette.responses import Response

from tally.api.base import Call, Facade, JSONResponse, Operation, Param
from tally.engine.environment_stats import (
    STATS_TYPES,
    MemberStats,
    StatsQuery,
    StatsType,
    WorkspaceStats,
    environment_statistics,
)
from tally.errors import BadRequest, Forbidden, NotFound, TallyError, Unauthorized
from tally.model.directory import Directory
from tally.timeutil import DATE_OR_TIME_PATTERN, parse_date_or_time
from tally.tokens import TokenRecord

PATH = "/api/statistics/"
REQUIRED = "This field is required."
BLANK = "This field may not be blank."
NON_FIELD = "non_field_errors"


# -- the wire shapes (key order as the vendor page draws them) -----------------------------


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


class WorkspaceUsage(msgspec.Struct):
    #: ``[{"year", "month", "day", <workspace id>: <count>, ...}]``
    total_users: list[dict[str, int]]
    #: ``[{"year", "month", <workspace id>: <count>, ...}]``
    monthly_active_users: list[dict[str, int]]
    #: ``{"per_month": [{"year", "month", <workspace id>: <count>, ...}]}``
    daily_active_users: dict[str, list[dict[str, int]]]


class Statistics(msgspec.Struct, omit_defaults=True):
    """Exactly one of the three, as ``stats_type`` asks."""

    users: UserStats | None = None
    developers: DeveloperStats | None = None
    workspaces: WorkspaceUsage | None = None


#: ``start`` / ``end``: a date or a date-time (white space around it is ignored).
MOMENT = {"type": "string", "pattern": r"^\s*" + DATE_OR_TIME_PATTERN[1:-1] + r"\s*$"}


class EnvironmentAPI(Facade):
    name = "environment"
    tag = "Environment statistics"
    #: DRF's shapes: field lists for a validation error, ``detail`` for the others.
    error_schema: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {
                "type": "object",
                "required": ["detail"],
                "properties": {"detail": {"type": "string"}},
            },
            {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        ]
    }

    # -- errors ----------------------------------------------------------------------------
    def render_error(self, error: TallyError, call: Call | None, request_id: str) -> Response:
        if isinstance(error, BadRequest):
            return JSONResponse(_field_lists(error), status_code=error.status)
        response = JSONResponse({"detail": error.detail}, status_code=error.status)
        if isinstance(error, Unauthorized):
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    # -- the one operation -----------------------------------------------------------------
    def statistics(self, call: Call) -> Response:
        token = self.tally.access.authenticate(call.bearer())
        query, domain = _parse(call)
        result = environment_statistics(
            self.tally.event_store,
            self._scope(token, domain),
            query,
            max_days=self.tally.settings.environment_max_days,
        )
        return JSONResponse(_shape(query.stats_type, result))

    def _scope(self, token: TokenRecord, domain: str | None) -> list[Directory]:
        """The organizations the answer covers, after checking the token may see them."""
        directories = self.tally.directory
        if domain is None:
            if token.org is not None:
                raise Forbidden(
                    "without org_domain the figures cover the whole environment:"
                    " that needs the environment admin's token"
                )
            return [directories.require(org.id) for org in directories.orgs()]
        org = directories.org_by_domain(domain)
        if token.org is not None and (org is None or org.id != token.org):
            raise Forbidden("this token does not grant access to that organization")
        if org is None:
            raise NotFound(f'no organization has the domain "{domain}"')
        self.tally.access.authorize(token, org.id, "read", org_exists=True)
        return [directories.require(org.id)]

    @classmethod
    def demo_curl(
        cls, *, base: str, org: str, domain: str, department: str, token: str, today: date
    ) -> str:
        start = today - timedelta(days=13)
        return (
            f"curl -s -H 'Authorization: Bearer {token}'"
            f" '{base}{PATH}?stats_type=users&start={start}&end={today}&org_domain={domain}'"
        )

    def operations(self) -> list[Operation]:
        return [
            Operation(
                "GET",
                PATH,
                self.statistics,
                "Get environment activity data (users, developers or workspaces)",
                params=[
                    Param(
                        "stats_type",
                        required=True,
                        description="users, developers or workspaces",
                        schema={"type": "string", "enum": list(STATS_TYPES)},
                    ),
                    Param(
                        "start",
                        required=True,
                        description="First day: RFC 3339 date-time or date (no offset: the"
                        " organization's time zone)",
                        schema=MOMENT,
                    ),
                    Param(
                        "end",
                        required=True,
                        description="Last day (inclusive), as start",
                        schema=MOMENT,
                    ),
                    Param(
                        "org_domain",
                        description="One organization; without it the whole environment"
                        " (environment admin's token)",
                        schema={"type": "string", "minLength": 1},
                    ),
                ],
                response=Statistics,
            )
        ]


# -- parsing -------------------------------------------------------------------------------


def _parse(call: Call) -> tuple[StatsQuery, str | None]:
    """The query and the domain (``None``: the whole environment), or one ``BadRequest``
    listing every field at fault, as a DRF serializer does."""
    problems: list[dict[str, str]] = []

    def fail(field: str, message: str) -> None:
        problems.append({"field": field, "message": message})

    stats_type = call.query("stats_type")
    if stats_type is None:
        fail("stats_type", REQUIRED)
    elif stats_type not in STATS_TYPES:
        fail("stats_type", f'"{stats_type}" is not a valid choice.')
    start, end = _moment(call, "start", fail), _moment(call, "end", fail)
    domain = call.query("org_domain")
    if domain is not None:
        domain = domain.strip()
        if not domain:
            fail("org_domain", BLANK)
    if problems or start is None or end is None:
        raise BadRequest(problems[0]["message"], errors=problems)
    query = StatsQuery(cast(StatsType, stats_type), start, end, domain is None)
    return query, domain


def _moment(call: Call, name: str, fail: Callable[[str, str], None]) -> datetime | None:
    raw = call.query(name)
    if raw is None:
        fail(name, REQUIRED)
        return None
    if not raw.strip():
        fail(name, BLANK)
        return None
    try:
        return parse_date_or_time(raw.strip())
    except ValueError as exc:
        fail(name, str(exc))
        return None


def _field_lists(error: TallyError) -> dict[str, list[str]]:
    """DRF's validation body: ``{"<field>": ["message"], "non_field_errors": [...]}``."""
    problems = error.errors or [{"field": error.field, "message": error.detail}]
    body: dict[str, list[str]] = {}
    for problem in problems:
        body.setdefault(problem.get("field") or NON_FIELD, []).append(str(problem["message"]))
    return body


# -- shaping -------------------------------------------------------------------------------


def _shape(stats_type: StatsType, result: MemberStats | WorkspaceStats) -> Statistics:
    if isinstance(result, WorkspaceStats):
        return Statistics(workspaces=_workspaces(result))
    total = [DayCount(d.year, d.month, n, d.day) for d, n in result.total]
    monthly = [MonthCount(m.year, m.month, n) for m, n in result.monthly_active]
    daily = DailyActive(
        per_day=[DayCount(d.year, d.month, n, d.day) for d, n in result.per_day],
        per_week=[WeekCount(w.year, n, w.week) for w, n in result.per_week],
        per_month=[MonthCount(m.year, m.month, n) for m, n in result.per_month],
    )
    if stats_type == "developers":
        return Statistics(developers=DeveloperStats(total, monthly, daily))
    return Statistics(users=UserStats(total, monthly, daily))


def _workspaces(result: WorkspaceStats) -> WorkspaceUsage:
    keys = result.keys
    return WorkspaceUsage(
        total_users=[
            _row(("year", "month", "day"), (d.year, d.month, d.day), keys, figures)
            for d, figures in result.total
        ],
        monthly_active_users=[
            _row(("year", "month"), (m.year, m.month), keys, figures)
            for m, figures in result.monthly_active
        ],
        daily_active_users={
            "per_month": [
                _row(("year", "month"), (m.year, m.month), keys, figures)
                for m, figures in result.daily_active_per_month
            ]
        },
    )


def _row(
    date_keys: tuple[str, ...], when: tuple[int, ...], keys: list[str], figures: Sequence[int]
) -> dict[str, int]:
    """``{<date keys>, <workspace key>: figure, ...}``, built in one go."""
    return dict(zip(chain(date_keys, keys), chain(when, figures), strict=True))
