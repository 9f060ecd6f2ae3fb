"""The event store contract, written once against ``EventStore`` and run over every backend:
DuckDB, chDB in-process, one ClickHouse 18.16 server, and a ClickHouse cluster of two shards.

The hand-worked fixture lives in the Asia/Shanghai org timezone (UTC+8); every expected figure
below is worked out by hand from it. A seeded random test compares each store with a plain
Python computation over the same events.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pytest

from tally.model.directory import Organization
from tally.model.events import STORED_SCHEMA, StoredEvent
from tally.stores import duckdb_rollups
from tally.stores.base import (
    ActiveMembers,
    AppTotals,
    AssistantDay,
    ChatUsage,
    CodingUsage,
    CompletionUsage,
    EventStore,
    MemberDay,
    MemberSpan,
)
from tally.stores.clickhouse import ClickHouseEventStore
from tally.stores.duckdb import DuckDBStore

if TYPE_CHECKING:
    from tests.services import ClickHouseCluster

# Until tests/conftest.py names it (then this line is redundant, and harmless).

ORG = "acme"
APPS = "apps-org"
QUIET = "quiet-org"  # no events
TZ = "Asia/Shanghai"
SHANGHAI = ZoneInfo(TZ)
D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
APRIL = date(2026, 4, 1)
FAR = 10**17  # an instant after every event of the tests


def at(day: date, hhmm: str) -> int:
    """Epoch µs of ``hhmm`` local time (Shanghai) on ``day``."""
    hour, minute = map(int, hhmm.split(":"))
    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)
    return int(local.timestamp()) * 1_000_000


def ev(event_id: str, day: date, hhmm: str, kind: str, member: str, **fields: Any) -> StoredEvent:
    """An event at local ``hhmm`` of ``day`` (the ingest layer stores the org-local day)."""
    return StoredEvent(id=event_id, ts=at(day, hhmm), day=day, type=kind, member=member, **fields)


def day_end(day: date) -> int:
    return at(day + timedelta(days=1), "00:00")


# -- the stores -------------------------------------------------------------------------------

BACKENDS = ["duckdb", "chdb", "clickhouse", "cluster"]
#: The ClickHouse engines: where two appends can race (DuckDB serialises them by its key).
CLICKHOUSE = ["chdb", "clickhouse", "cluster"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def open_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], EventStore]]:
    """Opens (another) store on the test's one database; every store opened is closed after."""
    opened: list[EventStore] = []
    url = ""
    if backend in ("clickhouse", "cluster"):
        cluster: ClickHouseCluster = request.getfixturevalue("clickhouse_cluster")
        database: str = request.getfixturevalue("clickhouse_database")
        url = cluster.url(database, cluster=backend == "cluster")
    elif backend == "chdb":
        url = f"chdb://{tmp_path / 'chdb'}"

    def make() -> EventStore:
        store: EventStore
        if backend == "duckdb":
            assert not opened, "one DuckDB store per file"
            duck = DuckDBStore(tmp_path / "x.duckdb")
            for org in (ORG, APPS, QUIET):  # the DuckDB store reads the org's timezone
                duck.put_org(Organization(id=org, name=org, domain=f"{org}.test", timezone=TZ))
            store = duck
        else:
            store = ClickHouseEventStore(url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], EventStore]) -> EventStore:
    return open_store()


# -- the hand-worked fixture ----------------------------------------------------------------

EVENTS = [
    # 2026-03-01
    ev(
        "c1",
        D1,
        "09:00",
        "completion",
        "alice",
        ide="vscode",
        language="python",
        lines_suggested=10,
        accepted=True,
        lines_accepted=4,
    ),
    ev(
        "c2",
        D1,
        "10:00",
        "completion",
        "bob",
        ide="vscode",
        language="python",
        lines_suggested=6,
        accepted=False,
        lines_accepted=0,
    ),
    ev(
        "c3",
        D1,
        "11:00",
        "completion",
        "alice",
        ide="jetbrains",
        language="go",
        lines_suggested=3,
        accepted=True,
        lines_accepted=3,
    ),
    ev("h1", D1, "12:00", "chat", "alice", ide="vscode", chat_type="FREE_INPUT", accepted=True),
    ev("h2", D1, "13:00", "chat", "carol", ide="vscode", chat_type="explain", accepted=False),
    ev(
        "k1",
        D1,
        "14:00",
        "code",
        "bob",
        language="python",
        source="chat",
        lines_accepted=5,
        lines_changed=7,
    ),
    ev(
        "k2",
        D1,
        "15:00",
        "code",
        "bob",
        language="python",
        source="completion",
        lines_accepted=2,
        lines_changed=3,
    ),
    ev("a1", D1, "16:00", "activity", "carol"),
    # 2026-03-02 (c4 is 2026-03-01 16:30 UTC: its org day is the 2nd)
    ev(
        "c4",
        D2,
        "00:30",
        "completion",
        "carol",
        ide="vscode",
        language="python",
        lines_suggested=2,
        accepted=True,
        lines_accepted=2,
    ),
    ev("h3", D2, "09:00", "chat", "bob", ide="jetbrains", chat_type="EXPLAIN_CODE", accepted=True),
    ev("w1", D2, "10:00", "workspace_activity", "alice", workspace="ws1"),
    ev("w2", D2, "10:00", "workspace_activity", "bob", workspace="ws2"),
    ev("w3", D2, "11:00", "workspace_activity", "alice", workspace="ws2"),
    ev(
        "k3",
        D2,
        "23:59",
        "code",
        "alice",
        language="go",
        source="completion",
        lines_accepted=1,
        lines_changed=1,
    ),
    # 2026-03-03
    ev("a2", D3, "08:00", "activity", "bob"),
    ev("w4", D3, "09:00", "workspace_activity", "carol", workspace="ws1"),
    # 2026-04-01
    ev("a4", APRIL, "08:00", "activity", "alice"),
]

