"""Stores: where Tally keeps the directory, the tokens and the events.

``base.Store`` is the one interface; each backend is one module implementing it.
"""

from __future__ import annotations

from pathlib import Path

from tally.stores.base import AppendResult, Store


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


__all__ = ["AppendResult", "Store", "open_store"]
