"""An acknowledged batch survives a crash: kill -9 right after the answer, restart, count."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.server import ServerProcess

TOKEN = "durability-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _batch(b: int, size: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"b{b}-e{i}",
            "time": f"2026-01-{1 + b % 28:02d}T10:00:00+08:00",
            "type": "completion",
            "member": f"m{i % 7}",
            "ide": "vscode",
            "language": "go",
            "lines_suggested": 2,
            "accepted": True,
            "lines_accepted": 1,
        }
        for i in range(size)
    ]


def _setup(url: str) -> None:
    assert (
        httpx.put(
            f"{url}/api/v1/orgs/acme", json={"name": "Acme", "domain": "acme.example"}, headers=AUTH
        ).status_code
        == 200
    )
    for m in range(7):
        response = httpx.put(
            f"{url}/api/v1/orgs/acme/members/m{m}",
            headers=AUTH,
            json={"name": f"M{m}", "created_at": "2025-01-01T00:00:00+08:00"},
        )
        assert response.status_code == 200


def _stored_ids(url: str) -> list[str]:
    ids: list[str] = []
    cursor = ""
    while True:
        page = httpx.get(f"{url}/api/v1/orgs/acme/events?limit=1000{cursor}", headers=AUTH).json()
        ids += [e["id"] for e in page["events"]]
        if page["next_cursor"] is None:
            return ids
        cursor = f"&cursor={page['next_cursor']}"


def test_acknowledged_events_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "crash.duckdb"
    server = ServerProcess(db, TOKEN)
    acknowledged: list[str] = []
    try:
        _setup(server.url)
        with httpx.Client(headers=AUTH, timeout=30) as client:
            for b in range(12):
                batch = _batch(b, 400)
                answer = client.post(f"{server.url}/api/v1/orgs/acme/events", json=batch)
                assert answer.json()["accepted"] == 400
                acknowledged += [e["id"] for e in batch]
        server.kill()  # right after the last acknowledgement: no clean shutdown, no checkpoint
    finally:
        server.stop()
    restarted = ServerProcess(db, TOKEN)
    try:
        ids = _stored_ids(restarted.url)
        assert len(ids) == len(set(ids)) == len(acknowledged)
        assert set(ids) == set(acknowledged)
        # and the duplicate check still knows every one of them
        again = httpx.post(
            f"{restarted.url}/api/v1/orgs/acme/events",
            json=_batch(3, 400),
            headers=AUTH,
            timeout=30,
        ).json()
        assert again == {"accepted": 0, "duplicates": 400, "rejected": []}
    finally:
        restarted.stop()


def test_kill_during_a_stream_of_batches_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """Kill while a client keeps sending: every acknowledged event is there exactly once."""
    import threading

    db = tmp_path / "stream.duckdb"
    server = ServerProcess(db, TOKEN)
    acknowledged: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def send() -> None:
        try:
            with httpx.Client(headers=AUTH, timeout=30) as client:
                for b in range(200):
                    if stop.is_set():
                        return
                    batch = _batch(b, 250)
                    try:
                        answer = client.post(f"{server.url}/api/v1/orgs/acme/events", json=batch)
                    except httpx.TransportError:
                        return  # the server died mid-request: this batch was not acknowledged
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["accepted"] == 250
                    acknowledged.extend(e["id"] for e in batch)
        except BaseException as exc:  # surfaced below: a dead sender must fail the test
            failures.append(exc)

    try:
        _setup(server.url)
        sender = threading.Thread(target=send)
        sender.start()
        # A guard against a hang, not a speed limit: the sender normally gets there in seconds.
        deadline = time.monotonic() + 300
        while len(acknowledged) < 2500 and sender.is_alive() and time.monotonic() < deadline:
            threading.Event().wait(0.01)
        # the kill must land while the client is still sending, after real acknowledgements
        assert sender.is_alive(), f"the sender stopped before the kill: {failures}"
        assert len(acknowledged) >= 2500, "no stream of acknowledged batches before the kill"
        server.kill()
        stop.set()
        sender.join(timeout=60)
        assert not sender.is_alive()
        assert failures == []
    finally:
        server.stop()
    restarted = ServerProcess(db, TOKEN)
    try:
        ids = _stored_ids(restarted.url)
        assert len(ids) == len(set(ids))
        assert set(acknowledged) <= set(ids)
    finally:
        restarted.stop()


def test_a_clean_stop_folds_the_log_into_the_file(tmp_path: Path) -> None:
    """SIGTERM is a clean stop: the server checkpoints, so the next start replays no log."""
    db = tmp_path / "clean.duckdb"
    server = ServerProcess(db, TOKEN)
    try:
        _setup(server.url)
        answer = httpx.post(
            f"{server.url}/api/v1/orgs/acme/events", json=_batch(0, 50), headers=AUTH, timeout=30
        )
        assert answer.json()["accepted"] == 50
        wal = Path(f"{db}.wal")
        assert wal.exists()  # the writes sit in the log
        assert wal.stat().st_size > 0
    finally:
        server.stop()
    assert server.process.returncode is not None
    assert not wal.exists() or wal.stat().st_size == 0
    restarted = ServerProcess(db, TOKEN)
    try:
        assert len(_stored_ids(restarted.url)) == 50
    finally:
        restarted.stop()