APP_EVENTS = [
    ev("r1", D1, "10:00", "app_resource", "dave", app="app1", resource="dash", delta=2),
    ev("r2", D2, "10:00", "app_resource", "dave", app="app1", resource="dash", delta=-1),
    ev("r3", D3, "10:00", "app_resource", "dave", app="app1", resource="etl", delta=1),
    ev("d1", D1, "12:00", "app_data", "dave", app="app1", records=100),
    ev("d3", D2, "08:00", "app_data", "dave", app="app1", records=70),  # same time as d2:
    ev("d2", D2, "08:00", "app_data", "dave", app="app1", records=50),  # the greater id wins
    ev("v1", D1, "09:00", "app_visit", "dave", app="app1"),
    ev("v2", D2, "10:30", "app_visit", "dave", app="app1"),
    ev("e1", D1, "11:00", "app_edit", "dave", app="app1"),
    ev("v3", D3, "09:00", "app_visit", "dave", app="app2"),
]

EVERYONE = [MemberSpan(m, 0, FAR) for m in ("alice", "bob", "carol")]


@pytest.fixture
def loaded(store: EventStore) -> EventStore:
    assert store.append_events(ORG, EVENTS[:9]).new_ids == {e.id for e in EVENTS[:9]}
    assert store.append_events(ORG, EVENTS[9:]).new_ids == {e.id for e in EVENTS[9:]}
    store.append_events(APPS, APP_EVENTS)
    return store


# -- department usage ---------------------------------------------------------------------


def test_assistant_usage_per_day_with_sorted_breakdowns(loaded: EventStore) -> None:
    assert loaded.assistant_usage(ORG, EVERYONE, D1, D3) == [
        AssistantDay(
            D1,
            3,
            2,
            2,
            completion=(
                CompletionUsage("jetbrains", "go", 1, 1, 3, 3, 1),
                CompletionUsage("vscode", "python", 2, 1, 16, 4, 2),
            ),
            chatting=(  # upper case before lower case
                ChatUsage("FREE_INPUT", "vscode", 1, 1, 1),
                ChatUsage("explain", "vscode", 1, 0, 1),
            ),
            coding=(CodingUsage("python", 7, 10, 5, 1),),
        ),
        AssistantDay(
            D2,
            3,
            1,
            1,
            completion=(CompletionUsage("vscode", "python", 1, 1, 2, 2, 1),),
            chatting=(ChatUsage("EXPLAIN_CODE", "jetbrains", 1, 1, 1),),
            coding=(CodingUsage("go", 1, 1, 0, 1),),
        ),
    ]  # D3 has no assistant event: no row


def test_assistant_usage_reads_only_the_window_days(loaded: EventStore) -> None:
    (only,) = loaded.assistant_usage(ORG, EVERYONE, D2, D3)
    assert only.day == D2
    assert loaded.assistant_usage(ORG, EVERYONE, D3, APRIL) == []


def test_event_outside_its_members_span_is_not_counted(loaded: EventStore) -> None:
    spans = [MemberSpan("alice", 0, FAR), MemberSpan("bob", at(D1, "14:30"), FAR)]
    assert loaded.assistant_usage(ORG, spans, D1, D3) == [
        AssistantDay(
            D1,
            2,
            1,
            1,
            completion=(
                CompletionUsage("jetbrains", "go", 1, 1, 3, 3, 1),
                CompletionUsage("vscode", "python", 1, 1, 10, 4, 1),
            ),
            chatting=(ChatUsage("FREE_INPUT", "vscode", 1, 1, 1),),
            coding=(CodingUsage("python", 2, 3, 0, 1),),  # k1 (14:00) is before bob's span
        ),
        AssistantDay(
            D2,
            2,
            1,
            0,
            completion=(),
            chatting=(ChatUsage("EXPLAIN_CODE", "jetbrains", 1, 1, 1),),
            coding=(CodingUsage("go", 1, 1, 0, 1),),
        ),
    ]


def test_span_ends_are_exclusive(loaded: EventStore) -> None:
    spans = [MemberSpan("bob", at(D1, "10:00"), at(D1, "14:00"))]  # c2 in, k1 out
    assert loaded.assistant_usage(ORG, spans, D1, D3) == [
        AssistantDay(D1, 1, 0, 1, (CompletionUsage("vscode", "python", 1, 0, 6, 0, 1),), (), ())
    ]


def test_no_spans_no_usage(loaded: EventStore) -> None:
    assert loaded.assistant_usage(ORG, [], D1, D3) == []
    assert loaded.assistant_usage(QUIET, EVERYONE, D1, D3) == []


# -- environment statistics --------------------------------------------------------------


def test_active_members_per_day_and_month(loaded: EventStore) -> None:
    assert loaded.active_members(ORG, D1, APRIL) == ActiveMembers(
        per_day={("", D1): 3, ("", D2): 3, ("", D3): 2, ("", APRIL): 1},
        per_month={("", 2026, 3): 3, ("", 2026, 4): 1},
        day_sums={("", 2026, 3): 8, ("", 2026, 4): 1},
    )


