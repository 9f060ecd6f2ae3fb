"""App resource usage (POST /api/v1/app/usage_stats): apps as of the end of a day, metrics, paging,
the T-1 .. T-180 window, errors as {code, msg}, and the per-key rate limit.

The clock is pinned at 2026-03-15T04:00Z (12:00 in Shanghai): T = 2026-03-15, T-1 = 2026-03-14.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.errors import RateLimited
from tally.ratelimit import RateLimiter
from tally.service import Tally
from tally.settings import Settings
from tests.conftest import ADMIN, Admin, FixedClock, bearer

URL = "/api/v1/app/usage_stats"
ZERO = {
    "app": 1,
    "form_coop": 0,
    "form_workflow": 0,
    "dash": 0,
    "etl": 0,
    "aggregate": 0,
    "public_link": 0,
    "data_trigger": 0,
    "automation": 0,
    "bpa": 0,
    "data": 0,
}


def send(admin: Admin, org: str, events: list[dict[str, Any]]) -> None:
    result = admin.events(org, events)
    assert result["rejected"] == [], result


def ev(event_id: str, kind: str, time: str, app: str, **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "type": kind, "time": time, "member": "tom", "app": app, **fields}


def res(event_id: str, time: str, app: str, resource: str, delta: int) -> dict[str, Any]:
    return ev(event_id, "app_resource", time, app, resource=resource, delta=delta)


def build_acme(admin: Admin) -> str:
    """Acme (Asia/Shanghai). On 2026-03-14 four apps exist: crm, hr, ops (hr and ops created at
    the same instant), kept (deleted exactly at M); late (created at M) and gone (deleted one
    second before M) do not."""
    admin.org("acme")
    admin.put("acme/members/tom", {"name": "Tom", "created_at": "2025-06-01T00:00:00+08:00"})
    admin.put("acme/members/ann", {"name": "Ann", "created_at": "2025-06-01T00:00:00+08:00"})
    apps = {
        "crm": ("CRM", "tom", "2026-01-01T00:00:00+08:00", None),
        "hr": ("HR", "ann", "2026-02-01T09:30:00+08:00", None),
        "ops": ("Ops", "tom", "2026-02-01T09:30:00+08:00", None),
        "kept": ("Kept", "ann", "2026-03-01T08:00:00+08:00", "2026-03-15T00:00:00+08:00"),
        "late": ("Late", "ann", "2026-03-15T00:00:00+08:00", None),
        "gone": ("Gone", "tom", "2026-01-05T00:00:00+08:00", "2026-03-14T23:59:59+08:00"),
    }
    for app_id, (name, creator, created, deleted) in apps.items():
        body = {"name": name, "creator": creator, "created_at": created, "deleted_at": deleted}
        admin.put(f"acme/apps/{app_id}", body)
    send(
        admin,
        "acme",
        [
            # crm: form_coop 3 - 5 clamps to 0; dash 2 (the +1 at M is the next day's);
            # public_link 5 one millisecond before M; data 100 then 80 (latest wins; 999 is
            # after M); visits: the latest before M is 18:15:30.75 Shanghai (sent in UTC).
            res("r1", "2026-03-01T10:00:00+08:00", "crm", "form_coop", 3),
            res("r2", "2026-03-02T10:00:00+08:00", "crm", "form_coop", -5),
            res("r3", "2026-03-03T10:00:00+08:00", "crm", "dash", 2),
            res("r4", "2026-03-15T00:00:00+08:00", "crm", "dash", 1),
            res("r5", "2026-03-14T23:59:59.999+08:00", "crm", "public_link", 5),
            ev("d1", "app_data", "2026-03-14T09:00:00+08:00", "crm", records=100),
            ev("d2", "app_data", "2026-03-14T18:00:00+08:00", "crm", records=80),
            ev("d3", "app_data", "2026-03-15T01:00:00+08:00", "crm", records=999),
            ev("v1", "app_visit", "2026-03-13T08:00:00+08:00", "crm"),
            ev("v2", "app_visit", "2026-03-14T10:15:30.750Z", "crm"),
            ev("v3", "app_visit", "2026-03-15T02:00:00+08:00", "crm"),
            ev("e1", "app_edit", "2026-03-10T12:00:00+08:00", "crm"),
            # ops: two workflow forms and one data factory, edited on the 12th, never visited.
            res("r6", "2026-03-05T10:00:00+08:00", "ops", "form_workflow", 1),
            res("r7", "2026-03-05T11:00:00+08:00", "ops", "form_workflow", 1),
            res("r8", "2026-03-06T10:00:00+08:00", "ops", "etl", 1),
            ev("e2", "app_edit", "2026-03-12T09:00:00+08:00", "ops"),
            # kept: 4 - 1 process analyses, 1200 records; gone: events, but gone by M.
            res("r9", "2026-03-02T10:00:00+08:00", "kept", "bpa", 4),
            res("r10", "2026-03-09T10:00:00+08:00", "kept", "bpa", -1),
            ev("d4", "app_data", "2026-03-09T10:00:00+08:00", "kept", records=1200),
            res("r11", "2026-03-02T10:00:00+08:00", "gone", "dash", 7),
        ],
    )
    return admin.token("acme", "read")


@pytest.fixture
def acme(admin: Admin) -> str:
    """A read token of the Acme fixture."""
    return build_acme(admin)


def stats(client: TestClient, token: str, body: Any = None, **kw: Any) -> Any:
    """POST a body (a dict, or raw bytes) and return the response."""
    if isinstance(body, bytes):
        return client.post(URL, content=body, headers=bearer(token), **kw)
    return client.post(URL, json={} if body is None else body, headers=bearer(token), **kw)


def ids(answer: dict[str, Any]) -> list[str]:
    return [item["app_id"] for item in answer["items"]]


CRM = {
    "app_id": "crm",
    "app_name": "CRM",
    "creator": {"member_id": "tom", "name": "Tom"},
    "created_at": "2026-01-01T00:00:00+08:00",
    "last_edit_at": "2026-03-10T12:00:00+08:00",
    "last_visit_at": "2026-03-14T18:15:30+08:00",
    "metrics": {
        "app": 1,
        "form_coop": 0,
        "form_workflow": 0,
        "dash": 2,
        "etl": 0,
        "aggregate": 0,
        "public_link": 5,
        "data_trigger": 0,
        "automation": 0,
        "bpa": 0,
        "data": 80,
    },
}
HR = {
    "app_id": "hr",
    "app_name": "HR",
    "creator": {"member_id": "ann", "name": "Ann"},
    "created_at": "2026-02-01T09:30:00+08:00",
    "last_edit_at": None,
    "last_visit_at": None,
    "metrics": ZERO,
}
OPS = {
    "app_id": "ops",
    "app_name": "Ops",
    "creator": {"member_id": "tom", "name": "Tom"},
    "created_at": "2026-02-01T09:30:00+08:00",
    "last_edit_at": "2026-03-12T09:00:00+08:00",
    "last_visit_at": None,
    "metrics": {**ZERO, "form_workflow": 2, "etl": 1},
}
KEPT = {
    "app_id": "kept",
    "app_name": "Kept",
    "creator": {"member_id": "ann", "name": "Ann"},
    "created_at": "2026-03-01T08:00:00+08:00",
    "last_edit_at": None,
    "last_visit_at": None,
    "metrics": {**ZERO, "bpa": 3, "data": 1200},
}


# -- the answer ----------------------------------------------------------------------------


def test_answer_for_yesterday(client: TestClient, acme: str) -> None:
    response = stats(client, acme, {"date": "2026-03-14"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "date": "2026-03-14",
        "has_next": False,
        "items": [CRM, HR, OPS, KEPT],
    }


def test_answer_is_in_the_vendor_key_order(client: TestClient, acme: str) -> None:
    response = stats(client, acme, {"date": "2026-03-14", "app_ids": ["hr"]})
    assert response.text == (
        '{"date":"2026-03-14","has_next":false,"items":[{"app_id":"hr","app_name":"HR",'
        '"creator":{"member_id":"ann","name":"Ann"},"created_at":"2026-02-01T09:30:00+08:00",'
        '"last_edit_at":null,"last_visit_at":null,"metrics":{"app":1,"form_coop":0,'
        '"form_workflow":0,"dash":0,"etl":0,"aggregate":0,"public_link":0,"data_trigger":0,'
        '"automation":0,"bpa":0,"data":0}}]}'
    )


def test_app_created_after_the_day_is_absent(client: TestClient, acme: str) -> None:
    # "late" is created at 2026-03-15T00:00+08:00, the very instant M that ends 2026-03-14.
    assert "late" not in ids(stats(client, acme, {"date": "2026-03-14"}).json())
    assert ids(stats(client, acme, {"date": "2026-01-31"}).json()) == ["crm", "gone"]


def test_app_deleted_before_the_end_of_the_day_is_absent(client: TestClient, acme: str) -> None:
    # "gone" is deleted one second before M; "kept" exactly at M, so it still exists then.
    answer = stats(client, acme, {"date": "2026-03-14", "app_ids": ["gone", "kept"]}).json()
    assert answer == {"date": "2026-03-14", "has_next": False, "items": [KEPT]}
    answer = stats(client, acme, {"date": "2026-03-13", "app_ids": ["gone"]}).json()
    assert answer["items"] == [
        {
            "app_id": "gone",
            "app_name": "Gone",
            "creator": {"member_id": "tom", "name": "Tom"},
            "created_at": "2026-01-05T00:00:00+08:00",
            "last_edit_at": None,
            "last_visit_at": None,
            "metrics": {**ZERO, "dash": 7},
        }
    ]


def test_an_app_written_after_an_answer_shows_in_the_next(
    client: TestClient, acme: str, admin: Admin
) -> None:
    # The day's list of apps is kept per directory snapshot: a write makes a new one.
    assert ids(stats(client, acme, {"date": "2026-03-14"}).json()) == ["crm", "hr", "ops", "kept"]
    admin.put(
        "acme/apps/new",
        {"name": "New", "creator": "tom", "created_at": "2026-01-02T00:00:00+08:00"},
    )
    admin.put(
        "acme/apps/hr",
        {
            "name": "HR",
            "creator": "ann",
            "created_at": "2026-02-01T09:30:00+08:00",
            "deleted_at": "2026-03-14T12:00:00+08:00",
        },
    )
    assert ids(stats(client, acme, {"date": "2026-03-14"}).json()) == ["crm", "new", "ops", "kept"]


def test_resource_counts_clamp_at_zero(client: TestClient, acme: str) -> None:
    # crm form_coop: +3 on the 1st, -5 on the 2nd.
    answer = stats(client, acme, {"date": "2026-03-01", "app_ids": ["crm"]}).json()
    assert answer["items"][0]["metrics"] == {**ZERO, "form_coop": 3}
    answer = stats(client, acme, {"date": "2026-03-02", "app_ids": ["crm"]}).json()
    assert answer["items"][0]["metrics"] == {**ZERO, "form_coop": 0}


def test_metrics_are_as_of_the_end_of_the_day(client: TestClient, acme: str) -> None:
    answer = stats(client, acme, {"date": "2026-03-13", "app_ids": ["crm"]}).json()
    assert answer["items"][0] == {
        **CRM,
        "last_visit_at": "2026-03-13T08:00:00+08:00",
        "metrics": {**ZERO, "dash": 2},
    }


def test_data_is_the_latest_update_of_the_day(client: TestClient, acme: str) -> None:
    # 100 at 09:00 and 80 at 18:00 on the 14th: the later one, though smaller.
    answer = stats(client, acme, {"date": "2026-03-14", "app_ids": ["crm"]}).json()
    assert answer["items"][0]["metrics"]["data"] == 80


def test_data_at_the_same_instant_takes_the_greater_event_id(
    client: TestClient, acme: str, admin: Admin
) -> None:
    send(
        admin,
        "acme",
        [
            ev("d9a", "app_data", "2026-03-14T20:00:00+08:00", "hr", records=7),
            ev("d9b", "app_data", "2026-03-14T20:00:00+08:00", "hr", records=5),
        ],
    )
    answer = stats(client, acme, {"date": "2026-03-14", "app_ids": ["hr"]}).json()
    assert answer["items"][0]["metrics"] == {**ZERO, "data": 5}


def test_times_are_in_the_org_offset_of_that_instant(
    client: TestClient, admin: Admin, clock: FixedClock
) -> None:
    # New York: UTC-5 until 2026-03-08, UTC-4 after. The clock is 2026-03-15T04:00Z, i.e.
    # 00:00 on the 15th in New York, so T-1 is 2026-03-14 there too.
    admin.org("globex", timezone="America/New_York")
    admin.put("globex/members/tom", {"name": "Tom", "created_at": "2025-06-01T00:00:00-05:00"})
    admin.put(
        "globex/apps/wiki",
        {"name": "Wiki", "creator": "tom", "created_at": "2026-01-10T14:00:00Z"},
    )
    send(
        admin,
        "globex",
        [
            ev("v1", "app_visit", "2026-03-13T15:30:00Z", "wiki"),
            ev("v2", "app_visit", "2026-03-15T03:30:00.999999Z", "wiki"),  # 23:30 on the 14th
            ev("e1", "app_edit", "2026-03-01T17:00:00+00:00", "wiki"),
        ],
    )
    token = admin.token("globex", "read")
    assert stats(client, token).json() == {
        "date": "2026-03-14",
        "has_next": False,
        "items": [
            {
                "app_id": "wiki",
                "app_name": "Wiki",
                "creator": {"member_id": "tom", "name": "Tom"},
                "created_at": "2026-01-10T09:00:00-05:00",
                "last_edit_at": "2026-03-01T12:00:00-05:00",
                "last_visit_at": "2026-03-14T23:30:00-04:00",
                "metrics": ZERO,
            }
        ],
    }
    answer = stats(client, token, {"date": "2026-03-13"}).json()
    assert answer["items"][0]["last_visit_at"] == "2026-03-13T11:30:00-04:00"


def test_creator_name_is_the_current_one(client: TestClient, acme: str, admin: Admin) -> None:
    admin.put("acme/members/ann", {"name": "Ann Lee", "created_at": "2025-06-01T00:00:00+08:00"})
    answer = stats(client, acme, {"date": "2026-02-10", "app_ids": ["hr"]}).json()
    assert answer["items"][0]["creator"] == {"member_id": "ann", "name": "Ann Lee"}


# -- selection and paging ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("skip", "limit", "expected", "has_next"),
    [
        (0, 2, ["crm", "hr"], True),
        (1, 2, ["hr", "ops"], True),
        (2, 2, ["ops", "kept"], False),  # exactly `limit` items left: no next page
        (3, 2, ["kept"], False),
        (4, 2, [], False),
        (50, 100, [], False),
        (0, 4, ["crm", "hr", "ops", "kept"], False),
        (0, 3, ["crm", "hr", "ops"], True),
    ],
)
def test_paging_with_skip_and_limit(
    client: TestClient, acme: str, skip: int, limit: int, expected: list[str], has_next: bool
) -> None:
    answer = stats(client, acme, {"date": "2026-03-14", "skip": skip, "limit": limit}).json()
    assert ids(answer) == expected
    assert answer["has_next"] is has_next


def test_skip_and_limit_default_to_0_and_20(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    admin.put("acme/members/tom", {"name": "Tom", "created_at": "2025-06-01T00:00:00+08:00"})
    for n in range(21):
        admin.put(
            f"acme/apps/a{n:02d}",
            {"name": f"A{n}", "creator": "tom", "created_at": "2026-01-01T00:00:00+08:00"},
        )
    token = admin.token("acme", "read")
    answer = stats(client, token).json()
    assert ids(answer) == [f"a{n:02d}" for n in range(20)]
    assert answer["has_next"] is True
    answer = stats(client, token, {"skip": None, "limit": None, "app_ids": None}).json()
    assert len(answer["items"]) == 20


def test_app_ids_select_apps_and_leave_unknown_ones_out(client: TestClient, acme: str) -> None:
    body = {"date": "2026-03-14", "app_ids": ["kept", "nope", "crm", "crm"]}
    assert stats(client, acme, body).json() == {
        "date": "2026-03-14",
        "has_next": False,
        "items": [CRM, KEPT],
    }


def test_app_ids_page_like_the_rest(client: TestClient, acme: str) -> None:
    body = {"date": "2026-03-14", "app_ids": ["kept", "hr", "ops"], "limit": 2}
    answer = stats(client, acme, body).json()
    assert (ids(answer), answer["has_next"]) == (["hr", "ops"], True)


def test_empty_app_ids_means_every_app(client: TestClient, acme: str) -> None:
    answer = stats(client, acme, {"date": "2026-03-14", "app_ids": []}).json()
    assert ids(answer) == ["crm", "hr", "ops", "kept"]


def test_an_org_without_apps_answers_an_empty_page(client: TestClient, admin: Admin) -> None:
    admin.org("empty")
    token = admin.token("empty", "read")
    assert stats(client, token).json() == {"date": "2026-03-14", "has_next": False, "items": []}


def test_other_orgs_apps_are_not_seen(client: TestClient, acme: str, admin: Admin) -> None:
    admin.org("other")
    admin.put("other/members/tom", {"name": "Tom", "created_at": "2025-06-01T00:00:00+08:00"})
    admin.put(
        "other/apps/crm",
        {"name": "Other CRM", "creator": "tom", "created_at": "2026-01-01T00:00:00+08:00"},
    )
    send(admin, "other", [ev("x1", "app_data", "2026-03-14T09:00:00+08:00", "crm", records=5)])
    answer = stats(client, acme, {"date": "2026-03-14", "app_ids": ["crm"]}).json()
    assert answer["items"] == [CRM]


# -- the date ------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [{}, {"date": ""}, {"date": None}, b"", b"  \n"])
def test_date_defaults_to_yesterday(client: TestClient, acme: str, body: Any) -> None:
    response = stats(client, acme, body)
    assert response.status_code == 200
    assert response.json()["date"] == "2026-03-14"


@pytest.mark.parametrize("day", ["2026-03-14", "2025-09-16"])
def test_t_minus_1_and_t_minus_180_are_accepted(client: TestClient, acme: str, day: str) -> None:
    response = stats(client, acme, {"date": day})
    assert response.status_code == 200
    assert response.json()["date"] == day


@pytest.mark.parametrize(
    ("day", "msg"),
    [
        (
            "2026-03-15",
            "date 2026-03-15 is after T-1 (2026-03-14 in Asia/Shanghai): the latest day that"
            " can be queried is yesterday in the organization's time zone",
        ),
        (
            "2027-01-01",
            "date 2027-01-01 is after T-1 (2026-03-14 in Asia/Shanghai): the latest day that"
            " can be queried is yesterday in the organization's time zone",
        ),
        (
            "2025-09-15",
            "date 2025-09-15 is before T-180 (2025-09-16 in Asia/Shanghai): only the last 180"
            " days can be queried",
        ),
        ("2026/03/14", 'date "2026/03/14" is not a valid date in yyyy-MM-dd format'),
        ("20260314", 'date "20260314" is not a valid date in yyyy-MM-dd format'),
        ("2026-02-30", 'date "2026-02-30" is not a valid date in yyyy-MM-dd format'),
        ("2026-03-14T00", 'date "2026-03-14T00" is not a valid date in yyyy-MM-dd format'),
    ],
)
def test_dates_outside_the_window_or_malformed_are_rejected(
    client: TestClient, acme: str, day: str, msg: str
) -> None:
    response = stats(client, acme, {"date": day})
    assert response.status_code == 400
    assert response.json() == {"code": 4000, "msg": msg}


def test_today_comes_from_the_clock(client: TestClient, acme: str, clock: FixedClock) -> None:
    clock.now = datetime(2026, 3, 15, 16, 0, tzinfo=UTC)  # 00:00 on the 16th in Shanghai
    assert stats(client, acme).json()["date"] == "2026-03-15"
    assert stats(client, acme, {"date": "2026-03-15"}).status_code == 200
    assert stats(client, acme, {"date": "2025-09-16"}).status_code == 400


def test_today_is_the_org_day(client: TestClient, admin: Admin, clock: FixedClock) -> None:
    admin.org("globex", timezone="America/New_York")
    token = admin.token("globex", "read")
    clock.now = datetime(2026, 3, 15, 3, 59, 59, tzinfo=UTC)  # 23:59:59 on the 14th there
    assert stats(client, token).json()["date"] == "2026-03-13"
    response = stats(client, token, {"date": "2026-03-14"})
    assert response.status_code == 400
    assert response.json()["msg"].startswith(
        "date 2026-03-14 is after T-1 (2026-03-13 in America/New_York)"
    )


# -- bad bodies ----------------------------------------------------------------------------

IDS_RULE = "app_ids must be an array of at most 10 app id strings"
NOT_JSON = "the body is not valid JSON"


@pytest.mark.parametrize(
    ("body", "msg"),
    [
        ({"skip": "a"}, "skip must be an integer >= 0"),
        ({"skip": -1}, "skip must be an integer >= 0"),
        ({"skip": 1.5}, "skip must be an integer >= 0"),
        ({"skip": True}, "skip must be an integer >= 0"),
        ({"limit": 0}, "limit must be an integer from 1 to 100"),
        ({"limit": 101}, "limit must be an integer from 1 to 100"),
        ({"limit": "20"}, "limit must be an integer from 1 to 100"),
        ({"app_ids": [str(n) for n in range(11)]}, IDS_RULE),
        ({"app_ids": "crm"}, IDS_RULE),
        ({"app_ids": [1]}, IDS_RULE),
        ({"date": 20260314}, "date must be a string in yyyy-MM-dd format (empty or null: T-1)"),
        (b"{", f"{NOT_JSON}: Input data was truncated"),
        (b"date=2026-03-14", f"{NOT_JSON}: JSON is malformed: invalid character (byte 0)"),
        ([], "the body must be a JSON object"),
        ("2026-03-14", "the body must be a JSON object"),
    ],
)
def test_bad_bodies_are_400_with_code_4000(
    client: TestClient, acme: str, body: Any, msg: str
) -> None:
    response = stats(client, acme, body)
    assert response.status_code == 400
    assert response.json() == {"code": 4000, "msg": msg}


def test_ten_app_ids_are_allowed(client: TestClient, acme: str) -> None:
    body = {"date": "2026-03-14", "app_ids": ["crm", *[f"x{n}" for n in range(9)]]}
    assert ids(stats(client, acme, body).json()) == ["crm"]


def test_unknown_body_fields_are_ignored(client: TestClient, acme: str) -> None:
    response = stats(client, acme, {"date": "2026-03-14", "app_ids": ["hr"], "extra": 1})
    assert response.json()["items"] == [HR]


def test_a_too_large_body_is_413(client: TestClient, acme: str) -> None:
    response = stats(client, acme, b'{"date": "' + b" " * 70_000 + b'"}')
    assert response.status_code == 413
    assert response.json() == {
        "code": 4130,
        "msg": "the body is larger than the limit of 65536 bytes",
    }


# -- auth ----------------------------------------------------------------------------------


def test_no_token_is_401(client: TestClient) -> None:
    response = client.post(URL, json={})
    assert response.status_code == 401
    assert response.json() == {"code": 4010, "msg": "this call needs a token"}
    assert response.headers["x-request-id"]


def test_unknown_token_is_401(client: TestClient) -> None:
    response = client.post(URL, json={}, headers=bearer("tly_nope"))
    assert response.status_code == 401
    assert response.json() == {"code": 4011, "msg": "the token is not valid"}


def test_environment_admin_token_is_403(client: TestClient, acme: str) -> None:
    response = client.post(URL, json={}, headers=bearer(ADMIN))
    assert response.status_code == 403
    assert response.json() == {
        "code": 4030,
        "msg": "the environment admin's token names no organization: call this API with an"
        " organization token holding the read scope",
    }


def test_token_without_read_is_403(client: TestClient, acme: str, admin: Admin) -> None:
    token = admin.token("acme", "ingest", "admin")
    response = stats(client, token)
    assert response.status_code == 403
    assert response.json() == {"code": 4030, "msg": 'this token lacks the "read" scope'}


def test_operation_is_in_the_openapi_document(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"][URL]["post"]
    assert operation["security"] == [{"bearer": []}]
    assert "AppUsageStatsRequest" in document["components"]["schemas"]


# -- the rate limit ------------------------------------------------------------------------


@pytest.fixture
def limited(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    """A Tally of its own with the limit on (1 request/s per key), on the pinned clock."""
    limited_settings = dataclasses.replace(
        settings, db_path=tmp_path / "limited.duckdb", apps_rate_limit_per_second=1.0
    )
    instance = Tally(limited_settings)
    instance.access.bootstrap_admin(limited_settings.admin_token)
    with TestClient(create_app(instance)) as test_client:
        yield test_client
    instance.close()


@pytest.fixture
def keys(limited: TestClient) -> tuple[str, str]:
    """Two read tokens of one organization."""
    admin = Admin(limited)
    admin.org("acme")
    return admin.token("acme", "read"), admin.token("acme", "read")


def test_second_call_in_the_same_second_is_429(
    limited: TestClient, keys: tuple[str, str], clock: FixedClock
) -> None:
    first, _ = keys
    assert stats(limited, first).status_code == 200
    clock.now += timedelta(milliseconds=899)  # the tolerance is 100 ms: due at 900 ms
    response = stats(limited, first)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "code": 8303,
        "msg": "too many requests: at most 1 per second per key; retry in 1 s",
    }
    clock.now += timedelta(milliseconds=1)
    assert stats(limited, first).status_code == 200


def test_calls_a_second_apart_with_jitter_all_pass(
    limited: TestClient, keys: tuple[str, str], clock: FixedClock
) -> None:
    """A client spacing its calls 1 s apart by its own clock: a network delay that varies by up
    to 100 ms (here +-50 ms) must not get it refused (the contract's 10% tolerance)."""
    first, _ = keys
    start = clock.now
    for second, jitter_ms in enumerate([0, -50, 50, -50, 0, 50, -50, -50]):
        clock.now = start + timedelta(seconds=second, milliseconds=jitter_ms)
        assert stats(limited, first).status_code == 200, (second, jitter_ms)


def test_a_run_of_early_calls_is_refused_once_the_tolerance_is_spent(
    limited: TestClient, keys: tuple[str, str], clock: FixedClock
) -> None:
    """Calls 950 ms apart gain 50 ms each: the third is 100 ms ahead (allowed), the fourth
    150 ms (refused). Tolerance is jitter, not a faster rate."""
    first, _ = keys
    start = clock.now
    answers = []
    for i in range(4):
        clock.now = start + timedelta(milliseconds=950 * i)
        answers.append(stats(limited, first).status_code)
    assert answers == [200, 200, 200, 429]


def test_no_burst_after_an_idle_period(
    limited: TestClient, keys: tuple[str, str], clock: FixedClock
) -> None:
    """An idle key saves no credit: after a quiet minute, five calls at one instant get one
    answer and four 429s."""
    first, _ = keys
    assert stats(limited, first).status_code == 200
    clock.now += timedelta(seconds=10)
    assert [stats(limited, first).status_code for _ in range(5)] == [200, 429, 429, 429, 429]
    clock.now += timedelta(seconds=60)
    assert [stats(limited, first).status_code for _ in range(5)] == [200, 429, 429, 429, 429]


def test_another_key_is_not_limited(
    limited: TestClient, keys: tuple[str, str], clock: FixedClock
) -> None:
    first, second = keys
    assert stats(limited, first).status_code == 200
    assert stats(limited, second).status_code == 200
    assert stats(limited, first).status_code == 429


def test_a_refused_call_does_not_push_the_wait_further(
    limited: TestClient, keys: tuple[str, str], clock: FixedClock
) -> None:
    first, _ = keys
    assert stats(limited, first).status_code == 200
    for _ in range(3):
        clock.now += timedelta(milliseconds=250)
        assert stats(limited, first).status_code == 429
    clock.now += timedelta(milliseconds=150)  # 900 ms after the answered call: 1 s less 10%
    assert stats(limited, first).status_code == 200


def test_a_bad_request_counts_against_the_limit(limited: TestClient, keys: tuple[str, str]) -> None:
    first, _ = keys
    assert stats(limited, first, {"limit": 0}).status_code == 400
    assert stats(limited, first).status_code == 429


def test_unauthenticated_calls_do_not_count(limited: TestClient, keys: tuple[str, str]) -> None:
    first, _ = keys
    assert limited.post(URL, json={}).status_code == 401
    assert limited.post(URL, json={}, headers=bearer("tly_nope")).status_code == 401
    assert stats(limited, first).status_code == 200


def test_a_slower_limit_waits_longer(settings: Settings, tmp_path: Path, clock: FixedClock) -> None:
    slow = dataclasses.replace(
        settings, db_path=tmp_path / "slow.duckdb", apps_rate_limit_per_second=0.25
    )
    with Tally(slow) as instance, TestClient(create_app(instance)) as client:
        instance.access.bootstrap_admin(slow.admin_token)
        admin = Admin(client)
        admin.org("acme")
        token = admin.token("acme", "read")
        assert stats(client, token).status_code == 200
        clock.now += timedelta(seconds=1, milliseconds=500)
        response = stats(client, token)
        assert (response.status_code, response.headers["retry-after"]) == (429, "3")


def test_a_faster_limit_allows_one_request_per_interval(clock: FixedClock) -> None:
    """3 per second: one request per 333,333 µs, each at most 33,333 µs early; no burst."""
    limiter = RateLimiter(3.0, clock)
    limiter.hit("k")
    with pytest.raises(RateLimited) as refused:
        limiter.hit("k")
    assert refused.value.retry_after == 1
    clock.now += timedelta(microseconds=300_000 - 1)  # 33,334 µs early: refused
    with pytest.raises(RateLimited):
        limiter.hit("k")
    clock.now += timedelta(microseconds=1)  # 33,333 µs early: let through
    limiter.hit("k")
    with pytest.raises(RateLimited):
        limiter.hit("k")


def test_a_zero_limit_is_off(clock: FixedClock) -> None:
    limiter = RateLimiter(0, clock)
    for _ in range(100):
        limiter.hit("k")
    assert limiter.enabled is False
