"""Stores: where Tally keeps the directory, the tokens and the events.

``base.DirectoryStore`` and ``base.EventStore`` are the interfaces (``base.Store`` is both in
one backend); each backend is one module implementing one or both.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tally.errors import BadRequest
from tally.stores.base import AppendResult, DirectoryStore, EventStore, Store

if TYPE_CHECKING:
    from tally.settings import Settings


def open_store(
    path: Path | str, *, memory_limit: str = "", checkpoint_threshold: str = ""
) -> Store:
    """Open the store at ``path``: a DuckDB file (the embedded default).

    ``memory_limit`` caps the database's buffer memory (e.g. ``"1GB"``; empty: its default);
    ``checkpoint_threshold`` is the log size past which it checkpoints (empty: its default).
    """
    from tally.stores.duckdb import DuckDBStore

    return DuckDBStore(
        Path(path), memory_limit=memory_limit, checkpoint_threshold=checkpoint_threshold
    )


def open_stores(settings: Settings) -> tuple[DirectoryStore, EventStore]:
    """The stores the settings name: PostgreSQL and ClickHouse when ``directory_url`` and
    ``events_url`` are set, else the one DuckDB file holding both."""
    if not settings.scale_out:
        store = open_store(
            settings.duckdb_path(),
            memory_limit=settings.store_memory_limit,
            checkpoint_threshold=settings.store_checkpoint_threshold,
        )
        return store, store
    if not (settings.directory_url and settings.events_url):
        raise BadRequest(
            "the scale-out stores come together: set both --directory (PostgreSQL) and"
            " --events (ClickHouse), or neither for the DuckDB file"
        )
    from tally.stores.clickhouse import ClickHouseEventStore
    from tally.stores.postgres import PostgresDirectoryStore

    directory = PostgresDirectoryStore(settings.directory_url)
    try:
        return directory, ClickHouseEventStore(settings.events_url)
    except BaseException:
        directory.close()
        raise


__all__ = ["AppendResult", "DirectoryStore", "EventStore", "Store", "open_store", "open_stores"]