def test_active_members_month_counts_only_window_days(loaded: EventStore) -> None:
    answer = loaded.active_members(ORG, D3, D3)
    assert answer.per_day == {("", D3): 2}
    assert answer.per_month == {("", 2026, 3): 2}


def test_active_members_of_some_event_types(loaded: EventStore) -> None:
    workspace = loaded.active_members(ORG, D1, APRIL, event_types=["workspace_activity"])
    assert workspace.per_day == {("", D2): 2, ("", D3): 1}
    assert workspace.per_month == {("", 2026, 3): 3}
    assistant = loaded.active_members(ORG, D1, D3, event_types=["chat", "completion"])
    assert assistant.per_day == {("", D1): 3, ("", D2): 2}
    assert assistant.per_month == {("", 2026, 3): 3}


def test_active_members_per_workspace(loaded: EventStore) -> None:
    answer = loaded.active_members(
        ORG, D1, D3, event_types=["workspace_activity"], per_workspace=True
    )
    assert answer == ActiveMembers(
        per_day={("ws1", D2): 1, ("ws1", D3): 1, ("ws2", D2): 2},
        per_month={("ws1", 2026, 3): 2, ("ws2", 2026, 3): 2},
        day_sums={("ws1", 2026, 3): 2, ("ws2", 2026, 3): 2},
    )
    everyone = loaded.active_members(ORG, D1, D3, per_workspace=True)
    assert everyone.per_day == answer.per_day


def test_active_members_during_spans(loaded: EventStore) -> None:
    spans = [MemberSpan("alice", 0, FAR), MemberSpan("carol", 0, at(D1, "00:00"))]
    developers = loaded.active_members(
        ORG, D1, D3, event_types=["workspace_activity"], during=spans, cohort="developers"
    )
    assert developers.per_day == {("", D2): 1}
    assert developers.per_month == {("", 2026, 3): 1}
    per_workspace = loaded.active_members(
        ORG, D1, D3, event_types=["workspace_activity"], during=spans, per_workspace=True
    )
    assert per_workspace.per_day == {("ws1", D2): 1, ("ws2", D2): 1}
    late_bob = loaded.active_members(ORG, D1, D3, during=[MemberSpan("bob", at(D1, "14:30"), FAR)])
    assert late_bob.per_day == {("", D1): 1, ("", D2): 1, ("", D3): 1}
    assert late_bob.per_month == {("", 2026, 3): 1}
    assert loaded.active_members(ORG, D1, D3, during=[]).per_month == {}


def test_active_members_month_sums_without_days(loaded: EventStore) -> None:
    answer = loaded.active_members(ORG, D1, APRIL, daily=False)
    assert answer.per_month == {("", 2026, 3): 3, ("", 2026, 4): 1}
    assert answer.day_sums == {("", 2026, 3): 8, ("", 2026, 4): 1}


# -- app usage -----------------------------------------------------------------------------


def test_app_totals_up_to_the_end_of_a_day(loaded: EventStore) -> None:
    assert loaded.app_totals(APPS, ["app1", "app2", "app3"], day=D2, end_us=day_end(D2)) == {
        "app1": AppTotals(
            resources={"dash": 1},
            records=70,  # d2 and d3 at the same instant: the greater id
            last_visit_us=at(D2, "10:30"),
            last_edit_us=at(D1, "11:00"),
        )
    }
    totals = loaded.app_totals(APPS, ["app1", "app2"], day=D3, end_us=day_end(D3))
    assert totals["app1"].resources == {"dash": 1, "etl": 1}
    assert totals["app2"] == AppTotals({}, None, at(D3, "09:00"), None)
    assert loaded.app_totals(APPS, [], day=D3, end_us=day_end(D3)) == {}


# -- events: listing, counting, duplicates --------------------------------------------------


def test_list_events_pages_by_time_then_id(loaded: EventStore) -> None:
    expected = sorted(EVENTS, key=lambda e: (e.ts, e.id))
    pages: list[StoredEvent] = []
    after: tuple[int, str] | None = None
    while page := loaded.list_events(ORG, start_us=None, end_us=None, after=after, limit=3):
        pages.extend(page)
        after = (page[-1].ts, page[-1].id)
    assert pages == expected  # w1 and w2 share an instant: the cursor keeps both
    window = loaded.list_events(
        ORG, start_us=at(D2, "10:00"), end_us=at(D2, "23:59"), after=None, limit=10
    )
    assert [e.id for e in window] == ["w1", "w2", "w3"]
    assert loaded.count_events(ORG) == len(EVENTS)
    assert loaded.count_events(APPS) == len(APP_EVENTS)


def test_known_id_is_a_duplicate_even_with_other_content(store: EventStore) -> None:
    first = ev("x1", D1, "09:00", "activity", "alice")
    other = ev("x1", D3, "12:00", "workspace_activity", "bob", workspace="ws1")
    assert store.append_events(ORG, [first, ev("x2", D1, "10:00", "activity", "bob")]).new_ids == {
        "x1",
        "x2",
    }
    result = store.append_events(ORG, [other, ev("x3", D2, "10:00", "activity", "carol")])
    assert result.new_ids == {"x3"}
    assert store.append_events(ORG, [other]).new_ids == frozenset()  # a retry
    assert store.count_events(ORG) == 3
    listed = store.list_events(ORG, start_us=None, end_us=None, after=None, limit=10)
    assert listed[0] == first  # the first copy stays
    assert store.active_members(ORG, D1, D3).per_day == {("", D1): 2, ("", D2): 1}


