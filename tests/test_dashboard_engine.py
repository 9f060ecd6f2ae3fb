"""The dashboard's figures without a browser: trailing N-day actives (the DuckDB rollup query
and the stores' default against a plain-Python oracle), the missing-data rule, the acceptance
rate as a ratio of totals, the signed session cookie, and the CSV of a table."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.demo import build_demo
from tally.engine.dashboard import Figures, missing_days
from tally.service import Tally
from tally.settings import Settings
from tally.stores.base import EventStore, MemberSpan
from tally.timeutil import day_end, day_start, to_micros
from tally.web import session
from tally.web.routes import to_csv
from tests.conftest import Admin
from tests.test_dashboard import FIRST, GAP, LAST, build_environment, oracle

MEMBERS = ["m1", "m2", "m3", "m4", "m5"]


def _events(seed: int) -> list[dict[str, Any]]:
    """Random assistant and other events of five members over 40 Shanghai days."""
    rng = random.Random(seed)
    events = []
    for n in range(160):
        day = date(2026, 1, 20) + timedelta(days=rng.randrange(40))
        kind = rng.choice(["completion", "chat", "code", "activity"])
        accepted = rng.random() < 0.5
        fields: dict[str, Any] = {
            "completion": {
                "ide": "vscode",
                "language": "go",
                "lines_suggested": 2 + n % 3,
                "accepted": accepted,
                "lines_accepted": 1 if accepted else 0,
            },
            "chat": {"ide": "vscode", "chat_type": "FREE_INPUT", "accepted": True},
            "code": {"language": "go", "source": "chat", "lines_accepted": 1, "lines_changed": 1},
            "activity": {},
        }[kind]
        hour = rng.choice(["00:10", "12:00", "23:50"])
        events.append(
            {
                "id": f"e{n}",
                "time": f"{day}T{hour}:00+08:00",
                "type": kind,
                "member": rng.choice(MEMBERS),
                **fields,
            }
        )
    return events


def _oracle(events: list[dict[str, Any]], first: date, last: date, n: int) -> list[int]:
    active: dict[date, set[str]] = {}
    for e in events:
        if e["type"] in ("completion", "chat", "code"):
            active.setdefault(date.fromisoformat(e["time"][:10]), set()).add(e["member"])
    out = []
    day = first
    while day <= last:
        members: set[str] = set()
        for k in range(n):
            members |= active.get(day - timedelta(days=k), set())
        out.append(len(members))
        day += timedelta(days=1)
    return out


def test_trailing_actives_of_the_rollups_and_of_the_default_match_the_oracle(
    tally: Tally, admin: Admin
) -> None:
    admin.org("org")
    for member in MEMBERS:
        admin.put(
            f"org/members/{member}",
            {"name": member, "email": f"{member}@x.example", "developer": True,
             "departments": [], "created_at": "2025-01-01T00:00:00Z"},
        )  # fmt: skip
    events = _events(3)
    assert admin.events("org", events)["rejected"] == []
    first, last = date(2026, 2, 1), date(2026, 3, 5)
    lengths = (1, 3, 7, 28)
    start = first - timedelta(days=27)
    tz = "Asia/Shanghai"
    spans = [
        MemberSpan(m, to_micros(day_start(start, tz)), to_micros(day_end(last, tz)))
        for m in MEMBERS
    ]
    store = tally.event_store
    fast = store.trailing_active_members("org", spans, first, last, lengths)
    slow = EventStore.trailing_active_members(store, "org", spans, first, last, lengths)
    for n in lengths:
        want = _oracle(events, first, last, n)
        assert fast[n] == want, n
        assert slow[n] == want, n
    assert max(fast[7]) > 1  # the fixture is not trivially empty
    # Spans that cover part of the window (a member from 2026-02-10 14:30 on, another until
    # 2026-02-03 00:00): the rollups' general reading, against the stores' default.
    cut = [
        MemberSpan("m1", to_micros(datetime(2026, 2, 10, 6, 30, tzinfo=UTC)), spans[0].to_us),
        MemberSpan("m2", spans[1].from_us, to_micros(day_start(date(2026, 2, 3), tz))),
        *spans[2:],
    ]
    fast = store.trailing_active_members("org", cut, first, last, lengths)
    assert fast == EventStore.trailing_active_members(store, "org", cut, first, last, lengths)
    assert fast != store.trailing_active_members("org", spans, first, last, lengths)
    totals = store.assistant_day_totals("org", cut, first, last)
    assert totals == EventStore.assistant_day_totals(store, "org", cut, first, last)


def _day_oracle(events: list[dict[str, Any]], first: date, last: date) -> list[tuple[Any, ...]]:
    days: dict[date, dict[str, Any]] = {}
    for e in events:
        day = date.fromisoformat(e["time"][:10])
        if e["type"] not in ("completion", "chat", "code") or not first <= day <= last:
            continue
        row = days.setdefault(day, {"members": set(), "counts": [0, 0, 0, 0, 0]})
        row["members"].add(e["member"])
        counts = row["counts"]
        if e["type"] == "chat":
            counts[0] += 1
        if e["type"] == "completion":
            counts[1] += 1
            counts[2] += 1 if e["accepted"] else 0
            counts[3] += e["lines_suggested"]
            counts[4] += e["lines_accepted"]
    return [(d, len(days[d]["members"]), *days[d]["counts"]) for d in sorted(days)]


def test_day_totals_of_the_rollups_equal_the_department_usage_sums(
    tally: Tally, admin: Admin
) -> None:
    admin.org("org")
    for member in MEMBERS:
        admin.put(
            f"org/members/{member}",
            {"name": member, "email": f"{member}@x.example", "developer": True,
             "departments": [], "created_at": "2025-01-01T00:00:00Z"},
        )  # fmt: skip
    events = _events(5)
    assert admin.events("org", events)["rejected"] == []
    first, last = date(2026, 1, 25), date(2026, 2, 20)
    tz = "Asia/Shanghai"
    whole = (to_micros(day_start(first, tz)), to_micros(day_end(last, tz)))
    spans = [MemberSpan(m, *whole) for m in MEMBERS]
    store = tally.event_store
    fast = store.assistant_day_totals("org", spans, first, last)
    slow = EventStore.assistant_day_totals(store, "org", spans, first, last)
    want = _day_oracle(events, first, last)
    assert [tuple(msgspec.structs.astuple(r)) for r in fast] == want
    assert fast == slow
    assert sum(r.accepted for r in fast) > 0


def test_a_gap_is_flagged_only_inside_an_otherwise_busy_window() -> None:
    days = [date(2026, 3, d) for d in range(1, 11)]
    today = date(2026, 3, 10)  # still under way: never flagged
    busy = [5, 4, 0, 6, 5, 5, 0, 4, 3, 0]
    assert missing_days(days, busy, today) == {date(2026, 3, 3), date(2026, 3, 7)}
    quiet = [0, 0, 0, 1, 0, 0, 0, 2, 0, 0]  # 2 of 9 past days with events: no gap
    assert missing_days(days, quiet, today) == set()
    half = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]  # 5 of 9: at least half
    assert missing_days(days, half, today) == {date(2026, 3, d) for d in (2, 4, 6, 8)}


def test_acceptance_rate_is_a_ratio_of_totals_not_a_mean_of_daily_rates() -> None:
    day1 = Figures(suggested=1, accepted=1)
    day2 = Figures(suggested=9, accepted=1)
    assert (day1 + day2).acceptance_rate == 0.2  # 2 / 10; the mean of 1.0 and 0.11 is 0.56
    assert Figures().acceptance_rate is None


def test_session_cookie_is_signed_and_expires() -> None:
    key = b"k" * 32
    value = session.encode(key, session.Session("tly_secret", 1_000))
    assert session.decode(key, value, 999) == session.Session("tly_secret", 1_000)
    assert session.decode(key, value, 1_000) is None  # expired
    assert session.decode(b"x" * 32, value, 0) is None  # another key
    _, token, signature = value.split(".")
    assert session.decode(key, f"2000.{token}.{signature}", 0) is None  # stretched expiry
    assert session.decode(key, "garbage", 0) is None
    assert "tly_secret" not in value  # not in clear (base64), though not secret from its holder


def test_csv_follows_rfc_4180() -> None:
    found = {
        "columns": [{"kind": "link", "label": "Member"}, {"kind": "int", "label": "n"},
                    {"kind": "spark", "label": "s"}, {"kind": "time", "label": "t"}],
        "rows": [[{"text": 'Doe, "JD"', "href": "/ui/member?id=x"}, 3, [1, 2], None]],
    }  # fmt: skip
    text = to_csv(found)
    assert text == 'Member,n,s,t\r\n"Doe, ""JD""",3,1 2,\r\n'
    assert list(csv.reader(io.StringIO(text))) == [
        ["Member", "n", "s", "t"],
        ['Doe, "JD"', "3", "1 2", ""],
    ]


