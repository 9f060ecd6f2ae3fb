"""Facts derived from a directory snapshot (who counts for a subtree and when, the daily
totals), kept while the snapshot lives: a directory write makes a new snapshot, so nothing
here is ever stale, and an old snapshot's entries go with it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from tally.model.directory import Directory

T = TypeVar("T")
#: Entries kept per snapshot (windows and subtrees asked about), least recently used dropped.
PER_SNAPSHOT = 512

_lock = threading.Lock()
_memo: WeakKeyDictionary[Directory, OrderedDict[Hashable, Any]] = WeakKeyDictionary()


def derived(directory: Directory, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, once per ``directory`` snapshot and ``key``."""
    with _lock:
        cache = _memo.setdefault(directory, OrderedDict())
        if key in cache:
            cache.move_to_end(key)
            found: T = cache[key]
            return found
    value = compute()
    with _lock:
        cache[key] = value
        if len(cache) > PER_SNAPSHOT:
            cache.popitem(last=False)
    return value
