"""The directory store contract, once, over every backend: the DuckDB file and PostgreSQL.

Then what only a store shared by several processes promises (PostgreSQL): a version that moves
with every write, writes seen by another connection, and a rate limit counted across them.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from tally.model.directory import (
    App,
    Department,
    Member,
    MemberVersion,
    Organization,
    Workspace,
    WorkspaceMembership,
)
from tally.ratelimit import MemoryGcraState
from tally.stores.base import DirectoryStore
from tally.stores.duckdb import DuckDBStore
from tally.stores.postgres import PostgresDirectoryStore
from tally.tokens import TokenRecord

# Until tests/conftest.py names it (then this line is redundant, and harmless).

T0 = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
SHANGHAI = timezone(timedelta(hours=8))
ACME = Organization(id="acme", name="Acme", domain="acme.example", timezone="Asia/Shanghai")


@pytest.fixture(params=["duckdb", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DirectoryStore]:
    backend: DirectoryStore
    if request.param == "duckdb":
        backend = DuckDBStore(tmp_path / "x.duckdb")
    else:
        backend = PostgresDirectoryStore(request.getfixturevalue("postgres_dsn"))
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def pg(postgres_dsn: str) -> Iterator[PostgresDirectoryStore]:
    backend = PostgresDirectoryStore(postgres_dsn)
    try:
        yield backend
    finally:
        backend.close()


def _member(member_id: str, *versions: MemberVersion, deleted_at: datetime | None = None) -> Member:
    return Member(
        id=member_id,
        name=f"Name of {member_id}",
        email=f"{member_id}@acme.example",
        created_at=T0,
        deleted_at=deleted_at,
        versions=versions,
    )


# -- organizations -------------------------------------------------------------------------


def test_org_round_trips_and_is_replaced(store: DirectoryStore) -> None:
    assert store.get_org("acme") is None
    store.put_org(ACME)
    assert store.get_org("acme") == ACME
    renamed = Organization(id="acme", name="Acme Ltd", domain="acme.test", timezone="UTC")
    store.put_org(renamed)
    assert store.get_org("acme") == renamed
    assert store.list_orgs() == [renamed]


def test_orgs_are_listed_in_code_point_order_of_id(store: DirectoryStore) -> None:
    for org_id in ("org-b", "Org-c", "org-a", "örg"):
        store.put_org(Organization(id=org_id, name=org_id, domain="x.example"))
    # Code points: "O" (79) < "o" (111) < "ö" (246), whatever the database's collation.
    assert [o.id for o in store.list_orgs()] == ["Org-c", "org-a", "org-b", "örg"]


def test_unknown_org_has_no_directory(store: DirectoryStore) -> None:
    assert store.load_directory("nobody") is None


def test_known_org_without_anything_has_an_empty_directory(store: DirectoryStore) -> None:
    store.put_org(ACME)
    directory = store.load_directory("acme")
    assert directory is not None
    assert directory.org == ACME
    assert (directory.departments, directory.members, directory.workspaces, directory.apps) == (
        {},
        {},
        {},
        {},
    )


# -- directory -----------------------------------------------------------------------------


def test_department_tree_round_trips_and_a_move_replaces_the_parent(
    store: DirectoryStore,
) -> None:
    store.put_org(ACME)
    store.put_department("acme", Department(id="root", name="Acme"))
    store.put_department("acme", Department(id="eng", name="Engineering", parent="root"))
    store.put_department("acme", Department(id="web", name="Web", parent="eng"))
    store.put_department("acme", Department(id="ops", name="Ops", parent="root"))
    store.put_department("acme", Department(id="web", name="Web team", parent="ops"))
    directory = store.load_directory("acme")
    assert directory is not None
    assert directory.departments == {
        "eng": Department(id="eng", name="Engineering", parent="root"),
        "ops": Department(id="ops", name="Ops", parent="root"),
        "root": Department(id="root", name="Acme", parent=None),
        "web": Department(id="web", name="Web team", parent="ops"),
    }
    assert list(directory.departments) == ["eng", "ops", "root", "web"]
    assert directory.ancestors("web") == ["ops", "root"]


def test_member_keeps_every_version_exactly_and_is_replaced_whole(
    store: DirectoryStore,
) -> None:
    store.put_org(ACME)
    v1 = MemberVersion(effective_at=T0, developer=False, departments=())
    v2 = MemberVersion(
        effective_at=datetime(2026, 3, 5, 0, 0, 0, 1, tzinfo=UTC),
        developer=True,
        departments=("eng", "web"),
    )
    v3 = MemberVersion(
        # Given in +08:00: stored and answered as the same instant, in UTC.
        effective_at=datetime(2026, 4, 1, 9, 0, tzinfo=SHANGHAI),
        developer=True,
        departments=("ops",),
    )
    store.put_member("acme", _member("alice", v1, v2, v3))
    directory = store.load_directory("acme")
    assert directory is not None
    alice = directory.members["alice"]
    assert alice == _member("alice", v1, v2, v3)
    assert alice.versions[2].effective_at == datetime(2026, 4, 1, 1, 0, tzinfo=UTC)
    assert alice.versions[1].effective_at.microsecond == 1
    assert all(v.effective_at.utcoffset() == timedelta(0) for v in alice.versions)
    assert alice.created_at.tzinfo is not None
    assert alice.created_at.utcoffset() == timedelta(0)

    deleted = datetime(2026, 5, 1, tzinfo=UTC)
    store.put_member("acme", _member("alice", v1, v3, deleted_at=deleted))
    directory = store.load_directory("acme")
    assert directory is not None
    assert directory.members == {"alice": _member("alice", v1, v3, deleted_at=deleted)}


def test_members_are_kept_per_org(store: DirectoryStore) -> None:
    store.put_org(ACME)
    store.put_org(Organization(id="other", name="Other", domain="other.example"))
    only = MemberVersion(effective_at=T0, developer=True, departments=("eng",))
    store.put_member("acme", _member("bob", only))
    store.put_member("other", _member("bob", only, deleted_at=T0 + timedelta(days=1)))
    store.put_member("other", _member("carol", only))
    acme, other = store.load_directory("acme"), store.load_directory("other")
    assert acme is not None
    assert other is not None
    assert acme.members == {"bob": _member("bob", only)}
    assert list(other.members) == ["bob", "carol"]
    assert other.members["bob"].deleted_at == datetime(2026, 3, 2, 8, 30, 15, 123456, tzinfo=UTC)


def test_workspace_keeps_its_members_in_order_and_is_replaced_whole(
    store: DirectoryStore,
) -> None:
    store.put_org(ACME)
    memberships = (
        WorkspaceMembership(member="zoe", since=T0),
        WorkspaceMembership(member="adam", since=T0, until=datetime(2026, 3, 9, tzinfo=UTC)),
        WorkspaceMembership(member="zoe", since=datetime(2026, 3, 20, tzinfo=UTC)),
    )
    workspace = Workspace(
        id="ws1", name="Design", created_at=T0, deleted_at=None, members=memberships
    )
    store.put_workspace("acme", workspace)
    directory = store.load_directory("acme")
    assert directory is not None
    assert directory.workspaces == {"ws1": workspace}

    emptied = Workspace(
        id="ws1",
        name="Design (closed)",
        created_at=T0,
        deleted_at=datetime(2026, 6, 1, tzinfo=UTC),
    )
    store.put_workspace("acme", emptied)
    store.put_workspace("acme", Workspace(id="ws0", name="First", created_at=T0, deleted_at=None))
    directory = store.load_directory("acme")
    assert directory is not None
    assert directory.workspaces == {
        "ws0": Workspace(id="ws0", name="First", created_at=T0, deleted_at=None),
        "ws1": emptied,
    }
    assert list(directory.workspaces) == ["ws0", "ws1"]


def test_app_round_trips_with_creator_and_deletion(store: DirectoryStore) -> None:
    store.put_org(ACME)
    deleted = datetime(8999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    app = App(id="app1", name="Forms", creator="alice", created_at=T0, deleted_at=deleted)
    store.put_app("acme", app)
    store.put_app(
        "acme", App(id="app0", name="Sheets", creator="bob", created_at=T0, deleted_at=None)
    )
    directory = store.load_directory("acme")
    assert directory is not None
    assert directory.apps == {
        "app0": App(id="app0", name="Sheets", creator="bob", created_at=T0, deleted_at=None),
        "app1": app,
    }
    restored = App(id="app1", name="Forms 2", creator="carol", created_at=T0, deleted_at=None)
    store.put_app("acme", restored)
    directory = store.load_directory("acme")
    assert directory is not None
    assert directory.apps["app1"] == restored


def test_any_text_round_trips_byte_for_byte(store: DirectoryStore) -> None:
    # NUL cannot be stored in PostgreSQL text, and \x01 is what its escape uses.
    odd = "a\x00b\x01c\x01\x02d\\0 雪 🚀"
    org = Organization(id="o\x00", name=odd, domain=odd, timezone="UTC")
    store.put_org(org)
    store.put_department("o\x00", Department(id="d\x01", name=odd, parent="p\x00"))
    version = MemberVersion(effective_at=T0, developer=True, departments=("d\x01", "e\x00"))
    member = Member(
        id="m\x00", name=odd, email=odd, created_at=T0, deleted_at=None, versions=(version,)
    )
    store.put_member("o\x00", member)
    workspace = Workspace(
        id="w\x00",
        name=odd,
        created_at=T0,
        deleted_at=None,
        members=(WorkspaceMembership(member="m\x00", since=T0),),
    )
    store.put_workspace("o\x00", workspace)
    app = App(id="a\x01\x02", name=odd, creator="m\x00", created_at=T0, deleted_at=None)
    store.put_app("o\x00", app)
    assert store.get_org("o\x00") == org
    assert store.get_org("o") is None
    directory = store.load_directory("o\x00")
    assert directory is not None
    assert directory.departments == {"d\x01": Department(id="d\x01", name=odd, parent="p\x00")}
    assert directory.members == {"m\x00": member}
    assert directory.workspaces == {"w\x00": workspace}
    assert directory.apps == {"a\x01\x02": app}


# -- tokens --------------------------------------------------------------------------------


def test_tokens_are_listed_by_creation_then_id(store: DirectoryStore) -> None:
    admin = TokenRecord(id="t-admin", hash="h0", org=None, scopes=(), created_at=T0)
    later = TokenRecord(
        id="t-a",
        hash="h1",
        org="acme",
        scopes=("read", "ingest"),
        created_at=T0 + timedelta(microseconds=1),
    )
    same_time = TokenRecord(id="t-0", hash="h2", org="acme", scopes=("admin",), created_at=T0)
    assert store.list_tokens() == []
    for token in (later, admin, same_time):
        store.add_token(token)
    assert store.list_tokens() == [same_time, admin, later]
    assert store.list_tokens()[1].is_environment_admin


# -- a store shared by several processes (PostgreSQL) --------------------------------------


def test_a_store_of_one_process_says_it_is_not_shared(tmp_path: Path) -> None:
    """The DuckDB file is never shared, so workers need not ask it for a version."""
    store = DuckDBStore(tmp_path / "x.duckdb")
    try:
        assert store.shared is False
    finally:
        store.close()


def test_every_write_moves_the_directory_version_forward(pg: PostgresDirectoryStore) -> None:
    store = pg
    assert store.shared is True
    only = MemberVersion(effective_at=T0, developer=False, departments=())
    writes: list[Callable[[], None]] = [
        lambda: store.put_org(ACME),
        lambda: store.put_department("acme", Department(id="d", name="D")),
        lambda: store.put_member("acme", _member("m", only)),
        lambda: store.put_workspace(
            "acme", Workspace(id="w", name="W", created_at=T0, deleted_at=None)
        ),
        lambda: store.put_app(
            "acme", App(id="a", name="A", creator="m", created_at=T0, deleted_at=None)
        ),
        lambda: store.add_token(TokenRecord(id="t", hash="h", org=None, scopes=(), created_at=T0)),
        lambda: store.put_org(ACME),  # the same again: still a write
    ]
    seen = [store.directory_version()]
    for write in writes:
        write()
        seen.append(store.directory_version())
    assert seen == sorted(set(seen))  # strictly increasing
    assert store.load_directory("acme") is not None
    assert store.directory_version() == seen[-1]  # reads leave it


def test_a_refused_write_leaves_the_directory_version(pg: PostgresDirectoryStore) -> None:
    token = TokenRecord(id="t", hash="h", org=None, scopes=(), created_at=T0)
    pg.add_token(token)
    before = pg.directory_version()
    with pytest.raises(Exception, match="duplicate key"):
        pg.add_token(token)
    assert pg.directory_version() == before
    assert pg.list_tokens() == [token]


def test_another_process_sees_each_write_and_its_version(postgres_dsn: str) -> None:
    worker_a = PostgresDirectoryStore(postgres_dsn)
    worker_b = PostgresDirectoryStore(postgres_dsn)
    try:
        version = worker_b.directory_version()
        worker_a.put_org(ACME)
        assert worker_b.directory_version() > version
        assert worker_b.get_org("acme") == ACME
        version = worker_b.directory_version()
        worker_a.put_department("acme", Department(id="eng", name="Engineering"))
        assert worker_b.directory_version() > version
        directory = worker_b.load_directory("acme")
        assert directory is not None
        assert directory.departments == {"eng": Department(id="eng", name="Engineering")}
    finally:
        worker_a.close()
        worker_b.close()


def test_processes_starting_together_create_the_schema_once(postgres_dsn: str) -> None:
    stores: list[PostgresDirectoryStore] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def start() -> None:
        try:
            started = PostgresDirectoryStore(postgres_dsn)
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            stores.append(started)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert len(stores) == 6
        assert {s.directory_version() for s in stores} == {0}
    finally:
        for started in stores:
            started.close()


def test_store_reads_from_many_threads_at_once(pg: PostgresDirectoryStore) -> None:
    pg.put_org(ACME)
    results: list[Organization | None] = []
    lock = threading.Lock()

    def read() -> None:
        for _ in range(20):
            org = pg.get_org("acme")
            with lock:
                results.append(org)

    threads = [threading.Thread(target=read) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [ACME] * 320


def test_reads_survive_the_server_dropping_the_connections(
    pg: PostgresDirectoryStore, postgres_dsn: str
) -> None:
    pg.put_org(ACME)
    barrier = threading.Barrier(4)

    def read_together() -> None:
        barrier.wait(timeout=30)
        assert pg.get_org("acme") == ACME

    readers = [threading.Thread(target=read_together) for _ in range(4)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=60)  # now several connections idle in the store
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert pg.get_org("acme") == ACME
    assert pg.load_directory("acme") is not None
    pg.put_department("acme", Department(id="eng", name="Engineering"))
    assert pg.directory_version() > 0


# -- the rate limit, counted across processes (GCRA) -----------------------------------------

SECOND = 1_000_000


def test_rate_limit_lets_one_per_interval_with_a_small_tolerance(
    pg: PostgresDirectoryStore,
) -> None:
    def hit(now_us: int) -> int:
        return pg.rate_limit_hit("k", now_us, interval_us=SECOND, tolerance_us=100_000)

    # t=0: no state, tat = 0; 0 - 0.1 s is not after 0: passes, tat becomes 1 s.
    assert hit(0) == 0
    # t=0 again: tat = 1 s; 1 s - 0.1 s = 0.9 s is after 0: refused, 0.9 s to wait; tat stays.
    assert hit(0) == 900_000
    assert hit(500_000) == 400_000
    # t=0.9 s: 0.9 s is not after 0.9 s: passes, tat becomes 2 s.
    assert hit(900_000) == 0
    assert hit(900_000) == 1_000_000
    # 10 s idle, then a burst at t=12 s: tat = max(2 s, 12 s) = 12 s: the first passes
    # (tat 13 s), the others wait 0.9 s.
    assert [hit(12 * SECOND) for _ in range(4)] == [0, 900_000, 900_000, 900_000]


def test_rate_limit_tolerance_allows_a_burst(pg: PostgresDirectoryStore) -> None:
    def hit(now_us: int) -> int:
        return pg.rate_limit_hit("k", now_us, interval_us=SECOND, tolerance_us=2_500_000)

    # tat 0 -> 1 s -> 2 s -> 3 s: passes while tat - 2.5 s <= 0, i.e. three times;
    # the fourth sees tat 3 s: 3 s - 2.5 s = 0.5 s to wait.
    assert [hit(0) for _ in range(5)] == [0, 0, 0, 500_000, 500_000]
    # At t=0.5 s one more passes (tat 4 s), then 1 s to wait.
    assert [hit(500_000) for _ in range(2)] == [0, 1_000_000]


def test_rate_limit_keys_are_counted_apart(pg: PostgresDirectoryStore) -> None:
    assert pg.rate_limit_hit("app:a", 0, SECOND, 0) == 0
    assert pg.rate_limit_hit("app:a", 0, SECOND, 0) == SECOND
    assert pg.rate_limit_hit("app:b", 0, SECOND, 0) == 0
    assert pg.rate_limit_hit("app:a\x00", 0, SECOND, 0) == 0


def test_rate_limit_counts_across_processes_at_the_same_moment(postgres_dsn: str) -> None:
    workers = [PostgresDirectoryStore(postgres_dsn) for _ in range(4)]
    answers: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(workers))

    def hammer(worker: PostgresDirectoryStore) -> None:
        barrier.wait(timeout=30)
        for _ in range(10):
            answer = worker.rate_limit_hit("shared", 0, SECOND, 4_500_000)
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=hammer, args=(w,)) for w in workers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for worker in workers:
            worker.close()
    # Tolerance 4.5 s at interval 1 s: tat 0..4 s pass (5 of them), tat 5 s stays, and the other
    # 35 hits each wait 5 s - 4.5 s = 0.5 s.
    assert sorted(answers) == [0] * 5 + [500_000] * 35


def test_rate_limit_answers_as_the_in_memory_limiter_of_one_process(
    pg: PostgresDirectoryStore,
) -> None:
    rng = random.Random(15)
    memory = MemoryGcraState()
    now = 0
    for _ in range(300):
        # Mostly forward, sometimes a step back (another worker's clock a little behind).
        now = max(0, now + rng.choice([0, 50_000, 300_000, 950_000, 2_000_000, -200_000]))
        key = rng.choice(["a", "b", "c"])
        expected = memory.rate_limit_hit(key, now, SECOND, 100_000)
        assert pg.rate_limit_hit(key, now, SECOND, 100_000) == expected, (key, now)


def test_rate_limit_refuses_nonsense_parameters(pg: PostgresDirectoryStore) -> None:
    with pytest.raises(ValueError, match="interval_us"):
        pg.rate_limit_hit("k", 0, 0, 0)
    with pytest.raises(ValueError, match="tolerance_us"):
        pg.rate_limit_hit("k", 0, SECOND, -1)
