"""Times and dates given as parameters, found by mutation testing (docs/testing.md): the events
list reads ``start`` and ``end`` as RFC 3339 instants with an offset (``timeutil.parse_instant``);
a date or date-time parameter is refused outside the years 2 to 9998 (``timeutil.parse_date``,
``timeutil.parse_date_or_time``)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from starlette.testclient import TestClient

from tally.timeutil import parse_date, parse_date_or_time
from tests.conftest import ADMIN, Admin, bearer


def activity(event_id: str, time: str) -> dict[str, str]:
    return {"id": event_id, "time": time, "type": "activity", "member": "m1"}


# 02:00Z is 10:00 in Shanghai; RFC 3339 lets the Z be written in lower case; digits past the
# microsecond are dropped (.000000999 is .000000, so the event at 10:00:00 is kept)
@pytest.mark.parametrize(
    "start",
    [
        "2026-03-01T02:00:00Z",
        "2026-03-01T02:00:00z",
        "2026-03-01T10:00:00+08:00",
        "2026-03-01T02:00:00.000000999Z",
    ],
)
def test_events_list_keeps_the_events_from_start_up_to_end(
    client: TestClient, admin: Admin, start: str
) -> None:
    admin.org("acme", "Asia/Shanghai")
    admin.put("acme/members/m1", {"name": "Ann", "created_at": "2026-01-01T00:00:00+08:00"})
    admin.events(
        "acme",
        [
            activity("before", "2026-03-01T09:59:59+08:00"),
            activity("at-start", "2026-03-01T10:00:00+08:00"),
            activity("inside", "2026-03-01T10:30:00+08:00"),
            activity("at-end", "2026-03-01T11:00:00+08:00"),
        ],
    )
    # the event at the start is kept, the one at the end is not
    params = {"start": start, "end": "2026-03-01T11:00:00+08:00"}
    response = client.get("/api/v1/orgs/acme/events", params=params, headers=bearer(ADMIN))
    assert response.status_code == 200, response.text
    assert [e["id"] for e in response.json()["events"]] == ["at-start", "inside"]


def test_events_list_refuses_a_start_without_an_offset(client: TestClient, admin: Admin) -> None:
    admin.org("acme", "Asia/Shanghai")
    response = client.get(
        "/api/v1/orgs/acme/events", params={"start": "2026-03-01T10:00:00"}, headers=bearer(ADMIN)
    )
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "start must be an RFC 3339 date-time with an offset, e.g. 2026-03-01T09:00:00+08:00"
    )


def test_dates_of_the_years_2_to_9998_are_read() -> None:
    assert parse_date("0002-01-01") == date(2, 1, 1)
    assert parse_date("9998-12-31") == date(9998, 12, 31)


@pytest.mark.parametrize("text", ["0001-12-31", "9999-01-01"])
def test_dates_outside_the_years_2_to_9998_are_refused_with_the_range(text: str) -> None:
    with pytest.raises(ValueError, match=r"^must be a date with a year from 2 to 9998$"):
        parse_date(text)


def test_date_times_of_the_years_2_to_9998_are_read() -> None:
    assert parse_date_or_time("0002-01-01") == datetime(2, 1, 1)
    assert parse_date_or_time("9998-12-31T23:59:59+14:00") == datetime(
        9998, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=14))
    )


@pytest.mark.parametrize("text", ["0001-12-31T23:59:59", "9999-01-01"])
def test_date_times_outside_the_years_2_to_9998_are_refused_with_the_range(text: str) -> None:
    with pytest.raises(
        ValueError, match=r"^Datetime is out of range: use a year from 2 to 9998\.$"
    ):
        parse_date_or_time(text)
