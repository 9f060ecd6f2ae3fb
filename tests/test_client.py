"""The Python client against a live ``tally serve`` (no mocks): the directory PUTs, batched
event sending with its rejections, every statistics method checked against a hand-worked
fixture, the async client, retries on 429, and a server killed in the middle of
``send_events`` (every event stored once)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tally.client import (
    AsyncTallyClient,
    RetryPolicy,
    SendSummary,
    TallyAPIError,
    TallyClient,
)
from tally.client.shapes import (
    AppMetrics,
    AppUsageCreator,
    AppUsageItem,
    Breakdown,
    ChattingEntry,
    CodingEntry,
    CompletionEntry,
    DayCount,
    DepartmentItem,
    DepartmentUsageRow,
    MemberItem,
    MonthCount,
    WeekCount,
)
from tests.conftest import ADMIN
from tests.server import ServerProcess, free_port, run_coroutine

NOW = "2026-03-15T04:00:00Z"  # 12:00 in Shanghai: T-1 is 2026-03-14
CST = timezone(timedelta(hours=8))


def ms(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 instant (written by hand in the test)."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


# -- the hand-worked fixture: org "acme" (Asia/Shanghai) -----------------------------------
# eng (root) > eng-web; sales (root). alice: developer in eng-web; bob: developer in eng;
# carol: not a developer, in sales. Workspace ws1 holds alice; app1 was made by alice.
EVENTS: list[dict[str, Any]] = [
    # 2026-03-10
    {"id": "e1", "time": "2026-03-10T10:00:00+08:00", "type": "completion", "member": "alice",
     "ide": "vscode", "language": "python", "lines_suggested": 10, "accepted": True,
     "lines_accepted": 7},
    {"id": "e2", "time": "2026-03-10T11:00:00+08:00", "type": "completion", "member": "bob",
     "ide": "vscode", "language": "python", "lines_suggested": 4, "accepted": False,
     "lines_accepted": 0},
    {"id": "e3", "time": "2026-03-10T12:00:00+08:00", "type": "chat", "member": "alice",
     "ide": "vscode", "chat_type": "EXPLAIN_CODE", "accepted": True},
    {"id": "e4", "time": "2026-03-10T13:00:00+08:00", "type": "code", "member": "alice",
     "language": "python", "source": "chat", "lines_accepted": 5, "lines_changed": 8},
    {"id": "e5", "time": "2026-03-10T14:00:00+08:00", "type": "code", "member": "bob",
     "language": "go", "source": "completion", "lines_accepted": 3, "lines_changed": 3},
    # 2026-03-11
    {"id": "e6", "time": "2026-03-11T09:00:00+08:00", "type": "chat", "member": "bob",
     "ide": "vscode", "chat_type": "EXPLAIN_CODE", "accepted": False},
    {"id": "e7", "time": "2026-03-11T10:00:00+08:00", "type": "activity", "member": "carol"},
    {"id": "e8", "time": "2026-03-11T10:30:00+08:00", "type": "workspace_activity",
     "member": "alice", "workspace": "ws1"},
    # 2026-03-12
    {"id": "e9", "time": "2026-03-12T09:00:00+08:00", "type": "app_visit", "member": "alice",
     "app": "app1"},
    {"id": "e10", "time": "2026-03-12T09:05:00+08:00", "type": "app_resource",
     "member": "alice", "app": "app1", "resource": "dash", "delta": 2},
    {"id": "e11", "time": "2026-03-12T09:10:00+08:00", "type": "app_data", "member": "alice",
     "app": "app1", "records": 40},
]  # fmt: skip
JOINED = "2026-01-01T00:00:00+08:00"


class Recorder(httpx.HTTPTransport):
    """A real HTTP transport that also notes each answer's method, path and status."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        self.on_answer: Any = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        with self.lock:
            self.seen.append((request.method, request.url.path, response.status_code))
            if self.on_answer is not None:
                self.on_answer(request, response)
        return response


