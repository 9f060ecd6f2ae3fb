"""Environment statistics cases found by mutation testing (docs/testing.md): workspace keys at
the window's edges, an org without workspaces, orgs whose windows cover different days, and two
windows asked of one directory snapshot.

acme is in Shanghai (UTC+8), globex in New York (UTC-5 in January). Every workspace and member
below is created 2025-01-01 unless said.
"""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.conftest import ADMIN, Admin, bearer

URL = "/api/statistics/"
YEAR_AGO = "2025-01-01T00:00:00+08:00"


def stats(client: TestClient, token: str, **params: str) -> Any:
    response = client.get(URL, params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


def workspace(members: list[dict[str, str]], **extra: str) -> dict[str, Any]:
    return {"name": "W", "created_at": YEAR_AGO, "members": members, **extra}


def build_two_orgs(admin: Admin) -> None:
    """Each org has members x1 (always) and x2 (from 2026-01-05T20:00Z) in its workspace ``w``;
    2026-01-05T20:00Z is 01-06 04:00 in Shanghai and 01-05 15:00 in New York."""
    admin.org("acme", "Asia/Shanghai")
    admin.org("globex", "America/New_York")
    for org, (first, second) in (("acme", ("a1", "a2")), ("globex", ("g1", "g2"))):
        admin.put(f"{org}/members/{first}", {"name": first, "created_at": YEAR_AGO})
        admin.put(f"{org}/members/{second}", {"name": second, "created_at": YEAR_AGO})
        admin.put(
            f"{org}/workspaces/w",
            workspace(
                [
                    {"member": first, "since": YEAR_AGO},
                    {"member": second, "since": "2026-01-05T20:00:00Z"},
                ]
            ),
        )
    for org, who in (("acme", "a1"), ("globex", "g1")):
        admin.events(
            org,
            [
                {
                    "id": "e1",
                    "time": "2026-01-05T20:00:00Z",
                    "type": "workspace_activity",
                    "member": who,
                    "workspace": "w",
                }
            ],
        )


def test_a_workspace_deleted_at_the_window_start_has_a_key_one_created_at_its_end_has_none(
    client: TestClient, admin: Admin
) -> None:
    # The window 01-05 .. 01-06 runs from 01-05 00:00 to 01-07 00:00 in Shanghai. "gone" exists
    # until its deletion at the first instant (so at a moment of the window, at no day's end);
    # "late" is created at the last instant, so it exists at no moment of the window.
    admin.org("acme", "Asia/Shanghai")
    admin.put("acme/workspaces/gone", workspace([], deleted_at="2026-01-05T00:00:00+08:00"))
    admin.put("acme/workspaces/late", workspace([], created_at="2026-01-07T00:00:00+08:00"))
    token = admin.token("acme", "read")
    window = {"start": "2026-01-05", "end": "2026-01-06"}
    answer = stats(client, token, stats_type="workspaces", org_domain="acme.example", **window)
    assert answer == {
        "workspaces": {
            "total_users": [
                {"year": 2026, "month": 1, "day": 5, "gone": 0},
                {"year": 2026, "month": 1, "day": 6, "gone": 0},
            ],
            "monthly_active_users": [{"year": 2026, "month": 1, "gone": 0}],
            "daily_active_users": {"per_month": [{"year": 2026, "month": 1, "gone": 0}]},
        }
    }


def test_an_org_without_workspaces_has_rows_without_keys(client: TestClient, admin: Admin) -> None:
    admin.org("acme", "Asia/Shanghai")
    token = admin.token("acme", "read")
    window = {"start": "2026-01-31", "end": "2026-02-01"}
    answer = stats(client, token, stats_type="workspaces", org_domain="acme.example", **window)
    assert answer == {
        "workspaces": {
            "total_users": [
                {"year": 2026, "month": 1, "day": 31},
                {"year": 2026, "month": 2, "day": 1},
            ],
            "monthly_active_users": [{"year": 2026, "month": 1}, {"year": 2026, "month": 2}],
            "daily_active_users": {
                "per_month": [{"year": 2026, "month": 1}, {"year": 2026, "month": 2}]
            },
        }
    }


def test_a_workspace_has_zero_on_the_days_only_another_org_has(
    client: TestClient, admin: Admin
) -> None:
    # 2026-01-05T02:00Z .. 12:00Z is 01-05 10:00 .. 20:00 in Shanghai (acme: the day 01-05) and
    # 01-04 21:00 .. 01-05 07:00 in New York (globex: 01-04 and 01-05).
    build_two_orgs(admin)
    answer = stats(
        client,
        ADMIN,
        stats_type="workspaces",
        start="2026-01-05T02:00:00Z",
        end="2026-01-05T12:00Z",
    )
    assert answer == {
        "workspaces": {
            "total_users": [
                # acme has no 01-04; globex's end of 01-04 is 01-05T05:00Z, before g2 joins
                {"year": 2026, "month": 1, "day": 4, "acme/w": 0, "globex/w": 1},
                # acme's end of 01-05 is 01-05T16:00Z (a1 only); globex's is 01-06T05:00Z
                {"year": 2026, "month": 1, "day": 5, "acme/w": 1, "globex/w": 2},
            ],
            # acme's event falls on its 01-06, outside its window; globex's on its 01-05
            "monthly_active_users": [{"year": 2026, "month": 1, "acme/w": 0, "globex/w": 1}],
            # globex: 1 active member-day over the 2 days of January in the window: 0.5 -> 1
            "daily_active_users": {
                "per_month": [{"year": 2026, "month": 1, "acme/w": 0, "globex/w": 1}]
            },
        }
    }


def test_two_windows_of_one_directory_snapshot_get_their_own_workspace_totals(
    client: TestClient, admin: Admin
) -> None:
    build_two_orgs(admin)
    token = admin.token("acme", "read")
    ask = {"stats_type": "workspaces", "org_domain": "acme.example"}
    first = stats(client, token, start="2026-01-05", end="2026-01-05", **ask)
    second = stats(client, token, start="2026-01-06", end="2026-01-06", **ask)  # no write between
    # the ends of acme's 01-05 and 01-06 are 01-05T16:00Z and 01-06T16:00Z; a2 joins at 20:00Z
    assert first["workspaces"]["total_users"] == [{"year": 2026, "month": 1, "day": 5, "w": 1}]
    assert second["workspaces"]["total_users"] == [{"year": 2026, "month": 1, "day": 6, "w": 2}]


def test_two_windows_of_one_directory_snapshot_get_their_own_active_developers(
    client: TestClient, admin: Admin
) -> None:
    admin.org("acme", "Asia/Shanghai")
    admin.put("acme/members/dev", {"name": "Dev", "developer": True, "created_at": YEAR_AGO})
    admin.put("acme/workspaces/w", workspace([{"member": "dev", "since": YEAR_AGO}]))
    admin.events(
        "acme",
        [
            {
                "id": f"e{day}",
                "time": f"2026-01-0{day}T10:00:00+08:00",
                "type": "workspace_activity",
                "member": "dev",
                "workspace": "w",
            }
            for day in (5, 6)
        ],
    )
    token = admin.token("acme", "read")
    ask = {"stats_type": "developers", "org_domain": "acme.example"}
    first = stats(client, token, start="2026-01-05", end="2026-01-05", **ask)
    second = stats(client, token, start="2026-01-06", end="2026-01-06", **ask)  # no write between
    assert first["developers"]["daily_active_developers"]["per_day"] == [
        {"year": 2026, "month": 1, "count": 1, "day": 5}
    ]
    assert second["developers"]["daily_active_developers"]["per_day"] == [
        {"year": 2026, "month": 1, "count": 1, "day": 6}
    ]


def test_an_environment_without_orgs_checks_the_longest_window(client: TestClient) -> None:
    # environment_max_days is 3 * 366 = 1098: 2023-01-01 .. 2026-01-02 is 1098 days, one more
    # is too long
    longest = {"stats_type": "users", "start": "2023-01-01", "end": "2026-01-02"}
    assert client.get(URL, params=longest, headers=bearer(ADMIN)).status_code == 200
    too_long = {**longest, "end": "2026-01-03"}
    response = client.get(URL, params=too_long, headers=bearer(ADMIN))
    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": ["The window from start to end may span at most 1098 days."]
    }