def test_append_table_skips_known_ids(store: EventStore) -> None:
    store.append_events(ORG, EVENTS[:5])
    table = pa.Table.from_pylist(
        [{"org": ORG, **_as_dict(e)} for e in EVENTS[3:10]], schema=STORED_SCHEMA
    )
    assert store.append_table(ORG, table).new_ids == {e.id for e in EVENTS[5:10]}
    assert store.count_events(ORG) == 10
    listed = store.list_events(ORG, start_us=None, end_us=None, after=None, limit=100)
    assert listed == sorted(EVENTS[:10], key=lambda e: (e.ts, e.id))


def test_same_ids_appended_concurrently_are_counted_once(store: EventStore) -> None:
    def batch(ids: range, member: str) -> list[StoredEvent]:
        return [
            ev(
                f"n{i:03d}",
                D1,
                f"{10 + i // 60:02d}:{i % 60:02d}",
                "completion",
                member,
                ide="vscode",
                language="python",
                lines_suggested=1,
                accepted=False,
                lines_accepted=0,
            )
            for i in ids
        ]

    def worker(ids: range, member: str) -> None:
        for start in range(ids.start, ids.stop, 20):
            store.append_events(ORG, batch(range(start, min(start + 20, ids.stop)), member))

    threads = [
        threading.Thread(target=worker, args=(range(0, 150), "alice")),
        threading.Thread(target=worker, args=(range(50, 200), "bob")),
        threading.Thread(target=worker, args=(range(0, 200), "carol")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count_events(ORG) == 200
    listed = store.list_events(ORG, start_us=None, end_us=None, after=None, limit=1000)
    assert sorted(e.id for e in listed) == [f"n{i:03d}" for i in range(200)]
    (day,) = store.assistant_usage(ORG, EVERYONE, D1, D1)
    assert sum(u.count_suggested for u in day.completion) == 200
    assert sum(u.lines_suggested for u in day.completion) == 200


# -- ClickHouse only: the race, the shards ----------------------------------------------


@pytest.mark.parametrize("backend", CLICKHOUSE)
def test_racing_copies_count_once_and_the_earliest_stays(
    backend: str, open_store: Callable[[], EventStore]
) -> None:
    """Two appends that both found an id new (each checked before the other stored it)."""
    first, late = open_store(), open_store()
    assert isinstance(late, ClickHouseEventStore)
    late._stored_ids = lambda org_id, ids: []  # type: ignore[method-assign]
    original = ev("r1", D1, "09:00", "activity", "alice")
    copy = ev("r1", D2, "09:00", "activity", "bob")
    first.append_events(ORG, [original])
    assert late.append_events(ORG, [copy, ev("r2", D1, "10:00", "activity", "bob")]).new_ids == {
        "r1",
        "r2",
    }  # the duplicates figure misses the other copy: allowed
    for reader in (first, late):
        assert reader.count_events(ORG) == 2
        assert reader.active_members(ORG, D1, D3).per_day == {("", D1): 2}
        listed = reader.list_events(ORG, start_us=None, end_us=None, after=None, limit=10)
        assert listed[0] == original


@pytest.mark.parametrize("backend", CLICKHOUSE)
def test_a_retry_settles_copies_left_by_a_failed_append(
    backend: str, open_store: Callable[[], EventStore]
) -> None:
    """An append that stored a racing copy, then failed before telling it apart: its client
    retries (or a rollup rebuild runs) and the copy is no longer counted."""
    first, failing = open_store(), open_store()
    assert isinstance(failing, ClickHouseEventStore)
    failing._stored_ids = lambda org_id, ids: []  # type: ignore[method-assign]
    failing._settle = lambda org_id, ids: None  # type: ignore[method-assign]
    first.append_events(ORG, [ev("f1", D1, "09:00", "activity", "alice")])
    first.append_events(ORG, [ev("f2", D1, "09:00", "activity", "alice")])
    failing.append_events(ORG, [ev("f1", D1, "09:00", "activity", "bob")])
    failing.append_events(ORG, [ev("f2", D1, "09:00", "activity", "bob")])
    assert first.count_events(ORG) == 4  # not settled yet
    assert first.append_events(ORG, [ev("f1", D1, "09:00", "activity", "bob")]).new_ids == set()
    assert first.count_events(ORG) == 3
    first.rebuild_rollups(ORG)
    assert first.count_events(ORG) == 2
    assert first.active_members(ORG, D1, D1).per_day == {("", D1): 1}


@pytest.mark.parametrize("backend", CLICKHOUSE)
def test_rollups_net_out_race_losers(backend: str, open_store: Callable[[], EventStore]) -> None:
    """The rollups see every stored copy; a racing copy with other content (another member,
    day, key or app value) changes no statistic once it is listed as a loser."""
    first, late = open_store(), open_store()
    assert isinstance(late, ClickHouseEventStore)
    late._stored_ids = lambda org_id, ids: []  # type: ignore[method-assign]
    originals = [EVENTS[0], EVENTS[10], APP_EVENTS[3]]  # c1 (alice), w1 (ws1), d1 (100 records)
    first.append_events(ORG, originals[:2])
    first.append_events(APPS, originals[2:])
    copies = [
        ev(
            "c1",
            D2,
            "09:00",
            "completion",
            "bob",
            ide="vim",
            language="go",
            lines_suggested=9,
            accepted=True,
            lines_accepted=9,
        ),
        ev("w1", D3, "10:00", "workspace_activity", "carol", workspace="ws2"),
    ]
    late.append_events(ORG, copies)
    late.append_events(APPS, [ev("d1", D3, "12:00", "app_data", "dave", app="app1", records=7)])
    for reader in (first, late):
        assert reader.assistant_usage(ORG, EVERYONE, D1, D3) == [
            AssistantDay(
                D1, 1, 0, 1, (CompletionUsage("vscode", "python", 1, 1, 10, 4, 1),), (), ()
            )
        ]
        workspaces = reader.active_members(
            ORG, D1, D3, event_types=["workspace_activity"], per_workspace=True
        )
        assert workspaces.per_day == {("ws1", D2): 1}
        developers = reader.active_members(
            ORG, D1, D3, event_types=["workspace_activity"], during=EVERYONE, cohort="developers"
        )
        assert developers.per_month == {("", 2026, 3): 1}
        assert reader.active_members(ORG, D1, D3).per_day == {("", D1): 1, ("", D2): 1}
        assert reader.app_totals(APPS, ["app1"], day=D3, end_us=day_end(D3)) == {
            "app1": AppTotals({}, 100, None, None)
        }


def test_span_cutting_a_day_counts_only_that_days_events_inside(loaded: EventStore) -> None:
    """A member span that starts inside one day with events and covers the next ones whole:
    the cut day is counted from its events inside the span, the others whole."""
    spans = [MemberSpan("alice", at(D1, "11:30"), FAR), MemberSpan("bob", at(D2, "09:30"), FAR)]
    usage = loaded.assistant_usage(ORG, spans, D1, D3)
    assert [(d.day, d.active_developers, d.active_chat, d.active_completion) for d in usage] == [
        (D1, 1, 1, 0),  # alice's h1 (12:00) only; c1 and c3 are before her span
        (D2, 1, 0, 0),  # alice's k3; bob's h3 (09:00) is before his span
    ]
    developers = loaded.active_members(
        ORG, D1, D3, event_types=["workspace_activity"], during=spans, cohort="developers"
    )
    assert developers.per_day == {("", D2): 2}  # w1, w2 (10:00), w3
    anyone = loaded.active_members(ORG, D1, D3, during=spans)
    assert anyone.per_day == {("", D1): 1, ("", D2): 2, ("", D3): 1}
    assert anyone.per_month == {("", 2026, 3): 2}
    ends_inside = [MemberSpan("bob", 0, at(D2, "09:30"))]  # bob's D1 whole, D2 up to 09:30
    (d1, d2) = loaded.assistant_usage(ORG, ends_inside, D1, D3)
    assert (d1.day, d1.active_developers, d2.day, d2.active_chat) == (D1, 1, D2, 1)


@pytest.mark.parametrize("backend", ["cluster"])
def test_rows_land_on_both_shards(
    backend: str, loaded: EventStore, request: pytest.FixtureRequest
) -> None:
    cluster: ClickHouseCluster = request.getfixturevalue("clickhouse_cluster")
    database: str = request.getfixturevalue("clickhouse_database")
    counts = []
    for shard in (0, 1):
        rows = cluster.execute(shard, f"SELECT count() FROM {database}.events_local")
        assert isinstance(rows, list)
        counts.append(rows[0][0])
    assert all(n > 0 for n in counts)
    assert sum(counts) == len(EVENTS) + len(APP_EVENTS)


@pytest.mark.parametrize("backend", CLICKHOUSE)
def test_schema_creation_is_idempotent(
    loaded: EventStore, open_store: Callable[[], EventStore], backend: str
) -> None:
    again = open_store()
    assert again.count_events(ORG) == len(EVENTS)


# -- the oracle: random events, a plain Python computation -------------------------------


def test_random_events_match_a_plain_computation(store: EventStore) -> None:
    rng = random.Random(20260315)
    members = [f"m{i}" for i in range(6)]
    days = [D1 + timedelta(days=i) for i in range(4)]
    events = [
        _random_event(rng, f"id{i:04d}", rng.choice(members), rng.choice(days)) for i in range(300)
    ]
    for start in range(0, len(events), 70):
        store.append_events(ORG, events[start : start + 70])
    store.append_events(ORG, rng.sample(events, 40))  # duplicates: ignored
    spans = _random_spans(rng, members, days)
    first, last = days[1], days[3]

    assert store.count_events(ORG) == len(events)
    assert store.assistant_usage(ORG, spans, first, last) == _usage_oracle(
        events, spans, first, last
    )
    for kwargs in (
        {},
        {"event_types": ["workspace_activity"]},
        {"during": spans},
        {"event_types": ["workspace_activity"], "per_workspace": True, "during": spans},
        {"event_types": ["completion", "code"]},
    ):
        answer = store.active_members(ORG, first, last, **kwargs)
        assert answer == _active_oracle(events, first, last, **kwargs), kwargs
    apps = ["app0", "app1", "app2"]
    for day in days:
        assert store.app_totals(ORG, apps, day=day, end_us=day_end(day)) == _apps_oracle(
            events, apps, day
        )


def _random_event(rng: random.Random, event_id: str, member: str, day: date) -> StoredEvent:
    kind = rng.choice(
        [
            "completion",
            "chat",
            "code",
            "activity",
            "workspace_activity",
            "app_resource",
            "app_data",
            "app_visit",
            "app_edit",
        ]
    )
    hhmm = f"{rng.randrange(24):02d}:{rng.randrange(0, 60, 15):02d}"  # shared instants: ties
    ide, language = rng.choice(["vscode", "jetbrains", "Vim"]), rng.choice(["go", "python", "Ö"])
    fields: dict[str, Any] = {}
    if kind == "completion":
        accepted = rng.random() < 0.5
        fields = {
            "ide": ide,
            "language": language,
            "lines_suggested": rng.randrange(10),
            "accepted": accepted,
            "lines_accepted": rng.randrange(5) if accepted else 0,
        }
    elif kind == "chat":
        fields = {
            "ide": ide,
            "chat_type": rng.choice(["FREE_INPUT", "explain", "EXPLAIN_CODE"]),
            "accepted": rng.random() < 0.5,
        }
    elif kind == "code":
        fields = {
            "language": language,
            "source": rng.choice(["chat", "completion"]),
            "lines_accepted": rng.randrange(9),
            "lines_changed": rng.randrange(9),
        }
    elif kind == "workspace_activity":
        fields = {"workspace": rng.choice(["ws1", "ws2", "ws3"])}
    elif kind.startswith("app_"):
        fields = {"app": rng.choice(["app0", "app1"])}
        if kind == "app_resource":
            fields |= {"resource": rng.choice(["dash", "etl", "bpa"]), "delta": rng.randint(-3, 5)}
        elif kind == "app_data":
            fields["records"] = rng.randrange(1000)
    return ev(event_id, day, hhmm, kind, member, **fields)


def _random_spans(rng: random.Random, members: list[str], days: list[date]) -> list[MemberSpan]:
    """Per member: nothing, everything, or one or two disjoint pieces cutting days."""
    spans: list[MemberSpan] = []
    cuts = sorted(at(rng.choice(days), f"{rng.randrange(24):02d}:00") for _ in range(3))
    for member in members:
        shape = rng.randrange(4)
        if shape == 1:
            spans.append(MemberSpan(member, 0, FAR))
        elif shape == 2:
            spans.append(MemberSpan(member, cuts[0], cuts[2]))
        elif shape == 3:
            spans += [MemberSpan(member, 0, cuts[0]), MemberSpan(member, cuts[1], FAR)]
    return spans


def _inside(event: StoredEvent, spans: list[MemberSpan]) -> bool:
    return any(s.member == event.member and s.from_us <= event.ts < s.to_us for s in spans)


def _usage_oracle(
    events: list[StoredEvent], spans: list[MemberSpan], first: date, last: date
) -> list[AssistantDay]:
    hits = [
        e
        for e in events
        if first <= e.day <= last and e.type in ("completion", "chat", "code") and _inside(e, spans)
    ]
    result = []
    for day in sorted({e.day for e in hits}):
        today = [e for e in hits if e.day == day]
        groups: dict[tuple[str, str, str], list[StoredEvent]] = defaultdict(list)
        for e in today:
            if e.type == "completion":
                groups["completion", e.ide or "", e.language or ""].append(e)
            elif e.type == "chat":
                groups["chat", e.chat_type or "", e.ide or ""].append(e)
            else:
                groups["code", e.language or "", ""].append(e)

        def of(
            kind: str, groups: dict[tuple[str, str, str], list[StoredEvent]] = groups
        ) -> list[tuple[tuple[str, str], list[StoredEvent]]]:
            return sorted(
                ((key[1], key[2]), group) for key, group in groups.items() if key[0] == kind
            )

        def who(group: list[StoredEvent]) -> int:
            return len({e.member for e in group})

        result.append(
            AssistantDay(
                day,
                who(today),
                who([e for e in today if e.type == "chat"]),
                who([e for e in today if e.type == "completion"]),
                tuple(
                    CompletionUsage(
                        k1,
                        k2,
                        len(g),
                        sum(bool(e.accepted) for e in g),
                        sum(e.lines_suggested or 0 for e in g),
                        sum(e.lines_accepted or 0 for e in g),
                        who(g),
                    )
                    for (k1, k2), g in of("completion")
                ),
                tuple(
                    ChatUsage(k1, k2, len(g), sum(bool(e.accepted) for e in g), who(g))
                    for (k1, k2), g in of("chat")
                ),
                tuple(
                    CodingUsage(
                        k1,
                        sum(e.lines_accepted or 0 for e in g),
                        sum(e.lines_changed or 0 for e in g),
                        sum(e.lines_accepted or 0 for e in g if e.source == "chat"),
                        who(g),
                    )
                    for (k1, _), g in of("code")
                ),
            )
        )
    return result


def _active_oracle(
    events: list[StoredEvent],
    first: date,
    last: date,
    *,
    event_types: list[str] | None = None,
    during: list[MemberSpan] | None = None,
    per_workspace: bool = False,
) -> ActiveMembers:
    days: dict[tuple[str, date], set[str]] = defaultdict(set)
    months: dict[tuple[str, int, int], set[str]] = defaultdict(set)
    for e in events:
        if not first <= e.day <= last:
            continue
        if event_types is not None and e.type not in event_types:
            continue
        if during is not None and not _inside(e, during):
            continue
        if per_workspace and e.workspace is None:
            continue
        group = e.workspace or "" if per_workspace else ""
        days[group, e.day].add(e.member)
        months[group, e.day.year, e.day.month].add(e.member)
    return ActiveMembers.from_days(
        {k: len(v) for k, v in days.items()}, {k: len(v) for k, v in months.items()}
    )


def _apps_oracle(events: list[StoredEvent], apps: list[str], day: date) -> dict[str, AppTotals]:
    result = {}
    for app in apps:
        mine = [e for e in events if e.app == app and e.day <= day and e.ts < day_end(day)]
        if not mine:
            continue
        resources: dict[str, int] = defaultdict(int)
        for e in mine:
            if e.type == "app_resource" and e.resource is not None:
                resources[e.resource] += e.delta or 0
        data = max(
            (e for e in mine if e.type == "app_data"), key=lambda e: (e.ts, e.id), default=None
        )
        visits = [e.ts for e in mine if e.type == "app_visit"]
        edits = [e.ts for e in mine if e.type == "app_edit"]
        result[app] = AppTotals(
            dict(resources),
            None if data is None else data.records,
            max(visits, default=None),
            max(edits, default=None),
        )
    return result


def _as_dict(event: StoredEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__struct_fields__}


# -- per-member usage and last events (the fast overrides against a plain computation) -------


@pytest.mark.parametrize("pieces_apart", [64, 0])
def test_member_usage_and_latest_events_match_a_plain_computation(
    store: EventStore, pieces_apart: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random events, some sent twice, and spans cutting days (a member moving departments
    mid-day: ``mover``'s span ends at 13:00 on a day with events on both sides of it).
    ``pieces_apart``: up to how many partial pieces the DuckDB store reads each apart (0: it
    joins them all)."""
    monkeypatch.setattr(duckdb_rollups, "PIECES_APART", pieces_apart)
    rng = random.Random(20261201)
    members = [f"m{i}" for i in range(6)]
    days = [D1 + timedelta(days=i) for i in range(4)]
    events = [
        _random_event(rng, f"id{i:04d}", rng.choice(members), rng.choice(days)) for i in range(300)
    ]
    mover = [
        ev("mv1", D2, "09:00", "chat", "mover", ide="vscode", chat_type="explain", accepted=True),
        ev("mv2", D2, "12:45", "code", "mover", language="go", lines_accepted=3, lines_changed=4),
        ev("mv3", D2, "13:00", "chat", "mover", ide="vscode", chat_type="explain", accepted=True),
        ev("mv4", D2, "18:00", "completion", "mover", ide="vim", language="go", lines_suggested=1),
        ev("mv5", D3, "10:00", "chat", "mover", ide="vscode", chat_type="explain"),
    ]
    events += mover
    for start in range(0, len(events), 70):
        store.append_events(ORG, events[start : start + 70])
    store.append_events(ORG, rng.sample(events, 60))  # duplicates: ignored
    store.append_events(ORG, mover)
    spans = [*_random_spans(rng, members, days), MemberSpan("mover", 0, at(D2, "13:00"))]
    everyone = [MemberSpan(m, 0, FAR) for m in [*members, "mover"]]
    for who, first, last in ((spans, days[1], days[3]), (everyone, days[0], days[3])):
        expected = _member_usage_oracle(events, who, first, last)
        assert any(d.member == "mover" for d in expected) or who is everyone
        for offset, limit in ((0, None), (0, 3), (2, 5), (len(expected) - 1, 5), (100, 5)):
            answer = store.member_usage(ORG, who, first, last, offset=offset, limit=limit)
            wanted = expected[offset:] if limit is None else expected[offset : offset + limit]
            assert (answer.total, answer.days) == (len(expected), wanted), (offset, limit)
    mover_d2 = store.member_usage(ORG, spans, D2, D2).days
    assert [(d.member, d.last_us) for d in mover_d2 if d.member == "mover"] == [
        ("mover", at(D2, "12:45"))
    ]
    assert store.member_usage(ORG, [], D1, D3).total == 0
    assert store.member_usage(ORG, everyone, date(2026, 5, 1), date(2026, 5, 2)).total == 0
    latest: dict[str, int] = {}
    for e in events:
        latest[e.member] = max(latest.get(e.member, e.ts), e.ts)
    assert store.latest_event_times(ORG) == latest
    assert store.latest_event_times(QUIET) == {}


def _member_usage_oracle(
    events: list[StoredEvent], spans: list[MemberSpan], first: date, last: date
) -> list[MemberDay]:
    """Per (day, member) in that order: the counted events' breakdowns (sorted by key) and
    the latest counted instant."""
    hits: dict[tuple[date, str], list[StoredEvent]] = defaultdict(list)
    for e in events:
        if (
            first <= e.day <= last
            and e.type in ("completion", "chat", "code")
            and _inside(e, spans)
        ):
            hits[e.day, e.member].append(e)
    result = []
    for (day, member), mine in sorted(hits.items()):
        groups: dict[tuple[str, str, str], list[StoredEvent]] = defaultdict(list)
        for e in mine:
            if e.type == "completion":
                groups["completion", e.ide or "", e.language or ""].append(e)
            elif e.type == "chat":
                groups["chat", e.chat_type or "", e.ide or ""].append(e)
            else:
                groups["code", e.language or "", ""].append(e)
        of = sorted(groups.items())
        result.append(
            MemberDay(
                day,
                member,
                max(e.ts for e in mine),
                tuple(
                    CompletionUsage(
                        k1,
                        k2,
                        len(g),
                        sum(bool(e.accepted) for e in g),
                        sum(e.lines_suggested or 0 for e in g),
                        sum(e.lines_accepted or 0 for e in g),
                        1,
                    )
                    for (kind, k1, k2), g in of
                    if kind == "completion"
                ),
                tuple(
                    ChatUsage(k1, k2, len(g), sum(bool(e.accepted) for e in g), 1)
                    for (kind, k1, k2), g in of
                    if kind == "chat"
                ),
                tuple(
                    CodingUsage(
                        k1,
                        sum(e.lines_accepted or 0 for e in g),
                        sum(e.lines_changed or 0 for e in g),
                        sum(e.lines_accepted or 0 for e in g if e.source == "chat"),
                        1,
                    )
                    for (kind, k1, _), g in of
                    if kind == "code"
                ),
            )
        )
    return result


@pytest.mark.parametrize("backend", CLICKHOUSE)
def test_member_usage_and_latest_events_net_out_race_losers(
    backend: str, open_store: Callable[[], EventStore]
) -> None:
    """Racing copies: one with the same content (its instant ties the original's), one with
    another member, day and a later instant (the latest instant of that member-day and of that
    member in the rollups); neither counts, and the latest instants are the live events'."""
    first, late = open_store(), open_store()
    assert isinstance(late, ClickHouseEventStore)
    late._stored_ids = lambda org_id, ids: []  # type: ignore[method-assign]
    chat = {"ide": "vscode", "chat_type": "explain"}
    first.append_events(
        ORG,
        [
            ev("x1", D1, "09:00", "chat", "alice", **chat, accepted=True),
            ev("x2", D1, "08:00", "chat", "alice", **chat),
            ev("x3", D1, "07:00", "chat", "bob", **chat),
        ],
    )
    late.append_events(
        ORG,
        [
            ev("x1", D1, "09:00", "chat", "alice", **chat, accepted=True),  # the same copy
            ev("x2", D1, "23:00", "chat", "bob", **chat),  # bob's latest, in the rollups only
            ev("x4", D1, "06:00", "activity", "alice"),
        ],
    )
    for reader in (first, late):
        usage = reader.member_usage(ORG, EVERYONE, D1, D3)
        assert usage.total == 2
        assert usage.days == [
            MemberDay(
                D1, "alice", at(D1, "09:00"), (), (ChatUsage("explain", "vscode", 2, 1, 1),), ()
            ),
            MemberDay(
                D1, "bob", at(D1, "07:00"), (), (ChatUsage("explain", "vscode", 1, 0, 1),), ()
            ),
        ]
        assert reader.latest_event_times(ORG) == {"alice": at(D1, "09:00"), "bob": at(D1, "07:00")}


def test_a_store_without_the_last_event_rollup_is_filled_when_opened(
    backend: str,
    open_store: Callable[[], EventStore],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """A store created before ``member_last`` existed: opening it creates the rollup and fills
    it from the stored events; later appends reach it (the views, or the store's own rollup)."""
    if backend == "duckdb":
        old_file = DuckDBStore(tmp_path / "old.duckdb")
        old_file.put_org(Organization(id=ORG, name=ORG, domain="acme.test", timezone=TZ))
        old_file.append_events(ORG, EVENTS)
        old_file.close()
        raw = duckdb.connect(str(tmp_path / "old.duckdb"))
        raw.execute("DROP TABLE member_last")
        raw.close()
        reopened: EventStore = DuckDBStore(tmp_path / "old.duckdb")
        request.addfinalizer(reopened.close)
    else:
        old = open_store()
        assert isinstance(old, ClickHouseEventStore)
        old.append_events(ORG, EVENTS)
        drops = [
            "DROP TABLE IF EXISTS {db}.member_last_any_view{s}",
            "DROP TABLE IF EXISTS {db}.member_last_assistant_view{s}",
            "DROP TABLE IF EXISTS {db}.member_last{s}",
        ]
        if backend == "cluster":
            cluster: ClickHouseCluster = request.getfixturevalue("clickhouse_cluster")
            for shard in (0, 1):
                for sql in [*drops, "DROP TABLE IF EXISTS {db}.member_last"]:
                    cluster.execute(shard, sql.format(db=old.database, s="_local"))
        else:
            for sql in drops:
                old._executor.execute(sql.format(db=old.database, s=""))
        old.close()
        reopened = open_store()
    reopened.append_events(
        ORG, [ev("late", D3, "20:00", "chat", "bob", **{"ide": "vim", "chat_type": "x"})]
    )
    assert reopened.latest_event_times(ORG) == {
        "alice": at(APRIL, "08:00"),
        "bob": at(D3, "20:00"),
        "carol": at(D3, "09:00"),
    }
    days = reopened.member_usage(ORG, EVERYONE, D1, D3).days
    assert [(d.day, d.member, d.last_us) for d in days] == [
        (D1, "alice", at(D1, "12:00")),
        (D1, "bob", at(D1, "15:00")),
        (D1, "carol", at(D1, "13:00")),
        (D2, "alice", at(D2, "23:59")),
        (D2, "bob", at(D2, "09:00")),
        (D2, "carol", at(D2, "00:30")),
        (D3, "bob", at(D3, "20:00")),
    ]