def build_directory(tally: TallyClient, org: str) -> dict[str, Any]:
    """The fixture's directory, PUT through the client; answers each PUT's answer."""
    answers: dict[str, Any] = {}
    answers["org"] = tally.put_org(org, name="Acme", domain=f"{org}.example")
    answers["eng"] = tally.put_department(org, "eng", name="Engineering")
    answers["eng-web"] = tally.put_department(org, "eng-web", name="Web", parent="eng")
    answers["sales"] = tally.put_department(org, "sales", name="Sales")
    people = [("alice", True, ["eng-web"]), ("bob", True, ["eng"]), ("carol", False, ["sales"])]
    for name, developer, departments in people:
        answers[name] = tally.put_member(
            org,
            name,
            name=name.title(),
            email=f"{name}@{org}.example",
            developer=developer,
            departments=departments,
            created_at=datetime(2026, 1, 1, tzinfo=CST),
        )
    answers["ws1"] = tally.put_workspace(
        org,
        "ws1",
        name="Workspace one",
        created_at=JOINED,
        members=[{"member": "alice", "since": JOINED}],
    )
    answers["app1"] = tally.put_app(
        org, "app1", name="App one", creator="alice", created_at="2026-02-01T00:00:00+08:00"
    )
    return answers


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TALLY_NOW", NOW)
        env.setenv("TALLY_APPS_RATE_LIMIT_PER_SECOND", "0")
        process = ServerProcess(tmp_path_factory.mktemp("client") / "tally.duckdb", ADMIN)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def acme(server: ServerProcess) -> tuple[dict[str, Any], SendSummary, str]:
    """The fixture org, its PUT answers, the summary of sending its events, a read token."""
    with TallyClient(server.url, ADMIN) as tally:
        answers = build_directory(tally, "acme")
        summary = tally.send_events("acme", EVENTS, batch_events=4)
        reader = tally.create_token("acme", ["read"])
    return answers, summary, reader


def test_directory_puts_answer_what_was_stored(
    acme: tuple[dict[str, Any], SendSummary, str],
) -> None:
    answers, _, _ = acme
    assert (answers["org"].id, answers["org"].domain, answers["org"].timezone) == (
        "acme",
        "acme.example",
        "Asia/Shanghai",
    )
    assert answers["eng-web"].parent == "eng"
    assert answers["sales"].parent is None
    alice = answers["alice"]
    assert (alice.email, alice.developer, alice.departments) == (
        "alice@acme.example",
        True,
        ["eng-web"],
    )
    assert alice.created_at == "2026-01-01T00:00:00+08:00"
    assert [m.member for m in answers["ws1"].members] == ["alice"]
    assert (answers["app1"].creator, answers["app1"].created_at) == (
        "alice",
        "2026-02-01T00:00:00+08:00",
    )


def test_send_events_stores_the_fixture_in_batches(
    acme: tuple[dict[str, Any], SendSummary, str],
) -> None:
    _, summary, _ = acme
    assert (summary.accepted, summary.duplicates, summary.rejected) == (11, 0, [])
    assert summary.batches == 3  # 11 events, 4 per batch


