"""How ``tally serve`` runs uvicorn: its connection limits and timeouts, from the settings.

uvicorn bounds idle keep-alive connections and, with ``limit_concurrency``, the connections and
tasks it holds at once (past it: 503), but a connection that opens and sends no request, or
only part of its headers, stays open as long as the client likes. :class:`TimedHttpProtocol`
closes such a connection after ``header_timeout_seconds`` with a 408. A body that stops
arriving is the app's business: :func:`tally.api.base.read_body` gives up after
``body_timeout_seconds``, and answers 408 in the family's error shape.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tally.settings import Settings


def _plain_answer(status: bytes, text: str) -> bytes:
    body = text.encode()
    head = (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
    )
    return head + body


_TIMEOUT_ANSWER = _plain_answer(
    b"408 Request Timeout", "the request's headers did not arrive in time"
)
_TOO_LARGE_ANSWER = _plain_answer(
    b"431 Request Header Fields Too Large", "the request's line and headers are too large"
)


class TimedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus a deadline for a request's headers: armed when the
    connection opens and when the first byte of each request arrives, cleared once the
    headers are complete."""

    #: Seconds a client may take to send a request's headers (set from the settings).
    header_timeout: float = 10.0
    #: Most bytes of a request's line and headers.
    max_header_bytes: int = 64 * 1024

    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_timer is not None:  # still no complete headers: all of it was head
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._answer_and_close(_TOO_LARGE_ANSWER)

    def on_headers_complete(self) -> None:
        self._clear_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._clear_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_late)

    def _clear_header_timer(self) -> None:
        self._header_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_late(self) -> None:
        self._header_timer = None
        self._answer_and_close(_TIMEOUT_ANSWER)

    def _answer_and_close(self, answer: bytes) -> None:
        self._clear_header_timer()
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run`` that bound connections and time."""
    configure_protocol(settings)
    return {
        "http": TimedHttpProtocol,
        "timeout_keep_alive": settings.keep_alive_seconds,
        "limit_concurrency": settings.max_connections or None,
    }


def configure_protocol(settings: Settings) -> None:
    """Give this process's protocol class its deadline (each worker process calls this)."""
    TimedHttpProtocol.header_timeout = settings.header_timeout_seconds
    TimedHttpProtocol.max_header_bytes = settings.max_header_bytes
