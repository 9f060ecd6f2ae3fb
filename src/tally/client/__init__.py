"""Tally's Python client: :class:`TallyClient` (blocking) and :class:`AsyncTallyClient`
(asyncio) for the directory PUTs, batched and retried event sending, every statistics API
(answers decoded into the wire shapes of :mod:`tally.client.shapes`) and exports."""

from __future__ import annotations

from tally.client.aio import AsyncTallyClient
from tally.client.core import (
    RetriesExhausted,
    RetryPolicy,
    TallyAPIError,
    TallyClientError,
)
from tally.client.shapes import Page, Rejection, SendSummary
from tally.client.sync import TallyClient

__all__ = [
    "AsyncTallyClient",
    "Page",
    "Rejection",
    "RetriesExhausted",
    "RetryPolicy",
    "SendSummary",
    "TallyAPIError",
    "TallyClient",
    "TallyClientError",
]