def test_send_events_reports_duplicates_and_rejections_by_caller_index(
    server: ServerProcess,
) -> None:
    with TallyClient(server.url, ADMIN) as tally:
        tally.put_org("beta", name="Beta", domain="beta.example")
        tally.put_member(
            "beta", "dan", name="Dan", email="dan@beta.example", developer=True,
            departments=[], created_at=JOINED,
        )  # fmt: skip
        day = "2026-03-13T10:00:00+08:00"
        events: list[Any] = [
            {"id": "b0", "time": day, "type": "activity", "member": "dan"},
            {"id": "b1", "time": day, "type": "activity", "member": "nobody"},
            {"time": day, "type": "activity", "member": "dan"},  # no id: never sent
            {"id": "b0", "time": day, "type": "activity", "member": "dan"},  # same batch
            {"id": "b4", "time": "2026-03-13T10:00:00", "type": "activity", "member": "dan"},
            {"id": "b5", "time": day, "type": "activity", "member": "dan"},
        ]
        first = tally.send_events("beta", events, batch_events=2)
        again = tally.send_events("beta", events, batch_events=2)
        stored = sorted(e.id for e in tally.iter_events("beta"))

    # batches (caller indexes): [0, 1], [3, 4], [5]; index 2 is refused before sending.
    assert (first.accepted, first.duplicates, first.batches) == (2, 1, 3)
    assert [(r.index, r.id) for r in first.rejected] == [(1, "b1"), (2, None), (4, "b4")]
    assert "nobody" in first.rejected[0].error
    assert "id" in first.rejected[1].error
    assert (again.accepted, again.duplicates) == (0, 3)
    assert [(r.index, r.id) for r in again.rejected] == [(1, "b1"), (2, None), (4, "b4")]
    assert stored == ["b0", "b5"]


def test_department_usage_rows_are_the_hand_worked_ones(
    server: ServerProcess, acme: tuple[dict[str, Any], SendSummary, str]
) -> None:
    _, _, reader = acme
    with TallyClient(server.url, reader) as tally:
        page = tally.department_usage("acme", "eng", "2026-03-10", "2026-03-11")
        web = list(tally.iter_department_usage("acme", "eng-web", "2026-03-10", "2026-03-12"))
    assert (page.page, page.per_page, page.total, page.total_pages, page.next_page) == (
        1, 100, 2, 1, 2,
    )  # fmt: skip
    assert len(page.request_id) == 36
    assert page.rows == [
        DepartmentUsageRow(
            active_developer=2,
            active_developer_chat=1,
            active_developer_completion=2,
            breakdown=Breakdown(
                chatting=[ChattingEntry(1, 1, 1, "EXPLAIN_CODE", "vscode")],
                coding=[CodingEntry(0, 1, "go", 3, 3), CodingEntry(5, 1, "python", 5, 8)],
                completion=[CompletionEntry(2, 1, 2, "vscode", "python", 7, 14)],
            ),
            date=ms("2026-03-10T00:00:00+08:00"),
            department_id="eng",
            total_chat_turns=1,
            total_chat_turns_accepted=1,
            total_count_accepted_completion=1,
            total_count_suggested_completion=2,
            total_lines_accepted=8,
            total_lines_accepted_chat=5,
            total_lines_accepted_completion=7,
            total_lines_changed=11,
            total_lines_suggested_completion=14,
        ),
        DepartmentUsageRow(
            active_developer=1,
            active_developer_chat=1,
            active_developer_completion=0,
            breakdown=Breakdown(
                chatting=[ChattingEntry(1, 1, 0, "EXPLAIN_CODE", "vscode")],
                coding=[],
                completion=[],
            ),
            date=ms("2026-03-11T00:00:00+08:00"),
            department_id="eng",
            total_chat_turns=1,
            total_chat_turns_accepted=0,
            total_count_accepted_completion=0,
            total_count_suggested_completion=0,
            total_lines_accepted=0,
            total_lines_accepted_chat=0,
            total_lines_accepted_completion=0,
            total_lines_changed=0,
            total_lines_suggested_completion=0,
        ),
    ]
    # eng-web holds alice only: her day 2026-03-10 (the paging helper stops on the empty page)
    assert [(r.date, r.active_developer, r.total_lines_changed) for r in web] == [
        (ms("2026-03-10T00:00:00+08:00"), 1, 8)
    ]


