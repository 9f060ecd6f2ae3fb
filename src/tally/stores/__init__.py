"""Stores: where Tally keeps the directory, the tokens and the events.

``base.Store`` is the one interface; each backend is one module implementing it.
"""

from __future__ import annotations

from pathlib import Path

from tally.stores.base import AppendResult, Store


def open_store(path: Path | str, *, memory_limit: str = "") -> Store:
    """Open the store at ``path``: a DuckDB file (the embedded default).

    ``memory_limit`` caps the database's buffer memory (e.g. ``"1GB"``; empty: its default).
    """
    from tally.stores.duckdb import DuckDBStore

    return DuckDBStore(Path(path), memory_limit=memory_limit)


__all__ = ["AppendResult", "Store", "open_store"]