def test_the_pages_show_the_demo_data(tally: Tally) -> None:
    build_demo(tally, members=40, days=14)
    tally.refresh_rollups()
    token, _ = tally.access.create_token("acme", ["read"])
    with TestClient(create_app(tally)) as client:
        signed = client.post("/ui/signin", data={"token": token}, follow_redirects=False)
        assert signed.status_code == 303
        for view in ("overview", "departments", "environment", "apps"):
            answer = client.get(f"/ui/api/{view}")
            assert answer.status_code == 200, answer.text
            assert answer.json()["has_data"] is True, view
            assert answer.json()["org"]["id"] == "acme"
        page = client.get("/ui/")
        assert page.status_code == 200
        assert "Acme Corp" in page.text


def test_the_views_answer_the_hand_built_figures_in_process(settings: Settings) -> None:
    """The JSON the pages draw, without a browser: the overview, the tree, the drill-down, one
    member and the idle list over the browser tests' environment, against the same oracle."""
    tokens = build_environment(settings)
    with Tally(settings) as tally, TestClient(create_app(tally)) as client:
        tally.access.bootstrap_admin(settings.admin_token)
        client.post("/ui/signin", data={"token": tokens["alpha"]}, follow_redirects=False)
        window = {"from": FIRST, "to": LAST}
        overview = client.get("/ui/api/overview", params=window).json()
        want = oracle()
        days = overview["tables"]["days"]["rows"]
        assert [r[1] for r in days] == want["active"]
        assert [r[2] for r in days] == want["active_7d"]
        assert [r[3] for r in days] == want["active_28d"]
        assert overview["missing"] == [GAP.isoformat()]
        totals = overview["totals"]
        assert totals["suggested"] == want["suggested"]
        assert totals["accepted"] == want["accepted"]
        assert totals["acceptance_rate"] == want["accepted"] / want["suggested"]
        assert totals["chat_turns"] == want["chat_turns"]
        assert totals["lines_accepted"] == want["lines_accepted"]
        assert totals["active_developers"] == want["developers"]

        def level(parent: str | None) -> list[tuple[Any, ...]]:
            params = {**window, **({"parent": parent} if parent else {})}
            rows = client.get("/ui/api/departments", params=params).json()
            # (id, sub-departments, members, chat turns, suggested)
            return [(r[1], r[2], r[3], r[6], r[7]) for r in rows["tables"]["departments"]["rows"]]

        # a1 in eng, a2 in web (under eng), a3 and a4 in ops; a3 chatted twice
        assert level(None) == [("alpha", 2, 4, 3, 7)]
        assert level("alpha") == [("alpha-eng", 1, 2, 1, 7), ("alpha-ops", 0, 2, 2, 0)]
        assert level("alpha-eng") == [("alpha-web", 0, 1, 0, 2)]
        assert level("alpha-web") == []
        unknown = client.get("/ui/api/departments", params={"parent": "nope"})
        assert unknown.status_code == 404
        eng = client.get("/ui/api/department", params={**window, "id": "alpha-eng"}).json()
        members = eng["tables"]["members"]["rows"]
        # (id, active days, suggested, accepted): a1 on 03-02, 03-05, 03-12; a2 on 03-03, 03-12
        assert [(r[1], r[3], r[5], r[6]) for r in members] == [
            ("a1", 3, 5, 3),
            ("a2", 2, 2, 1),
        ]
        ann = client.get("/ui/api/member", params={**window, "id": "a1"}).json()
        assert ann["totals"]["suggested"] == 5
        assert ann["totals"]["acceptance_rate"] == 3 / 5
        ides = ann["tables"]["ides"]["rows"]
        assert [(r[0], r[1], r[2]) for r in ides] == [("jetbrains", 0, 1), ("vscode", 1, 4)]
        languages = ann["tables"]["languages"]["rows"]
        assert [(r[0], r[2], r[6]) for r in languages] == [("java", 4, 9), ("python", 1, 8)]
        assert ann["member"]["last_active"] == "2026-03-12T09:00:00+08:00"
        idle = client.get("/ui/api/inactive", params={"days": "3"}).json()
        assert [r[1] for r in idle["tables"]["inactive"]["rows"]] == ["a1", "a4"]
        idle = client.get("/ui/api/inactive", params={"days": "4"}).json()
        assert [r[1] for r in idle["tables"]["inactive"]["rows"]] == ["a4"]
        assert client.get("/ui/api/overview", params={"org": "beta"}).status_code == 403
        assert client.get("/ui/api/overview", params={"from": LAST, "to": FIRST}).status_code == 400


def test_sign_in_refuses_another_origin_and_marks_the_cookie_secure_over_https(
    tally: Tally,
) -> None:
    build_demo(tally, members=20, days=3)
    token, _ = tally.access.create_token("acme", ["read"])
    app = create_app(tally)
    with TestClient(app, base_url="https://tally.example") as client:
        refused = client.post(
            "/ui/signin",
            data={"token": token},
            headers={"origin": "https://evil.example"},
            follow_redirects=False,
        )
        assert refused.status_code == 403
        assert "set-cookie" not in refused.headers
        signed = client.post(
            "/ui/signin",
            data={"token": token},
            headers={"origin": "https://tally.example"},
            follow_redirects=False,
        )
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        for flag in ("httponly", "samesite=strict", "secure", "path=/ui", "max-age=28800"):
            assert flag in cookie
        kept = client.post(
            "/ui/signout", headers={"origin": "https://evil.example"}, follow_redirects=False
        )
        assert kept.status_code == 403
        assert client.get("/ui/api/overview").status_code == 200  # still signed in
    with TestClient(app, base_url="http://tally.example") as plain:
        signed = plain.post("/ui/signin", data={"token": token}, follow_redirects=False)
        assert "secure" not in signed.headers["set-cookie"].lower()
