"""The environment statistics API: hand-worked fixtures, the expected JSON written out.

The main fixture is the org ``acme`` (Asia/Shanghai, UTC+8) over 2025-12-27 .. 2026-01-04: nine
days that cross a month end and an ISO year boundary (2025-12-29 .. 2026-01-04 is ISO week 1
of 2026; 12-27 and 12-28 are week 52 of 2025).

Members (all created 2025-01-01 unless said):
- alice: developer throughout.
- bob: not a developer until 2025-12-30 12:00 (+08:00), a developer from then on.
- carol: created 2025-12-30 09:00, developer.
- dave: developer, deleted 2026-01-02 15:00 (his later events still count as activity).

Workspaces: ws1 (alice; bob until 2025-12-31 10:00), ws2 (created 2025-12-29 10:00; carol from
2025-12-30 09:00, alice from 2026-01-02 08:00), ws3 (deleted 2025-06-01: no key).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tally.engine.environment_stats import OrgWindow
from tally.model.directory import (
    Directory,
    Member,
    MemberVersion,
    Organization,
    Workspace,
    WorkspaceMembership,
)
from tests.conftest import ADMIN, Admin, bearer

URL = "/api/statistics/"
WINDOW = {"start": "2025-12-27", "end": "2026-01-04"}
YEAR_AGO = "2025-01-01T00:00:00+08:00"


def member(name: str, *, developer: bool = True, **extra: Any) -> dict[str, Any]:
    return {"name": name.title(), "developer": developer, "created_at": YEAR_AGO, **extra}


def event(n: int, time: str, who: str, workspace: str | None = None) -> dict[str, Any]:
    if workspace is None:
        return {"id": f"e{n}", "time": time, "type": "activity", "member": who}
    return {
        "id": f"e{n}",
        "time": time,
        "type": "workspace_activity",
        "member": who,
        "workspace": workspace,
    }


def build_acme(admin: Admin) -> str:
    """The main fixture (see the module docstring); returns a read token of acme."""
    admin.org("acme")
    admin.put("acme/members/alice", member("alice"))
    admin.put("acme/members/bob", member("bob", developer=False))
    admin.put(
        "acme/members/bob",
        member("bob", developer=True, effective_at="2025-12-30T12:00:00+08:00"),
    )
    admin.put("acme/members/carol", member("carol", created_at="2025-12-30T09:00:00+08:00"))
    admin.put("acme/members/dave", member("dave", deleted_at="2026-01-02T15:00:00+08:00"))
    admin.put(
        "acme/workspaces/ws1",
        {
            "name": "One",
            "created_at": YEAR_AGO,
            "members": [
                {"member": "alice", "since": YEAR_AGO},
                {"member": "bob", "since": YEAR_AGO, "until": "2025-12-31T10:00:00+08:00"},
            ],
        },
    )
    admin.put(
        "acme/workspaces/ws2",
        {
            "name": "Two",
            "created_at": "2025-12-29T10:00:00+08:00",
            "members": [
                {"member": "carol", "since": "2025-12-30T09:00:00+08:00"},
                {"member": "alice", "since": "2026-01-02T08:00:00+08:00"},
            ],
        },
    )
    admin.put(
        "acme/workspaces/ws3",
        {"name": "Gone", "created_at": YEAR_AGO, "deleted_at": "2025-06-01T00:00:00+08:00"},
    )
    completion = {
        "id": "e1",
        "time": "2025-12-27T10:00:00+08:00",
        "type": "completion",
        "member": "alice",
        "ide": "vscode",
        "language": "python",
        "lines_suggested": 3,
        "accepted": False,
    }
    result = admin.events(
        "acme",
        [
            event(0, "2025-12-26T23:59:59+08:00", "alice"),  # the day before the window
            completion,
            event(2, "2025-12-27T11:00:00+08:00", "dave", "ws1"),
            event(3, "2025-12-28T09:00:00+08:00", "alice", "ws1"),
            event(4, "2025-12-28T09:30:00+08:00", "dave", "ws1"),
            event(5, "2025-12-28T10:00:00+08:00", "bob", "ws1"),  # bob: not a developer yet
            event(6, "2025-12-29T10:00:00+08:00", "alice"),
            event(7, "2025-12-29T16:30:00Z", "bob", "ws1"),  # 12-30 00:30 in Shanghai
            event(8, "2025-12-30T15:00:00+08:00", "alice", "ws2"),
            event(9, "2026-01-01T10:00:00+08:00", "alice", "ws1"),
            event(10, "2026-01-02T09:00:00+08:00", "alice", "ws2"),
            event(11, "2026-01-02T09:30:00+08:00", "dave", "ws1"),
            event(12, "2026-01-03T10:00:00+08:00", "alice"),
            event(13, "2026-01-03T11:00:00+08:00", "bob", "ws1"),  # a developer now
            event(14, "2026-01-03T12:00:00+08:00", "carol", "ws2"),
            event(15, "2026-01-04T10:00:00+08:00", "alice", "ws1"),
            event(16, "2026-01-04T10:30:00+08:00", "bob", "ws1"),
            event(17, "2026-01-04T11:00:00+08:00", "carol", "ws1"),
            event(18, "2026-01-04T12:00:00+08:00", "dave", "ws1"),  # after his deletion
            event(19, "2026-01-05T00:00:00+08:00", "bob"),  # the day after the window
        ],
    )
    assert result == {"accepted": 20, "duplicates": 0, "rejected": []}
    return admin.token("acme", "read")


def stats(client: TestClient, token: str, **params: str) -> Any:
    response = client.get(URL, params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


def rows(counts: list[int], first: int = 27) -> list[dict[str, int]]:
    """Day rows of the acme window from per-day counts (12-27 .. 01-04), written compactly."""
    dates = [(2025, 12, d) for d in range(first, 32)] + [(2026, 1, d) for d in range(1, 5)]
    return [
        {"year": y, "month": m, "count": n, "day": d}
        for (y, m, d), n in zip(dates, counts, strict=True)
    ]


# -- users and developers ------------------------------------------------------------------


def test_users_over_a_month_end_and_an_iso_year_boundary(client: TestClient, admin: Admin) -> None:
    token = build_acme(admin)
    assert stats(client, token, stats_type="users", org_domain="acme.example", **WINDOW) == {
        "users": {
            # carol from 12-30 (created that day); dave until 01-01 (deleted on 01-02)
            "total_users": rows([3, 3, 3, 4, 4, 4, 3, 3, 3]),
            "monthly_active_users": [
                {"year": 2025, "month": 12, "count": 3},  # alice, bob, dave
                {"year": 2026, "month": 1, "count": 4},  # and carol
            ],
            "daily_active_users": {
                "per_day": rows([2, 3, 1, 2, 0, 1, 2, 3, 4]),
                "per_week": [
                    {"year": 2025, "count": 3, "week": 52},  # (2 + 3) / 2 = 2.5 -> 3
                    {"year": 2026, "count": 2, "week": 1},  # 13 / 7 = 1.86 -> 2
                ],
                "per_month": [
                    {"year": 2025, "month": 12, "count": 2},  # 8 / 5 = 1.6 -> 2
                    {"year": 2026, "month": 1, "count": 3},  # 10 / 4 = 2.5 -> 3
                ],
            },
        }
    }


def test_developers_follow_the_flag_in_effect(client: TestClient, admin: Admin) -> None:
    token = build_acme(admin)
    assert stats(client, token, stats_type="developers", org_domain="acme.example", **WINDOW) == {
        "developers": {
            # bob counts from 12-30 (the version in effect at the end of the day)
            "total_developers": rows([2, 2, 2, 4, 4, 4, 3, 3, 3]),
            "monthly_active_developers": [
                {"year": 2025, "month": 12, "count": 2},  # alice, dave (bob was no developer)
                {"year": 2026, "month": 1, "count": 4},
            ],
            "daily_active_developers": {
                # only workspace_activity by a developer at that time: not bob's on 12-28, 12-30
                "per_day": rows([1, 2, 0, 1, 0, 1, 2, 2, 4]),
                "per_week": [
                    {"year": 2025, "count": 2, "week": 52},  # 3 / 2 = 1.5 -> 2
                    {"year": 2026, "count": 1, "week": 1},  # 10 / 7 = 1.43 -> 1
                ],
                "per_month": [
                    {"year": 2025, "month": 12, "count": 1},  # 4 / 5 = 0.8 -> 1
                    {"year": 2026, "month": 1, "count": 2},  # 9 / 4 = 2.25 -> 2
                ],
            },
        }
    }


def test_a_flag_change_at_midnight_belongs_to_the_next_day(
    client: TestClient, admin: Admin
) -> None:
    admin.org("acme")
    admin.put("acme/members/x", member("x", developer=False))
    admin.put("acme/members/x", member("x", effective_at="2026-01-10T00:00:00+08:00"))
    admin.put("acme/members/y", member("y"))
    admin.put(
        "acme/members/y",
        member("y", developer=False, effective_at="2026-01-11T00:00:00+08:00"),
    )
    admin.put("acme/workspaces/w", {"name": "W", "created_at": YEAR_AGO})
    admin.events(
        "acme",
        [
            event(1, "2026-01-10T00:00:00+08:00", "x", "w"),  # x is a developer from this µs
            event(2, "2026-01-10T23:59:59.999999+08:00", "y", "w"),  # y still is one
            event(3, "2026-01-11T00:00:00+08:00", "y", "w"),  # and no longer is
        ],
    )
    answer = stats(
        client,
        ADMIN,
        stats_type="developers",
        org_domain="acme.example",
        start="2026-01-09",
        end="2026-01-11",
    )
    assert answer == {
        "developers": {
            "total_developers": [
                {"year": 2026, "month": 1, "count": 1, "day": 9},  # y
                {"year": 2026, "month": 1, "count": 2, "day": 10},  # x, y
                {"year": 2026, "month": 1, "count": 1, "day": 11},  # x
            ],
            "monthly_active_developers": [{"year": 2026, "month": 1, "count": 2}],
            "daily_active_developers": {
                "per_day": [
                    {"year": 2026, "month": 1, "count": 0, "day": 9},
                    {"year": 2026, "month": 1, "count": 2, "day": 10},
                    {"year": 2026, "month": 1, "count": 0, "day": 11},
                ],
                "per_week": [{"year": 2026, "count": 1, "week": 2}],  # 2 / 3 -> 1
                "per_month": [{"year": 2026, "month": 1, "count": 1}],
            },
        }
    }


def test_keys_are_in_the_vendor_page_order(client: TestClient, admin: Admin) -> None:
    token = build_acme(admin)
    params = {"stats_type": "users", "org_domain": "acme.example"}
    response = client.get(
        URL, params={**params, "start": "2026-01-04", "end": "2026-01-04"}, headers=bearer(token)
    )
    assert response.text == (
        '{"users":{"total_users":[{"year":2026,"month":1,"count":3,"day":4}],'
        '"monthly_active_users":[{"year":2026,"month":1,"count":4}],'
        '"daily_active_users":{"per_day":[{"year":2026,"month":1,"count":4,"day":4}],'
        '"per_week":[{"year":2026,"count":4,"week":1}],'
        '"per_month":[{"year":2026,"month":1,"count":4}]}}}'
    )
    assert response.headers["content-type"] == "application/json"


def test_times_without_offset_are_read_in_the_org_zone(client: TestClient, admin: Admin) -> None:
    token = build_acme(admin)
    # 2025-12-29T16:00:00Z is 12-30 00:00 in Shanghai: the window is 12-30 .. 12-30.
    for start in ("2025-12-30T00:00:00", "2025-12-29T16:00:00Z", "2025-12-30T00:00+08:00"):
        answer = stats(
            client,
            token,
            stats_type="users",
            org_domain="acme.example",
            start=start,
            end="2025-12-30T23:59:59.999999",
        )
        assert answer["users"]["daily_active_users"]["per_day"] == [
            {"year": 2025, "month": 12, "count": 2, "day": 30}
        ]


def test_days_after_today_have_totals_and_no_activity(client: TestClient, admin: Admin) -> None:
    token = build_acme(admin)  # the clock says 2026-03-15
    answer = stats(
        client,
        token,
        stats_type="developers",
        org_domain="acme.example",
        start="2026-03-14",
        end="2026-03-17",
    )
    assert answer == {
        "developers": {
            "total_developers": [
                {"year": 2026, "month": 3, "count": 3, "day": 14},
                {"year": 2026, "month": 3, "count": 3, "day": 15},
                {"year": 2026, "month": 3, "count": 3, "day": 16},
                {"year": 2026, "month": 3, "count": 3, "day": 17},
            ],
            "monthly_active_developers": [{"year": 2026, "month": 3, "count": 0}],
            "daily_active_developers": {
                "per_day": [
                    {"year": 2026, "month": 3, "count": 0, "day": 14},
                    {"year": 2026, "month": 3, "count": 0, "day": 15},
                    {"year": 2026, "month": 3, "count": 0, "day": 16},
                    {"year": 2026, "month": 3, "count": 0, "day": 17},
                ],
                "per_week": [
                    {"year": 2026, "count": 0, "week": 11},
                    {"year": 2026, "count": 0, "week": 12},
                ],
                "per_month": [{"year": 2026, "month": 3, "count": 0}],
            },
        }
    }


# -- workspaces ----------------------------------------------------------------------------


def test_workspaces_have_one_key_per_workspace_in_every_row(
    client: TestClient, admin: Admin
) -> None:
    token = build_acme(admin)
    assert stats(client, token, stats_type="workspaces", org_domain="acme.example", **WINDOW) == {
        "workspaces": {
            "total_users": [
                # bob leaves ws1 on 12-31 10:00; ws2 exists from 12-29 (0 before)
                {"year": 2025, "month": 12, "day": 27, "ws1": 2, "ws2": 0},
                {"year": 2025, "month": 12, "day": 28, "ws1": 2, "ws2": 0},
                {"year": 2025, "month": 12, "day": 29, "ws1": 2, "ws2": 0},
                {"year": 2025, "month": 12, "day": 30, "ws1": 2, "ws2": 1},
                {"year": 2025, "month": 12, "day": 31, "ws1": 1, "ws2": 1},
                {"year": 2026, "month": 1, "day": 1, "ws1": 1, "ws2": 1},
                {"year": 2026, "month": 1, "day": 2, "ws1": 1, "ws2": 2},
                {"year": 2026, "month": 1, "day": 3, "ws1": 1, "ws2": 2},
                {"year": 2026, "month": 1, "day": 4, "ws1": 1, "ws2": 2},
            ],
            "monthly_active_users": [
                {"year": 2025, "month": 12, "ws1": 3, "ws2": 1},
                {"year": 2026, "month": 1, "ws1": 4, "ws2": 2},
            ],
            "daily_active_users": {
                "per_month": [
                    # ws1: 5 / 5 = 1 and 7 / 4 = 1.75 -> 2; ws2: 1 / 5 -> 0 and 2 / 4 -> 1
                    {"year": 2025, "month": 12, "ws1": 1, "ws2": 0},
                    {"year": 2026, "month": 1, "ws1": 2, "ws2": 1},
                ]
            },
        }
    }


def test_workspace_rows_keep_the_vendor_key_order(client: TestClient, admin: Admin) -> None:
    token = build_acme(admin)
    params = {"stats_type": "workspaces", "org_domain": "acme.example"}
    response = client.get(
        URL, params={**params, "start": "2026-01-04", "end": "2026-01-04"}, headers=bearer(token)
    )
    assert response.text == (
        '{"workspaces":{"total_users":[{"year":2026,"month":1,"day":4,"ws1":1,"ws2":2}],'
        '"monthly_active_users":[{"year":2026,"month":1,"ws1":4,"ws2":0}],'
        '"daily_active_users":{"per_month":[{"year":2026,"month":1,"ws1":4,"ws2":0}]}}}'
    )


# -- the whole environment -----------------------------------------------------------------


def build_two_orgs(admin: Admin) -> None:
    """acme in Shanghai (UTC+8) and globex in New York (UTC-5 in January), each with a
    workspace ``w``; 2026-01-05T20:00:00Z is 01-06 04:00 in Shanghai but 01-05 15:00 in NY."""
    admin.org("acme", "Asia/Shanghai")
    admin.org("globex", "America/New_York")
    for org, people in (("acme", ["a1", "a2"]), ("globex", ["g1", "g2"])):
        admin.put(f"{org}/members/{people[0]}", member(people[0]))
        admin.put(
            f"{org}/members/{people[1]}", member(people[1], created_at="2026-01-05T20:00:00Z")
        )
        admin.put(
            f"{org}/workspaces/w",
            {
                "name": "W",
                "created_at": YEAR_AGO,
                "members": [
                    {"member": people[0], "since": YEAR_AGO},
                    {"member": people[1], "since": "2026-01-05T20:00:00Z"},
                ],
            },
        )
    admin.events("acme", [event(1, "2026-01-05T20:00:00Z", "a1", "w")])  # acme day 01-06
    admin.events(
        "globex",
        [
            event(1, "2026-01-05T20:00:00Z", "g1", "w"),  # globex day 01-05
            event(2, "2026-01-06T23:30:00-05:00", "g2", "w"),  # globex day 01-06
        ],
    )


def test_environment_counts_each_org_in_its_own_zone(client: TestClient, admin: Admin) -> None:
    build_two_orgs(admin)
    window = {"start": "2026-01-05", "end": "2026-01-06"}
    assert stats(client, ADMIN, stats_type="users", **window) == {
        "users": {
            # a2 exists from acme's 01-06, g2 from globex's 01-05
            "total_users": [
                {"year": 2026, "month": 1, "count": 3, "day": 5},
                {"year": 2026, "month": 1, "count": 4, "day": 6},
            ],
            "monthly_active_users": [{"year": 2026, "month": 1, "count": 3}],
            "daily_active_users": {
                "per_day": [
                    {"year": 2026, "month": 1, "count": 1, "day": 5},  # g1
                    {"year": 2026, "month": 1, "count": 2, "day": 6},  # a1, g2
                ],
                "per_week": [{"year": 2026, "count": 2, "week": 2}],  # 1.5 -> 2
                "per_month": [{"year": 2026, "month": 1, "count": 2}],
            },
        }
    }


def test_environment_workspace_keys_name_the_org(client: TestClient, admin: Admin) -> None:
    build_two_orgs(admin)
    window = {"start": "2026-01-05", "end": "2026-01-06"}
    assert stats(client, ADMIN, stats_type="workspaces", **window) == {
        "workspaces": {
            "total_users": [
                {"year": 2026, "month": 1, "day": 5, "acme/w": 1, "globex/w": 2},
                {"year": 2026, "month": 1, "day": 6, "acme/w": 2, "globex/w": 2},
            ],
            "monthly_active_users": [{"year": 2026, "month": 1, "acme/w": 1, "globex/w": 2}],
            "daily_active_users": {
                "per_month": [{"year": 2026, "month": 1, "acme/w": 1, "globex/w": 1}]
            },
        }
    }


def test_an_offset_is_read_in_each_org_zone(client: TestClient, admin: Admin) -> None:
    build_two_orgs(admin)
    # 2026-01-05T02:00Z is 01-05 10:00 in Shanghai but 01-04 21:00 in New York.
    answer = stats(
        client, ADMIN, stats_type="users", start="2026-01-05T02:00:00Z", end="2026-01-05T12:00Z"
    )
    assert answer["users"]["total_users"] == [
        {"year": 2026, "month": 1, "count": 1, "day": 4},  # globex alone: g1
        {"year": 2026, "month": 1, "count": 3, "day": 5},  # a1; g1, g2
    ]


# -- access --------------------------------------------------------------------------------


def test_an_org_token_may_not_name_another_domain(client: TestClient, admin: Admin) -> None:
    build_two_orgs(admin)
    token = admin.token("acme", "read")
    for domain in ("globex.example", "nowhere.example"):  # existing or not: the same 403
        response = client.get(
            URL,
            params={"stats_type": "users", "org_domain": domain, **WINDOW},
            headers=bearer(token),
        )
        assert response.status_code == 403
        assert response.json() == {
            "detail": "this token does not grant access to that organization"
        }


def test_an_org_token_may_not_ask_for_the_environment(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    response = client.get(
        URL, params={"stats_type": "users", **WINDOW}, headers=bearer(admin.token("acme", "read"))
    )
    assert response.status_code == 403
    assert response.json() == {
        "detail": "without org_domain the figures cover the whole environment:"
        " that needs the environment admin's token"
    }


def test_a_token_without_read_is_forbidden(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    response = client.get(
        URL,
        params={"stats_type": "users", "org_domain": "acme.example", **WINDOW},
        headers=bearer(admin.token("acme", "ingest")),
    )
    assert response.status_code == 403
    assert response.json() == {"detail": 'this token lacks the "read" scope'}


def test_an_unknown_domain_is_not_found(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    response = client.get(
        URL,
        params={"stats_type": "users", "org_domain": "nowhere.example", **WINDOW},
        headers=bearer(ADMIN),
    )
    assert response.status_code == 404
    assert response.json() == {"detail": 'no organization has the domain "nowhere.example"'}


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "this call needs a token"),
        ({"Authorization": "Bearer tly_not-a-token"}, "the token is not valid"),
        ({"Authorization": f"Basic {ADMIN}"}, "this call needs a token"),
    ],
)
def test_a_missing_or_unknown_token_is_unauthorized(
    client: TestClient, headers: dict[str, str], detail: str
) -> None:
    response = client.get(URL, params={"stats_type": "users", **WINDOW}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["x-request-id"]


# -- validation ----------------------------------------------------------------------------

WRONG_FORMAT = (
    "Datetime has wrong format. Use one of these formats instead:"
    " YYYY-MM-DD, YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
)


@pytest.mark.parametrize(
    ("params", "body"),
    [
        (
            {},
            {
                "stats_type": ["This field is required."],
                "start": ["This field is required."],
                "end": ["This field is required."],
            },
        ),
        (
            {"stats_type": "apps", **WINDOW},
            {"stats_type": ['"apps" is not a valid choice.']},
        ),
        (
            {"stats_type": "users", "start": "2026/01/01", "end": "yesterday"},
            {"start": [WRONG_FORMAT], "end": [WRONG_FORMAT]},
        ),
        (
            {"stats_type": "users", "start": "2026-02-30", "end": "2026-03-01"},
            {"start": ["2026-02-30 is not a valid date or time."]},
        ),
        (
            {"stats_type": "users", "start": "0001-01-01", "end": "2026-03-01"},
            {"start": ["Datetime is out of range: use a year from 2 to 9998."]},
        ),
        (
            {"stats_type": "users", "start": "", "end": "2026-03-01"},
            {"start": ["This field may not be blank."]},
        ),
        (
            {"stats_type": "users", "org_domain": "", **WINDOW},
            {"org_domain": ["This field may not be blank."]},
        ),
        (
            {"stats_type": "users", "start": "2026-01-02", "end": "2026-01-01"},
            {"non_field_errors": ["end must not be before start."]},
        ),
        (
            {"stats_type": "users", "start": "2026-01-01T10:00:00", "end": "2026-01-01T09:59:59"},
            {"non_field_errors": ["end must not be before start."]},
        ),
        (
            {"stats_type": "users", "start": "2023-01-01", "end": "2026-01-03"},
            {"non_field_errors": ["The window from start to end may span at most 1098 days."]},
        ),
    ],
)
def test_each_validation_error_has_its_field_body(
    client: TestClient, admin: Admin, params: dict[str, str], body: dict[str, list[str]]
) -> None:
    admin.org("acme")
    response = client.get(URL, params=params, headers=bearer(ADMIN))
    assert response.status_code == 400
    assert response.json() == body


def test_the_longest_window_is_accepted(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    answer = stats(client, ADMIN, stats_type="users", start="2023-01-01", end="2026-01-01")
    assert len(answer["users"]["total_users"]) == 1097
    answer = stats(client, ADMIN, stats_type="users", start="2023-01-01", end="2026-01-02")
    assert len(answer["users"]["daily_active_users"]["per_day"]) == 1098


def test_the_environment_checks_its_window_even_without_orgs(client: TestClient) -> None:
    response = client.get(
        URL,
        params={"stats_type": "users", "start": "2026-01-02", "end": "2026-01-01"},
        headers=bearer(ADMIN),
    )
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["end must not be before start."]}


def test_the_operation_is_in_the_openapi_document(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    names = [p["name"] for p in document["paths"][URL]["get"]["parameters"]]
    assert names == ["stats_type", "start", "end", "org_domain"]


# -- the day runs agree with the per-day definitions of the directory ----------------------

INSTANTS = st.integers(min_value=0, max_value=30 * 24).map(
    lambda hours: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hours)
)


def not_before(instant: datetime) -> st.SearchStrategy[datetime]:
    return INSTANTS.filter(lambda t: t >= instant)


@st.composite
def members(draw: st.DrawFn) -> Member:
    created = draw(INSTANTS)
    deleted = draw(st.none() | not_before(created))
    times = sorted(set(draw(st.lists(INSTANTS, min_size=1, max_size=4))))
    versions = tuple(
        MemberVersion(effective_at=t, developer=draw(st.booleans()), departments=()) for t in times
    )
    return Member(
        id="m", name="", email="", created_at=created, deleted_at=deleted, versions=versions
    )


@st.composite
def workspaces(draw: st.DrawFn) -> Workspace:
    created = draw(INSTANTS)
    deleted = draw(st.none() | not_before(created))
    memberships = []
    for who in draw(st.lists(st.sampled_from(["a", "b", "c"]), max_size=5)):
        since = draw(INSTANTS)
        until = draw(st.none() | not_before(since))
        memberships.append(WorkspaceMembership(member=who, since=since, until=until))
    return Workspace(
        id="w", name="", created_at=created, deleted_at=deleted, members=tuple(memberships)
    )


def window_of(directory: Directory) -> OrgWindow:
    return OrgWindow.between(directory, date(2026, 1, 3), date(2026, 1, 25))


ORG = Organization(id="o", name="O", domain="o.example", timezone="America/New_York")


@settings(max_examples=200, deadline=None)
@given(member=members(), developers=st.booleans())
def test_member_day_runs_match_exists_at_and_version_before(
    member: Member, developers: bool
) -> None:
    window = window_of(Directory.build(ORG, members=[member]))
    expected = [
        int(member.exists_at(m) and (not developers or member.version_before(m).developer))
        for m in window.ends
    ]
    assert window.member_totals(developers=developers) == expected


@settings(max_examples=200, deadline=None)
@given(workspace=workspaces())
def test_workspace_day_runs_match_active_at(workspace: Workspace) -> None:
    window = window_of(Directory.build(ORG, workspaces=[workspace]))
    expected = [
        len({m.member for m in workspace.members if m.active_at(end)})
        if workspace.exists_at(end)
        else 0
        for end in window.ends
    ]
    assert window.workspace_totals(workspace) == expected