def test_developer_usage_rows_per_member_and_day(
    server: ServerProcess, acme: tuple[dict[str, Any], SendSummary, str]
) -> None:
    _, _, reader = acme
    with TallyClient(server.url, reader) as tally:
        rows = list(tally.iter_developer_usage("acme", "2026-03-10", "2026-03-11", per_page=2))
        bob = tally.developer_usage("acme", "2026-03-10", "2026-03-11", user_id="bob")
    summary = [
        (
            r.date,
            r.user_id,
            r.status_active_chat,
            r.status_active_completion,
            r.status_active_lasted_time,
            r.total_chat_turns,
            r.total_lines_accepted,
            r.total_lines_changed,
        )
        for r in rows
    ]
    day10, day11 = ms("2026-03-10T00:00:00+08:00"), ms("2026-03-11T00:00:00+08:00")
    assert summary == [
        (day10, "alice", True, True, ms("2026-03-10T13:00:00+08:00"), 1, 5, 8),
        (day10, "bob", False, True, ms("2026-03-10T14:00:00+08:00"), 0, 3, 3),
        (day11, "bob", True, False, ms("2026-03-11T09:00:00+08:00"), 1, 0, 0),
    ]
    alice = rows[0].breakdown
    assert [(c.ide, c.language, c.count_suggested, c.lines_accepted) for c in alice.completion] == [
        ("vscode", "python", 1, 7)
    ]
    assert [(c.language, c.accept_assistant_newline_count) for c in alice.coding] == [("python", 5)]
    assert [r.user_id for r in bob.rows] == ["bob", "bob"]
    assert bob.total == 2


def test_members_and_departments_listings(
    server: ServerProcess, acme: tuple[dict[str, Any], SendSummary, str]
) -> None:
    _, _, reader = acme
    with TallyClient(server.url, reader) as tally:
        members = list(tally.iter_members("acme", per_page=2))
        roots = tally.departments("acme")
        children = tally.departments("acme", parent="eng")
        web = tally.department("acme", "eng-web")
        with pytest.raises(TallyAPIError) as missing:
            tally.department("acme", "nowhere")

    def member(name: str, roles: list[str], dept: str, visited: str) -> MemberItem:
        return MemberItem(
            dept_ids=[dept],
            id=name,
            joined="2025-12-31T16:00:00.000Z",
            name=name.title(),
            email=f"{name}@acme.example",
            organization_id="acme",
            role_ids=roles,
            status="ENABLED",
            user_id=name,
            visited=visited,
        )

    assert members == [
        member("alice", ["developer"], "eng-web", "2026-03-12T01:10:00.000Z"),
        member("bob", ["developer"], "eng", "2026-03-11T01:00:00.000Z"),
        member("carol", [], "sales", "2026-03-11T02:00:00.000Z"),
    ]
    assert roots.rows == [
        DepartmentItem(has_sub=True, id="eng", name="Engineering", organization_id="acme"),
        DepartmentItem(has_sub=False, id="sales", name="Sales", organization_id="acme"),
    ]
    assert children.rows == [web]
    assert web == DepartmentItem(
        has_sub=False, id="eng-web", name="Web", organization_id="acme", parent_id="eng"
    )
    assert missing.value.status == 404
    assert missing.value.body["errorCode"] == "NotFound"
    assert missing.value.request_id == missing.value.body["requestId"]


def test_environment_statistics_users_and_developers(
    server: ServerProcess, acme: tuple[dict[str, Any], SendSummary, str]
) -> None:
    _, _, reader = acme
    with TallyClient(server.url, reader) as tally:
        users = tally.environment_statistics(
            "users", "2026-03-10", "2026-03-11", org_domain="acme.example"
        ).users
        developers = tally.environment_statistics(
            "developers", "2026-03-10", "2026-03-11", org_domain="acme.example"
        ).developers
    assert users is not None
    assert developers is not None
    assert users.total_users == [DayCount(2026, 3, 3, 10), DayCount(2026, 3, 3, 11)]
    assert users.monthly_active_users == [MonthCount(2026, 3, 3)]
    # active: 10th alice, bob; 11th bob, carol, alice. Week 11 holds both days: 2.5 -> 3
    assert users.daily_active_users.per_day == [DayCount(2026, 3, 2, 10), DayCount(2026, 3, 3, 11)]
    assert users.daily_active_users.per_week == [WeekCount(2026, 3, 11)]
    assert users.daily_active_users.per_month == [MonthCount(2026, 3, 3)]
    # a developer is active with a workspace_activity event: alice on the 11th only (0.5 -> 1)
    assert developers.total_developers == [DayCount(2026, 3, 2, 10), DayCount(2026, 3, 2, 11)]
    assert developers.daily_active_developers.per_day == [
        DayCount(2026, 3, 0, 10),
        DayCount(2026, 3, 1, 11),
    ]
    assert developers.daily_active_developers.per_week == [WeekCount(2026, 1, 11)]
    assert developers.monthly_active_developers == [MonthCount(2026, 3, 1)]


