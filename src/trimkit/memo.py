"""Caches of what clients send, bounded by what they hold rather than by how many entries.

An agent resends the same system prompt, reminders and tools every turn, so the
stages memoize their work on them. ``functools.lru_cache(maxsize=64)`` bounds the
number of entries, not their size: 64 entries of 16 MB tool lists hold a gigabyte.
:class:`SizedLRU` evicts the least recently used entries until the sizes of those
left (their text's length in characters, as the caller measures it) fit a budget,
and never keeps an entry bigger than a quarter of it; :func:`memoized` is the
decorator form, a drop-in for ``lru_cache`` with the same ``cache_info`` and
``cache_clear``.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict, namedtuple
from typing import Any, Callable, Hashable

CacheInfo = namedtuple("CacheInfo", "hits misses maxsize currsize")

_MISSING = object()


class SizedLRU:
    """A least-recently-used map whose entries' sizes sum to at most ``max_size``."""

    def __init__(self, max_size: int, max_entries: int | None = None):
        self.max_size = max_size
        self.max_entries = max_entries
        self.size = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            entry = self._entries.get(key, _MISSING)
            if entry is _MISSING:
                return default
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        """Keep ``value`` (unless it alone would take over a quarter of the budget) and evict to fit."""
        if size > self.max_size // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.size -= old[1]
            self._entries[key] = (value, size)
            self.size += size
            while self._entries and (self.size > self.max_size
                                     or (self.max_entries is not None and len(self._entries) > self.max_entries)):
                _, (_, dropped) = self._entries.popitem(last=False)
                self.size -= dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.size = 0


def text_size(value: Any) -> int:
    """Characters of text in ``value``: strings, and those inside tuples, lists, dicts and their kin."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (tuple, list, frozenset, set)):
        return sum(text_size(item) for item in value) + len(value)
    if isinstance(value, dict):
        return sum(text_size(k) + text_size(v) for k, v in value.items()) + len(value)
    return 1


def memoized(max_size: int, size: Callable[..., int] | None = None, max_entries: int | None = None):
    """``functools.lru_cache`` bounded by size: ``size(*args, **kwargs)`` measures an entry (by
    default the text in its arguments, :func:`text_size`)."""
    measure = size or (lambda *args, **kwargs: text_size(args) + text_size(kwargs))

    def decorate(function: Callable) -> Callable:
        cache = SizedLRU(max_size, max_entries)
        counts = {"hits": 0, "misses": 0}

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = (args, tuple(sorted(kwargs.items()))) if kwargs else args
            found = cache.get(key, _MISSING)
            if found is not _MISSING:
                counts["hits"] += 1
                return found
            counts["misses"] += 1
            result = function(*args, **kwargs)
            cache.put(key, result, measure(*args, **kwargs))
            return result

        wrapper.cache_info = lambda: CacheInfo(counts["hits"], counts["misses"], max_size, cache.size)  # type: ignore[attr-defined]
        wrapper.cache_clear = cache.clear  # type: ignore[attr-defined]
        wrapper.cache = cache  # type: ignore[attr-defined]
        return wrapper

    return decorate
