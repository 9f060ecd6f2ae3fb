"""Concurrent batches share transactions, and still store each id once with exact counts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from tally.engine.group_commit import GroupCommitter
from tally.model.directory import MemberInput, OrgInput
from tally.model.events import StoredEvent
from tally.service import Tally
from tally.settings import Settings
from tally.stores.base import AppendResult
from tally.stores.duckdb import DuckDBStore


class GatedStore(DuckDBStore):
    """A real DuckDB store whose first append waits until others have queued behind it."""

    def __init__(self, path: Path, queued: threading.Event) -> None:
        super().__init__(path)
        self.queued = queued
        self.entered = threading.Event()
        self.sizes: list[int] = []

    def append_events(self, org_id: str, events: Sequence[StoredEvent]) -> AppendResult:
        if not self.sizes:
            self.entered.set()
            self.queued.wait(timeout=10)
        self.sizes.append(len(events))
        return super().append_events(org_id, events)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Wait for ``condition``, failing (not hanging) if it never holds: a hang guard, not a
    speed limit."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        threading.Event().wait(0.001)


def _row(event_id: str) -> StoredEvent:
    return StoredEvent(
        id=event_id, ts=1_772_000_000_000_000, day=date(2026, 2, 25), type="activity", member="m1"
    )


def test_batches_waiting_behind_a_commit_are_written_together(tmp_path: Path) -> None:
    queued = threading.Event()
    store = GatedStore(tmp_path / "g.duckdb", queued)
    committer = GroupCommitter(store)
    results: dict[str, frozenset[str]] = {}

    def send(name: str, ids: list[str]) -> None:
        results[name] = committer.append("acme", [_row(i) for i in ids])

    first = threading.Thread(target=send, args=("first", ["a", "b"]))
    first.start()
    assert store.entered.wait(timeout=10)  # the first batch is being written, alone
    others = [
        threading.Thread(target=send, args=("second", ["b", "c", "d"])),
        threading.Thread(target=send, args=("third", ["d", "e"])),
    ]
    for thread in others:
        thread.start()
    wait_until(lambda: len(committer._queue) >= 2, "the two batches to queue")
    queued.set()
    for thread in [first, *others]:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a batch never returned"
    assert store.sizes == [2, 4]  # the second and third batch shared one transaction
    assert results["first"] == {"a", "b"}
    assert results["second"] | results["third"] == {"c", "d", "e"}
    assert results["second"] & results["third"] == frozenset()  # "d" counted once
    assert store.count_events("acme") == 5
    store.close()


def test_concurrent_overlapping_batches_store_each_id_once(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "c.duckdb")
    with Tally(settings) as tally:
        tally.directory.put_org("acme", OrgInput(name="A", domain="a"), has_events=False)
        tally.directory.put_member(
            "acme", "m1", MemberInput(name="M", created_at=datetime(2026, 1, 1, tzinfo=UTC))
        )
        accepted: list[int] = []
        duplicates: list[int] = []

        def send(worker: int) -> None:
            for b in range(10):
                ids = [f"e{(worker * 37 + b * 11 + i) % 300}" for i in range(40)]
                body = (
                    "["
                    + ",".join(
                        f'{{"id":"{i}","time":"2026-02-25T10:00:00+08:00","type":"activity",'
                        f'"member":"m1"}}'
                        for i in ids
                    )
                    + "]"
                )
                result = tally.ingestor.ingest_body("acme", body.encode(), "application/json")
                accepted.append(result.accepted)
                duplicates.append(result.duplicates)

        threads = [threading.Thread(target=send, args=(w,)) for w in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive(), "a sender never returned"
        stored = tally.store.count_events("acme")
        expected = len(
            {
                f"e{(w * 37 + b * 11 + i) % 300}"
                for w in range(6)
                for b in range(10)
                for i in range(40)
            }
        )
        assert stored == expected
        assert sum(accepted) == expected
        assert sum(accepted) + sum(duplicates) == 6 * 10 * 40