def test_app_usage_stats_of_one_day(
    server: ServerProcess, acme: tuple[dict[str, Any], SendSummary, str]
) -> None:
    _, _, reader = acme
    with TallyClient(server.url, reader) as tally:
        page = tally.app_usage_stats(day="2026-03-12")
        items = list(tally.iter_app_usage(day="2026-03-12", limit=1))
        with pytest.raises(TallyAPIError) as refused:
            tally.app_usage_stats(day="2026-03-15")  # after T-1
    expected = AppUsageItem(
        app_id="app1",
        app_name="App one",
        creator=AppUsageCreator(member_id="alice", name="Alice"),
        created_at="2026-02-01T00:00:00+08:00",
        last_edit_at=None,
        last_visit_at="2026-03-12T09:00:00+08:00",
        metrics=AppMetrics(
            app=1, form_coop=0, form_workflow=0, dash=2, etl=0, aggregate=0, public_link=0,
            data_trigger=0, automation=0, bpa=0, data=40,
        ),
    )  # fmt: skip
    assert (page.date, page.has_next, page.items) == ("2026-03-12", False, [expected])
    assert items == [expected]
    assert (refused.value.status, refused.value.body["code"]) == (400, 4000)


def test_async_client_sends_and_reads_the_same(
    server: ServerProcess, acme: tuple[dict[str, Any], SendSummary, str]
) -> None:
    _, _, reader = acme
    events = [
        {"id": f"g{i}", "time": "2026-03-13T10:00:00+08:00", "type": "activity", "member": "dan"}
        for i in range(5)
    ]

    async def scenario() -> tuple[Any, ...]:
        async with AsyncTallyClient(server.url, ADMIN) as admin:
            await admin.put_org("gamma", name="Gamma", domain="gamma.example")
            dept = await admin.put_department("gamma", "d1", name="D one")
            await admin.put_member(
                "gamma", "dan", name="Dan", email="dan@gamma.example", developer=False,
                departments=["d1"], created_at=JOINED,
            )  # fmt: skip
            sent = await admin.send_events("gamma", [*events, events[0]], batch_events=2)
            stored = [e.id async for e in admin.iter_events("gamma", page_size=2)]
        async with AsyncTallyClient(server.url, reader) as tally:
            usage = await tally.department_usage("acme", "eng", "2026-03-10", "2026-03-11")
            listed = [m.id async for m in tally.iter_members("acme", per_page=1)]
            stats = await tally.environment_statistics(
                "users", "2026-03-10", "2026-03-11", org_domain="acme.example"
            )
            apps = await tally.app_usage_stats(day="2026-03-12")
            users = [
                r.user_id
                async for r in tally.iter_developer_usage(
                    "acme", "2026-03-10", "2026-03-11", per_page=1
                )
            ]
            roots = [d.id async for d in tally.iter_departments("acme", per_page=1)]
            listed.extend([*users, *roots])
        return dept, sent, stored, usage, listed, stats, apps

    dept, sent, stored, usage, listed, stats, apps = run_coroutine(scenario())
    assert dept.name == "D one"
    assert (sent.accepted, sent.duplicates, sent.rejected, sent.batches) == (5, 1, [], 3)
    assert sorted(stored) == ["g0", "g1", "g2", "g3", "g4"]
    assert [(r.department_id, r.total_lines_changed) for r in usage.rows] == [
        ("eng", 11),
        ("eng", 0),
    ]
    # members, then developer usage rows' members, then the root departments
    assert listed == ["alice", "bob", "carol", "alice", "bob", "bob", "eng", "sales"]
    assert stats.users is not None
    assert [d.count for d in stats.users.daily_active_users.per_day] == [2, 3]
    assert [i.metrics.data for i in apps.items] == [40]


