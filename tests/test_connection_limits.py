"""What one client can hold of a server: a connection that sends nothing, or too little, or too
much, is answered and closed; connections and request bodies in flight are bounded (issue 19,
items 6 and 7). Against a real ``tally serve`` over raw sockets: the bounds live in the server.

The socket timeouts below only stop a broken test from hanging; what is asserted is what the
server sends and that it closes the connection, never how fast.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tally.errors import Overloaded
from tally.limits import BodyBudget
from tests.conftest import ADMIN, bearer
from tests.server import ServerProcess

GUARD_SECONDS = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("limits") / "tally.duckdb"
    process = ServerProcess(
        db,
        ADMIN,
        env={
            "TALLY_HEADER_TIMEOUT_SECONDS": "0.5",
            "TALLY_BODY_TIMEOUT_SECONDS": "0.5",
            "TALLY_KEEP_ALIVE_SECONDS": "1",
            "TALLY_MAX_HEADER_BYTES": "4096",
            "TALLY_MAX_BODY_BYTES_IN_FLIGHT": "10000",
            "TALLY_SMALL_BODY_BYTES": "1000",
            "TALLY_MAX_CONNECTIONS": "20",
        },
    )
    org = {"name": "Acme", "domain": "acme.example", "timezone": "UTC"}
    assert httpx.put(f"{process.url}/api/v1/orgs/acme", json=org, headers=bearer(ADMIN))
    yield process
    process.stop()


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(GUARD_SECONDS)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_a_connection_that_sends_nothing_is_closed_with_408(server: ServerProcess) -> None:
    with _connect(server) as sock:
        answer = _read_until_closed(sock)
    status, body = _status_and_body(answer)
    assert status == 408
    assert body == b"the request's headers did not arrive in time"


def test_headers_that_stop_half_way_are_closed_with_408(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: tally\r\nX-Slow: ")
        status, _ = _status_and_body(_read_until_closed(sock))
    assert status == 408


def test_too_many_header_bytes_are_refused_with_431(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: tally\r\nX-Big: " + b"a" * 5000 + b"\r\n")
        status, _ = _status_and_body(_read_until_closed(sock))
    assert status == 431


def test_a_body_that_stops_half_way_gets_408_in_the_apis_shape(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/orgs/acme/events HTTP/1.1\r\nHost: tally\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[{"id":'
        )
        status, body = _status_and_body(_read_until_closed(sock))
    assert status == 408
    problem = json.loads(body)
    assert problem["title"] == "Request timeout"
    assert problem["detail"] == "the request's body did not arrive within 0.5 seconds"


def test_the_app_usage_api_answers_a_slow_body_in_its_own_shape(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/app/usage_stats HTTP/1.1\r\nHost: tally\r\n"
            b"Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{"
        )
        status, body = _status_and_body(_read_until_closed(sock))
    assert status == 408
    assert json.loads(body) == {
        "code": 4080,
        "msg": "the request's body did not arrive within 0.5 seconds",
    }


def test_an_idle_keep_alive_connection_is_closed(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: tally\r\n\r\n")
        answer = _read_until_closed(sock)  # returns only once the server closes
    assert answer.startswith(b"HTTP/1.1 200 OK")


def test_bodies_in_flight_are_bounded_and_small_ones_pass(server: ServerProcess) -> None:
    events = f"{server.url}/api/v1/orgs/acme/events"
    with _connect(server) as holder:
        # A large body that is still arriving holds 9,000 of the 10,000 bytes.
        holder.sendall(
            b"POST /api/v1/orgs/acme/events HTTP/1.1\r\nHost: tally\r\n"
            b"Content-Type: application/json\r\nContent-Length: 9000\r\n\r\n["
        )
        big = httpx.post(events, content=b" " * 2000, headers=bearer(ADMIN))
        small = httpx.post(
            events,
            content=b"[]" + b" " * 900,
            headers={**bearer(ADMIN), "content-type": "application/json"},
        )
    assert big.status_code == 503
    assert big.headers["retry-after"] == "1"
    assert big.json()["title"] == "Service unavailable"
    assert small.status_code == 200
    # Once the holder is gone (its body timed out), the same large body is taken.
    again = httpx.post(
        events,
        content=b"[]" + b" " * 2000,
        headers={**bearer(ADMIN), "content-type": "application/json"},
    )
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": 0, "rejected": []}


def test_more_connections_than_allowed_get_503(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "tally.duckdb",
        ADMIN,
        env={"TALLY_MAX_CONNECTIONS": "3", "TALLY_HEADER_TIMEOUT_SECONDS": "60"},
    )
    try:
        idle = [_connect(server) for _ in range(2)]
        refused = httpx.get(server.url + "/healthz")
        for sock in idle:
            sock.close()
        # uvicorn notices the closed sockets as the event loop runs; ask until it has.
        statuses = [httpx.get(server.url + "/healthz").status_code for _ in range(50)]
    finally:
        server.stop()
    assert refused.status_code == 503
    assert 200 in statuses


def test_the_budget_counts_large_bodies_and_lets_one_through() -> None:
    budget = BodyBudget(limit=1000, small=100)
    first, second, small = budget.reservation(), budget.reservation(), budget.reservation()
    first.grow(5000)  # larger than the whole budget, but alone: let through
    assert budget.in_flight == 5000
    small.grow(100)  # never counted
    assert budget.in_flight == 5000
    with pytest.raises(Overloaded):
        second.grow(101)
    assert budget.in_flight == 5000
    first.release()
    assert budget.in_flight == 0
    second.grow(600)
    second.grow(900)  # grows as more of the body is known
    assert budget.in_flight == 900
    third = budget.reservation()
    third.grow(100)
    with pytest.raises(Overloaded):
        third.grow(101)
    second.release()
    third.grow(1000)
    assert budget.in_flight == 1000
