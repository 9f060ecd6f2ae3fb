"""The per-member usage API (``developerUsage``) against hand-worked fixtures, every expected
answer written out here; then an oracle: seeded random events recomputed in plain Python."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tally.engine.department_usage import subtree_spans
from tally.service import Tally
from tally.stores.duckdb import DuckDBStore
from tally.timeutil import to_micros
from tests.conftest import ADMIN, Admin
from tests.test_lingma import (
    assert_request_id,
    chat,
    code,
    completion,
    departments,
    member,
    paging,
    send,
)

URL = "/oapi/v1/lingma/organizations/{org}/developerUsage"

# Instants as epoch milliseconds, worked out once by hand.
SH_2026_03_02 = 1772380800000  # 2026-03-02T00:00:00+08:00
SH_2026_03_03 = 1772467200000  # 2026-03-03T00:00:00+08:00
SH_2026_03_04 = 1772553600000
NY_2026_03_08 = 1772946000000  # 2026-03-08T00:00:00-05:00 (a 23-hour day: DST from 02:00)
NY_2026_03_09 = 1773028800000  # 2026-03-09T00:00:00-04:00

ROW_KEYS = [
    "breakdown",
    "date",
    "statusActive",
    "statusActiveChat",
    "statusActiveCompletion",
    "statusActiveLastedTime",
    "totalChatTurns",
    "totalLinesAccepted",
    "totalLinesChanged",
    "userId",
]


def developer_usage(
    client: TestClient, org: str, token: str | None, **params: str
) -> httpx.Response:
    headers = {} if token is None else {"x-yunxiao-token": token}
    response: httpx.Response = client.get(URL.format(org=org), params=params, headers=headers)
    return response


def rows(client: TestClient, org: str, token: str, **params: str) -> list[dict[str, Any]]:
    response = developer_usage(client, org, token, **params)
    assert response.status_code == 200, response.text
    answer: list[dict[str, Any]] = response.json()
    return answer


def activity(event_id: str, time: str, who: str) -> dict[str, Any]:
    return {"id": event_id, "time": time, "type": "activity", "member": who}


@pytest.fixture
def acme(admin: Admin) -> str:
    """Acme (UTC+8): eng with children eng-web and eng-app; sales beside it. A read token."""
    admin.org("acme")
    departments(admin, "acme", {"eng": None, "eng-web": "eng", "eng-app": "eng", "sales": None})
    return admin.token("acme", "read")


# -- what the rows hold ----------------------------------------------------------------------


def test_one_row_per_active_member_day_with_its_breakdown(
    client: TestClient, admin: Admin, acme: str
) -> None:
    member(admin, "acme", "alice", ["eng-web"])
    member(admin, "acme", "bob", ["sales"])
    member(admin, "acme", "carol", ["eng-app"])
    send(
        admin,
        "acme",
        [
            completion("a1", "2026-03-02T10:00:00+08:00", "alice", suggested=4, accepted=3),
            completion(
                "a2", "2026-03-02T09:15:30.123456+08:00", "alice", 2, None, "jetbrains", "python"
            ),
            chat("a3", "2026-03-02T11:00:00+08:00", "alice", "FREE_INPUT", accepted=True),
            code("a4", "2026-03-02T12:00:00+08:00", "alice", "chat", 10, 12, "java"),
            # Bob is active by a code event only.
            code("b1", "2026-03-02T14:00:00+08:00", "bob", "completion", 5, 5, "go"),
            # Carol's platform activity is no assistant usage: no row on 03-02.
            activity("c0", "2026-03-02T15:00:00+08:00", "carol"),
            completion("c1", "2026-03-03T10:00:00+08:00", "carol", suggested=1, accepted=1),
        ],
    )

    response = developer_usage(client, "acme", acme, startTime="2026-03-01", endTime="2026-03-07")

    assert response.status_code == 200
    answer = response.json()
    assert answer == [
        {
            "breakdown": {
                "chatting": [
                    {
                        "chatTurns": 1,
                        "chatTurnsAccepted": 1,
                        "chatType": "FREE_INPUT",
                        "ide": "vscode",
                    }
                ],
                "coding": [
                    {
                        "acceptAssistantNewlineCount": 10,
                        "language": "java",
                        "linesAccepted": 10,
                        "linesChanged": 12,
                    }
                ],
                "completion": [
                    {
                        "countAccepted": 0,
                        "countSuggested": 1,
                        "ide": "jetbrains",
                        "language": "python",
                        "linesAccepted": 0,
                        "linesSuggested": 2,
                    },
                    {
                        "countAccepted": 1,
                        "countSuggested": 1,
                        "ide": "vscode",
                        "language": "java",
                        "linesAccepted": 3,
                        "linesSuggested": 4,
                    },
                ],
            },
            "date": SH_2026_03_02,
            "statusActive": True,
            "statusActiveChat": True,
            "statusActiveCompletion": True,
            "statusActiveLastedTime": 1772424000000,  # 12:00 local, the code event
            "totalChatTurns": 1,
            "totalLinesAccepted": 10,
            "totalLinesChanged": 12,
            "userId": "alice",
        },
        {
            "breakdown": {
                "chatting": [],
                "coding": [
                    {
                        "acceptAssistantNewlineCount": 0,
                        "language": "go",
                        "linesAccepted": 5,
                        "linesChanged": 5,
                    }
                ],
                "completion": [],
            },
            "date": SH_2026_03_02,
            "statusActive": True,
            "statusActiveChat": False,
            "statusActiveCompletion": False,
            "statusActiveLastedTime": 1772431200000,  # 14:00 local
            "totalChatTurns": 0,
            "totalLinesAccepted": 5,
            "totalLinesChanged": 5,
            "userId": "bob",
        },
        {
            "breakdown": {
                "chatting": [],
                "coding": [],
                "completion": [
                    {
                        "countAccepted": 1,
                        "countSuggested": 1,
                        "ide": "vscode",
                        "language": "java",
                        "linesAccepted": 1,
                        "linesSuggested": 1,
                    }
                ],
            },
            "date": SH_2026_03_03,
            "statusActive": True,
            "statusActiveChat": False,
            "statusActiveCompletion": True,
            "statusActiveLastedTime": 1772503200000,  # 2026-03-03T10:00+08:00
            "totalChatTurns": 0,
            "totalLinesAccepted": 0,
            "totalLinesChanged": 0,
            "userId": "carol",
        },
    ]
    # The fields in the order the contract lists them, entries without activeDeveloper.
    first = answer[0]
    assert list(first) == ROW_KEYS
    assert list(first["breakdown"]) == ["chatting", "coding", "completion"]
    assert list(first["breakdown"]["chatting"][0]) == [
        "chatTurns",
        "chatTurnsAccepted",
        "chatType",
        "ide",
    ]
    assert list(first["breakdown"]["coding"][0]) == [
        "acceptAssistantNewlineCount",
        "language",
        "linesAccepted",
        "linesChanged",
    ]
    assert list(first["breakdown"]["completion"][0]) == [
        "countAccepted",
        "countSuggested",
        "ide",
        "language",
        "linesAccepted",
        "linesSuggested",
    ]


def test_status_active_lasted_time_truncates_to_milliseconds(
    client: TestClient, admin: Admin, acme: str
) -> None:
    member(admin, "acme", "alice", ["eng"])
    send(admin, "acme", [completion("a1", "2026-03-02T09:15:30.123999+08:00", "alice")])

    (row,) = rows(client, "acme", acme, startTime="2026-03-02", endTime="2026-03-02")

    assert row["statusActiveLastedTime"] == 1772414130123  # .123999 s -> 123 ms


def test_rows_order_by_date_then_user_id_in_code_point_order(
    client: TestClient, admin: Admin, acme: str
) -> None:
    for who in ("b", "B", "a", "_"):
        member(admin, "acme", who, ["eng"])
    send(
        admin,
        "acme",
        [
            completion("1", "2026-03-03T10:00:00+08:00", "a"),
            completion("2", "2026-03-02T10:00:00+08:00", "b"),
            completion("3", "2026-03-02T11:00:00+08:00", "B"),
            completion("4", "2026-03-02T12:00:00+08:00", "_"),
            completion("5", "2026-03-02T13:00:00+08:00", "a"),
        ],
    )

    answer = rows(client, "acme", acme, startTime="2026-03-01", endTime="2026-03-07")

    assert [(r["date"], r["userId"]) for r in answer] == [
        (SH_2026_03_02, "B"),  # "B" (0x42) < "_" (0x5F) < "a" (0x61) < "b"
        (SH_2026_03_02, "_"),
        (SH_2026_03_02, "a"),
        (SH_2026_03_02, "b"),
        (SH_2026_03_03, "a"),
    ]


def test_member_who_moved_mid_day_counts_for_the_subtree_only_inside_it(
    client: TestClient, admin: Admin, acme: str
) -> None:
    member(admin, "acme", "dave", ["eng-web"])  # first version from 2026-01-01
    member(admin, "acme", "dave", ["sales"], effective_at="2026-03-02T12:00:00+08:00")
    send(
        admin,
        "acme",
        [
            completion("d1", "2026-03-02T10:00:00+08:00", "dave", suggested=3, accepted=2),
            chat("d2", "2026-03-02T11:59:59+08:00", "dave", "EXPLAIN_CODE", accepted=False),
            # From the move's instant on, dave is in sales.
            code("d3", "2026-03-02T12:00:00+08:00", "dave", "chat", 7, 8, "java"),
            completion("d4", "2026-03-02T16:30:00+08:00", "dave", suggested=5),
        ],
    )
    window = {"startTime": "2026-03-02", "endTime": "2026-03-02"}

    (eng,) = rows(client, "acme", acme, departmentId="eng", **window)
    (sales,) = rows(client, "acme", acme, departmentId="sales", **window)
    (everything,) = rows(client, "acme", acme, **window)

    assert eng == {
        "breakdown": {
            "chatting": [
                {
                    "chatTurns": 1,
                    "chatTurnsAccepted": 0,
                    "chatType": "EXPLAIN_CODE",
                    "ide": "vscode",
                }
            ],
            "coding": [],
            "completion": [
                {
                    "countAccepted": 1,
                    "countSuggested": 1,
                    "ide": "vscode",
                    "language": "java",
                    "linesAccepted": 2,
                    "linesSuggested": 3,
                }
            ],
        },
        "date": SH_2026_03_02,
        "statusActive": True,
        "statusActiveChat": True,
        "statusActiveCompletion": True,
        "statusActiveLastedTime": 1772423999000,  # 11:59:59 local, the last event in eng
        "totalChatTurns": 1,
        "totalLinesAccepted": 0,
        "totalLinesChanged": 0,
        "userId": "dave",
    }
    assert sales == {
        "breakdown": {
            "chatting": [],
            "coding": [
                {
                    "acceptAssistantNewlineCount": 7,
                    "language": "java",
                    "linesAccepted": 7,
                    "linesChanged": 8,
                }
            ],
            "completion": [
                {
                    "countAccepted": 0,
                    "countSuggested": 1,
                    "ide": "vscode",
                    "language": "java",
                    "linesAccepted": 0,
                    "linesSuggested": 5,
                }
            ],
        },
        "date": SH_2026_03_02,
        "statusActive": True,
        "statusActiveChat": False,
        "statusActiveCompletion": True,
        "statusActiveLastedTime": 1772440200000,  # 16:30 local
        "totalChatTurns": 0,
        "totalLinesAccepted": 7,
        "totalLinesChanged": 8,
        "userId": "dave",
    }
    # The whole org: all four events, the day's last at 16:30.
    assert everything["statusActiveLastedTime"] == 1772440200000
    assert everything["totalChatTurns"] == 1
    assert everything["totalLinesAccepted"] == 7
    assert len(everything["breakdown"]["completion"]) == 1
    assert everything["breakdown"]["completion"][0]["countSuggested"] == 2


def test_last_event_at_23_59_59_local_in_utc_plus_8(
    client: TestClient, admin: Admin, acme: str
) -> None:
    member(admin, "acme", "alice", ["eng"])
    send(
        admin,
        "acme",
        [
            completion("a1", "2026-03-02T08:00:00+08:00", "alice"),
            # 15:59:59 UTC: still 2026-03-02 at UTC+8, its last second.
            chat("a2", "2026-03-02T15:59:59Z", "alice", "FREE_INPUT", accepted=True),
            # 16:00:00 UTC is 2026-03-03 00:00 local: the next day's row.
            completion("a3", "2026-03-02T16:00:00Z", "alice"),
        ],
    )

    answer = rows(client, "acme", acme, startTime="2026-03-02", endTime="2026-03-03")

    assert [(r["date"], r["statusActiveLastedTime"], r["statusActiveChat"]) for r in answer] == [
        (SH_2026_03_02, 1772467199000, True),  # 2026-03-02T23:59:59+08:00
        (SH_2026_03_03, SH_2026_03_03, False),  # exactly the next local midnight
    ]


def test_last_event_at_23_59_59_local_on_the_new_york_dst_day(
    client: TestClient, admin: Admin
) -> None:
    admin.org("globex", timezone="America/New_York")
    departments(admin, "globex", {"hq": None})
    token = admin.token("globex", "read")
    member(admin, "globex", "gina", ["hq"])
    send(
        admin,
        "globex",
        [
            # 2026-03-08 in New York: 00:00-05:00 to 24:00-04:00 (23 hours).
            completion("g1", "2026-03-08T00:00:00-05:00", "gina"),
            code("g2", "2026-03-08T23:59:59-04:00", "gina", "completion", 2, 3, "rust"),
            completion("g3", "2026-03-09T00:00:00-04:00", "gina"),
            # Outside the window (the day before): not read.
            completion("g0", "2026-03-07T23:59:59-05:00", "gina"),
        ],
    )

    answer = rows(client, "globex", token, startTime="2026-03-08", endTime="2026-03-09")

    assert [(r["date"], r["statusActiveLastedTime"], r["totalLinesChanged"]) for r in answer] == [
        (NY_2026_03_08, 1773028799000, 3),  # 2026-03-08T23:59:59-04:00
        (NY_2026_03_09, NY_2026_03_09, 0),
    ]


def test_user_id_wins_over_department_id_which_is_not_even_looked_up(
    client: TestClient, admin: Admin, acme: str
) -> None:
    member(admin, "acme", "alice", ["eng"])
    member(admin, "acme", "bob", ["sales"])
    send(
        admin,
        "acme",
        [
            completion("a1", "2026-03-02T10:00:00+08:00", "alice"),
            completion("b1", "2026-03-02T11:00:00+08:00", "bob"),
        ],
    )
    window = {"startTime": "2026-03-01", "endTime": "2026-03-07"}

    # Bob is not in eng, yet userId wins: bob's whole usage.
    both = rows(client, "acme", acme, userId="bob", departmentId="eng", **window)
    unknown_department = rows(client, "acme", acme, userId="bob", departmentId="nope", **window)
    by_department = rows(client, "acme", acme, departmentId="eng", **window)

    assert [(r["userId"], r["statusActiveLastedTime"]) for r in both] == [("bob", 1772420400000)]
    assert unknown_department == both
    assert [r["userId"] for r in by_department] == ["alice"]


def test_pages_carry_every_vendor_header(client: TestClient, admin: Admin, acme: str) -> None:
    for who in ("ann", "ben"):
        member(admin, "acme", who, ["eng"])
    send(
        admin,
        "acme",
        [
            completion("a2", "2026-03-02T10:00:00+08:00", "ann"),
            completion("b2", "2026-03-02T10:00:00+08:00", "ben"),
            completion("a3", "2026-03-03T10:00:00+08:00", "ann"),
        ],
    )
    window = {"departmentId": "eng", "startTime": "2026-03-01", "endTime": "2026-03-14"}

    def page(**params: str) -> tuple[list[tuple[int, str]], dict[str, str]]:
        response = developer_usage(client, "acme", acme, **window, **params)
        assert response.status_code == 200
        assert_request_id(response)
        return [(r["date"], r["userId"]) for r in response.json()], paging(response)

    def headers(page: int, next_page: str, per_page: int = 2, pages: int = 2) -> dict[str, str]:
        return {
            "x-next-page": next_page,
            "x-page": str(page),
            "x-per-page": str(per_page),
            "x-prev-page": str(page - 1),
            "x-total": "3",
            "x-total-pages": str(pages),
        }

    assert page(page="1", perPage="2") == (
        [(SH_2026_03_02, "ann"), (SH_2026_03_02, "ben")],
        headers(1, "2"),
    )
    assert page(page="2", perPage="2") == ([(SH_2026_03_03, "ann")], headers(2, "3"))
    assert page(page="3", perPage="2") == ([], headers(3, ""))
    assert page() == (
        [(SH_2026_03_02, "ann"), (SH_2026_03_02, "ben"), (SH_2026_03_03, "ann")],
        headers(1, "2", per_page=100, pages=1),
    )


def test_window_without_rows_answers_an_empty_list_and_zero_pages(
    client: TestClient, admin: Admin, acme: str
) -> None:
    member(admin, "acme", "alice", ["eng"])

    response = developer_usage(client, "acme", acme, startTime="2026-02-01", endTime="2026-02-28")

    assert response.status_code == 200
    assert response.content == b"[]"
    assert paging(response) == {
        "x-next-page": "",
        "x-page": "1",
        "x-per-page": "100",
        "x-prev-page": "0",
        "x-total": "0",
        "x-total-pages": "0",
    }


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "status", "code", "message"),
    [
        (
            {"userId": "nobody"},
            404,
            "NotFound",
            'member "nobody" does not exist',
        ),
        (
            {"departmentId": "nope"},
            404,
            "NotFound",
            'department "nope" does not exist',
        ),
        ({"startTime": None}, 400, "BadRequest", "startTime is required"),
        (
            {"endTime": "2026-02-28"},
            400,
            "BadRequest",
            "endTime must not be before startTime",
        ),
        ({"perPage": "101"}, 400, "BadRequest", "perPage must be an integer from 1 to 100"),
        ({"page": "0"}, 400, "BadRequest", "page must be an integer >= 1"),
    ],
)
def test_bad_requests_answer_in_the_family_shape(
    client: TestClient,
    acme: str,
    params: dict[str, str | None],
    status: int,
    code: str,
    message: str,
) -> None:
    valid = {"startTime": "2026-03-01", "endTime": "2026-03-07"}
    query = {k: v for k, v in {**valid, **params}.items() if v is not None}

    response = developer_usage(client, "acme", acme, **query)

    assert response.status_code == status
    assert response.json() == {
        "errorCode": code,
        "errorMessage": message,
        "requestId": assert_request_id(response),
    }


@pytest.mark.parametrize(
    ("org", "who", "status", "code", "message"),
    [
        ("acme", "nobody", 401, "Unauthorized", "this call needs a token"),
        (
            "acme",
            "globex-reader",
            403,
            "Forbidden",
            "this token does not grant access to that organization",
        ),
        (
            "nowhere",
            "globex-reader",
            403,
            "Forbidden",
            "this token does not grant access to that organization",
        ),
        ("acme", "acme-ingester", 403, "Forbidden", 'this token lacks the "read" scope'),
        ("nowhere", "environment-admin", 404, "NotFound", 'organization "nowhere" does not exist'),
    ],
)
def test_token_problems_answer_in_the_family_shape(
    client: TestClient,
    admin: Admin,
    acme: str,
    org: str,
    who: str,
    status: int,
    code: str,
    message: str,
) -> None:
    admin.org("globex", timezone="America/New_York")
    tokens = {
        "nobody": None,
        "globex-reader": admin.token("globex", "read"),
        "acme-ingester": admin.token("acme", "ingest", "admin"),
        "environment-admin": ADMIN,
    }

    # Authentication comes before validation: the parameters here are bad too.
    response = developer_usage(client, org, tokens[who], userId="nobody", startTime="yesterday")

    assert response.status_code == status
    assert response.json() == {
        "errorCode": code,
        "errorMessage": message,
        "requestId": assert_request_id(response),
    }


# -- the oracle: random events, recomputed in plain Python -----------------------------------

ORACLE_MEMBERS = ["m0", "m1", "m2", "m3", "M4", "m5"]
ORACLE_DEPARTMENTS = {"eng": None, "eng-web": "eng", "eng-app": "eng", "sales": None}
SUBTREES = {"eng": {"eng", "eng-web", "eng-app"}, "eng-web": {"eng-web"}, "sales": {"sales"}}
MOVE_AT = "2026-03-03T13:30:00+08:00"
UTC_8 = timezone(timedelta(hours=8))


def _random_event(rng: random.Random, n: int) -> dict[str, Any]:
    start = datetime.fromisoformat("2026-03-01T20:00:00+08:00")
    when = start + timedelta(
        seconds=rng.randrange(0, 4 * 86_400), microseconds=rng.randrange(10**6)
    )
    who = rng.choice(ORACLE_MEMBERS)
    kind = rng.choice(["completion", "chat", "code", "activity"])
    time = when.isoformat()
    if kind == "completion":
        accepted = rng.random() < 0.5
        suggested = rng.randrange(0, 9)
        return completion(
            f"e{n}",
            time,
            who,
            suggested,
            rng.randrange(0, suggested + 1) if accepted else None,
            rng.choice(["vscode", "jetbrains"]),
            rng.choice(["java", "go", "Python"]),
        )
    if kind == "chat":
        chat_type = rng.choice(["FREE_INPUT", "EXPLAIN_CODE", "refactor"])
        return chat(
            f"e{n}", time, who, chat_type, rng.random() < 0.5, rng.choice(["vscode", "vim"])
        )
    if kind == "code":
        return code(
            f"e{n}",
            time,
            who,
            rng.choice(["chat", "completion"]),
            rng.randrange(0, 20),
            rng.randrange(0, 20),
            rng.choice(["java", "go"]),
        )
    return activity(f"e{n}", time, who)


def _departments_at(who: str, instant: datetime) -> set[str]:
    """The oracle's directory: m0, m1 in eng-web; m2 in eng-app; m3 in sales; M4 moves from
    eng-web to sales at MOVE_AT; m5 in eng-web and sales."""
    if who == "M4":
        return {"eng-web"} if instant < datetime.fromisoformat(MOVE_AT) else {"sales"}
    return {
        "m0": {"eng-web"},
        "m1": {"eng-web"},
        "m2": {"eng-app"},
        "m3": {"sales"},
        "m5": {"eng-web", "sales"},
    }[who]


def _oracle(events: list[dict[str, Any]], subtree: set[str] | None, who: str | None) -> list[Any]:
    """Per (day, member) figures from the events, in plain Python (UTC+8 days)."""
    by_key: dict[tuple[date, str], list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        instant = datetime.fromisoformat(event["time"])
        if event["type"] not in ("completion", "chat", "code"):
            continue
        if who is not None and event["member"] != who:
            continue
        if subtree is not None and not subtree & _departments_at(event["member"], instant):
            continue
        by_key[instant.astimezone(UTC_8).date(), event["member"]].append(event)
    answer = []
    for (day, member_id), its in sorted(by_key.items()):
        completions: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        chats: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        codes: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for e in its:
            if e["type"] == "completion":
                c = completions[e["ide"], e["language"]]
                c[0] += int(e["accepted"])
                c[1] += 1
                c[2] += e["lines_accepted"]
                c[3] += e["lines_suggested"]
            elif e["type"] == "chat":
                h = chats[e["chat_type"], e["ide"]]
                h[0] += 1
                h[1] += int(e["accepted"])
            else:
                k = codes[e["language"]]
                k[0] += e["lines_accepted"] if e["source"] == "chat" else 0
                k[1] += e["lines_accepted"]
                k[2] += e["lines_changed"]
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC_8)
        last = max(datetime.fromisoformat(e["time"]) for e in its)
        answer.append(
            {
                "breakdown": {
                    "chatting": [
                        {"chatTurns": t, "chatTurnsAccepted": a, "chatType": ct, "ide": ide}
                        for (ct, ide), (t, a) in sorted(chats.items())
                    ],
                    "coding": [
                        {
                            "acceptAssistantNewlineCount": nl,
                            "language": lang,
                            "linesAccepted": la,
                            "linesChanged": lc,
                        }
                        for lang, (nl, la, lc) in sorted(codes.items())
                    ],
                    "completion": [
                        {
                            "countAccepted": ca,
                            "countSuggested": cs,
                            "ide": ide,
                            "language": lang,
                            "linesAccepted": la,
                            "linesSuggested": ls,
                        }
                        for (ide, lang), (ca, cs, la, ls) in sorted(completions.items())
                    ],
                },
                "date": to_micros(midnight) // 1000,
                "statusActive": True,
                "statusActiveChat": bool(chats),
                "statusActiveCompletion": bool(completions),
                "statusActiveLastedTime": to_micros(last) // 1000,
                "totalChatTurns": sum(t for t, _ in chats.values()),
                "totalLinesAccepted": sum(la for _, la, _ in codes.values()),
                "totalLinesChanged": sum(lc for _, _, lc in codes.values()),
                "userId": member_id,
            }
        )
    return answer


def _all_pages(client: TestClient, token: str, per_page: int, **params: str) -> list[Any]:
    collected: list[Any] = []
    page = 1
    while True:
        response = developer_usage(
            client, "acme", token, page=str(page), perPage=str(per_page), **params
        )
        assert response.status_code == 200, response.text
        if not response.json():
            assert response.headers["x-next-page"] == ""
            return collected
        assert response.headers["x-next-page"] == str(page + 1)
        collected += response.json()
        page += 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_events_match_a_plain_python_recount(
    client: TestClient, admin: Admin, tally: Tally, seed: int
) -> None:
    rng = random.Random(seed)
    admin.org("acme")
    departments(admin, "acme", ORACLE_DEPARTMENTS)
    token = admin.token("acme", "read")
    first_departments = {"m2": ["eng-app"], "m3": ["sales"], "m5": ["eng-web", "sales"]}
    for who in ORACLE_MEMBERS:
        member(admin, "acme", who, first_departments.get(who, ["eng-web"]))
    member(admin, "acme", "M4", ["sales"], effective_at=MOVE_AT)
    events = [_random_event(rng, n) for n in range(300)]
    send(admin, "acme", events[:150])
    tally.refresh_rollups("acme")  # some days' second-level rollups fresh, then more events
    send(admin, "acme", events[150:])
    window = {"startTime": "2026-03-02", "endTime": "2026-03-04"}  # cuts the first/last hours

    for params, subtree, only in [
        ({}, None, None),
        ({"departmentId": "eng"}, SUBTREES["eng"], None),
        ({"departmentId": "eng-web"}, SUBTREES["eng-web"], None),
        ({"departmentId": "sales"}, SUBTREES["sales"], None),
        ({"userId": "M4"}, None, "M4"),
        ({"userId": "m5", "departmentId": "eng-app"}, None, "m5"),
    ]:
        expected = _oracle(
            [e for e in events if "2026-03-02" <= _local_date(e) <= "2026-03-04"], subtree, only
        )
        assert expected, params
        assert _all_pages(client, token, 7, **window, **params) == expected, params
        one_page = developer_usage(client, "acme", token, **window, **params)
        assert one_page.json() == expected
        assert one_page.headers["x-total"] == str(len(expected))


def _local_date(event: dict[str, Any]) -> str:
    return datetime.fromisoformat(event["time"]).astimezone(UTC_8).date().isoformat()


# -- the stores: the rollups' answer equals the raw events' (and the base default's) ---------


def test_rollups_and_raw_events_answer_the_same(
    client: TestClient, admin: Admin, tally: Tally
) -> None:
    rng = random.Random(7)
    admin.org("acme")
    departments(admin, "acme", ORACLE_DEPARTMENTS)
    for who in ORACLE_MEMBERS:
        member(admin, "acme", who, ["eng-web"])
    member(admin, "acme", "M4", ["sales"], effective_at=MOVE_AT)
    send(admin, "acme", [_random_event(rng, n) for n in range(200)])
    store = tally.event_store
    assert isinstance(store, DuckDBStore)
    directory = tally.directory.require("acme")
    first, last = date(2026, 3, 2), date(2026, 3, 4)
    lo = to_micros(datetime.fromisoformat("2026-03-02T00:00:00+08:00"))
    hi = to_micros(datetime.fromisoformat("2026-03-05T00:00:00+08:00"))
    spans = subtree_spans(directory, "sales", lo, hi)
    for offset, limit in [(0, None), (0, 3), (2, 5), (100, 5)]:
        fast = store.member_usage("acme", spans, first, last, offset=offset, limit=limit)
        store.rollups = False
        slow = store.member_usage("acme", spans, first, last, offset=offset, limit=limit)
        store.rollups = True
        assert fast == slow
        assert fast.total > 0
    latest = store.latest_event_times("acme")
    store.rollups = False
    assert store.latest_event_times("acme") == latest
    store.rollups = True
    assert sorted(latest) == sorted(ORACLE_MEMBERS)