def test_errors_carry_the_status_and_the_family_body(server: ServerProcess) -> None:
    with TallyClient(server.url, "not-a-token") as tally:
        with pytest.raises(TallyAPIError) as lingma:
            tally.department_usage("acme", "eng", "2026-03-10", "2026-03-11")
        with pytest.raises(TallyAPIError) as own:
            tally.put_department("acme", "x", name="X")
    assert (lingma.value.status, lingma.value.body["errorCode"]) == (401, "InvalidTokenError")
    assert own.value.status == 401
    assert own.value.body["status"] == 401


def test_times_without_an_offset_are_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="time zone"):
        TallyClient("http://127.0.0.1:9", ADMIN).put_member(
            "acme", "x", name="X", email="x@x", developer=False, departments=[],
            created_at=datetime(2026, 1, 1),
        )  # fmt: skip


def test_a_429_is_waited_out_and_retried(tmp_path: Path) -> None:
    """The app usage API allows one call per second per key (real clock here): the second
    of two back-to-back calls is refused with Retry-After, and the client calls again."""
    process = ServerProcess(tmp_path / "tally.duckdb", ADMIN)
    try:
        with TallyClient(process.url, ADMIN) as admin:
            admin.put_org("rl", name="RL", domain="rl.example")
            admin.put_member(
                "rl", "m", name="M", email="m@rl.example", developer=False, departments=[],
                created_at="2020-01-01T00:00:00Z",
            )  # fmt: skip
            admin.put_app("rl", "a1", name="A", creator="m", created_at="2020-01-01T00:00:00Z")
            key = admin.create_token("rl", ["read"])
        recorder = Recorder()
        with TallyClient(process.url, key, transport=recorder) as tally:
            first = tally.app_usage_stats()
            second = tally.app_usage_stats()
    finally:
        process.stop()
    statuses = [status for _, _, status in recorder.seen]
    assert statuses[0] == 200
    assert 429 in statuses
    assert statuses[-1] == 200
    assert [i.app_id for i in first.items] == [i.app_id for i in second.items] == ["a1"]


@pytest.mark.slow
def test_server_killed_mid_send_events_stores_every_event_once(tmp_path: Path) -> None:
    """20,000 events in batches of 100; the server is SIGKILLed after 40 answered batches and
    started again on the same port and file; the client's retries finish the job."""
    total, batch = 20_000, 100
    db, port = tmp_path / "tally.duckdb", free_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TALLY_NOW", NOW)
        process = ServerProcess(db, ADMIN, port=port)
    try:
        with TallyClient(process.url, ADMIN) as admin:
            admin.put_org("crash", name="Crash", domain="crash.example")
            admin.put_member(
                "crash", "m", name="M", email="m@crash.example", developer=False,
                departments=[], created_at=JOINED,
            )  # fmt: skip
        start = datetime(2026, 3, 13, 2, 0, tzinfo=UTC)
        events = (
            {
                "id": f"c{i:05d}",
                "time": (start + timedelta(milliseconds=i)).isoformat(),
                "type": "activity",
                "member": "m",
            }
            for i in range(total)
        )
        halfway = threading.Event()
        answered = [0]

        def note(request: httpx.Request, response: httpx.Response) -> None:
            if request.method == "POST" and response.status_code == 200:
                answered[0] += 1
                if answered[0] == 40:
                    halfway.set()

        recorder = Recorder()
        recorder.on_answer = note
        policy = RetryPolicy(max_attempts=1000, max_seconds=600, base_delay=0.05, max_delay=0.5)
        outcome: dict[str, Any] = {}

        def send() -> None:
            try:
                with TallyClient(process.url, ADMIN, transport=recorder, retry=policy) as tally:
                    outcome["summary"] = tally.send_events("crash", events, batch_events=batch)
            except BaseException as exc:  # surfaced by the assertion below
                outcome["error"] = exc
            finally:
                halfway.set()

        sender = threading.Thread(target=send)
        sender.start()
        halfway.wait()
        process.kill()
        with pytest.MonkeyPatch.context() as env:
            env.setenv("TALLY_NOW", NOW)
            process = ServerProcess(db, ADMIN, port=port)
        sender.join()
        assert "error" not in outcome, outcome.get("error")
        summary: SendSummary = outcome["summary"]
        with TallyClient(process.url, ADMIN) as admin:
            stored = [e.id for e in admin.iter_events("crash", page_size=1000)]
    finally:
        process.stop()
    assert summary.rejected == []
    assert summary.accepted + summary.duplicates == total
    assert summary.retries >= 1
    assert len(stored) == total
    assert sorted(stored) == [f"c{i:05d}" for i in range(total)]
    statuses = {status for _, _, status in recorder.seen}
    assert statuses <= {200, 503, 500}


def test_batches_are_cut_by_bytes_and_a_413_splits_a_batch(tmp_path: Path) -> None:
    """Events of one encoded length L. The server takes bodies of at most three events
    (2 + 3L + 2 bytes). With ``batch_bytes`` fitting two events the batches are cut by size;
    with a byte limit the server does not share, its 413 splits a batch until it fits."""
    day = "2026-03-13T10:00:00+08:00"

    def event(n: int) -> dict[str, Any]:
        return {"id": f"k{n}", "time": day, "type": "activity", "member": "dan"}

    size = len(json.dumps(event(0), separators=(",", ":")))
    assert all(len(json.dumps(event(n), separators=(",", ":"))) == size for n in range(10))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TALLY_NOW", NOW)
        env.setenv("TALLY_MAX_BODY_BYTES", str(2 + 3 * size + 2))
        process = ServerProcess(tmp_path / "tally.duckdb", ADMIN)
    recorder = Recorder()
    try:
        with TallyClient(process.url, ADMIN, transport=recorder) as tally:
            tally.put_org("b", name="B", domain="b.example")
            tally.put_member(
                "b", "dan", name="Dan", email="dan@b.example", developer=False, departments=[],
                created_at=JOINED,
            )  # fmt: skip
            big = {**event(99), "id": "big", "member": "d" * (3 * size)}
            by_size = tally.send_events(
                "b",
                [event(0), event(1), event(2), big, event(4), event(5), event(6)],
                batch_bytes=2 + 2 * size + 1,
            )
            sizes_seen = [s for m, p, s in recorder.seen if m == "POST"]
            del recorder.seen[:]
            split = tally.send_events("b", [event(n) for n in range(10, 18)], batch_bytes=1 << 20)
            split_seen = [s for m, p, s in recorder.seen if m == "POST"]
            stored = sorted(e.id for e in tally.iter_events("b"))
    finally:
        process.stop()
    assert (by_size.accepted, by_size.batches) == (6, 3)
    assert [(r.index, r.id) for r in by_size.rejected] == [(3, "big")]
    assert "larger than the batch limit" in by_size.rejected[0].error
    assert sizes_seen == [200, 200, 200]
    # 8 -> 413; 4 -> 413; 2, 2 -> 200; the other 4 -> 413; 2, 2 -> 200
    assert split_seen == [413, 413, 200, 200, 413, 200, 200]
    assert (split.accepted, split.batches, split.rejected) == (8, 4, [])
    assert stored == sorted(
        [f"k{n}" for n in (0, 1, 2, 4, 5, 6)] + [f"k{n}" for n in range(10, 18)]
    )
