"""A least-recently-used store of KV caches keyed by the tokens they hold.

Turn N+1 of a conversation starts with the tokens of turn N, so the KV cache left
behind by turn N covers most of the new prompt. ``fetch`` finds the stored cache
sharing the longest token prefix with a new prompt and hands back a copy cut to
that prefix; only the rest needs prefilling. ``store`` keeps the cache after a
generation, keyed by every token it holds (prompt and generated).

A copy is cheap: ``copy.deepcopy`` of an MLX array makes a new handle on the same
buffer, and MLX writes into a cache by replacing the handle's buffer, so the stored
entry never sees later writes. Caches that cannot be trimmed (the recurrent state
of hybrid models) are reused only when their tokens are a whole prefix of the prompt.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache

KVCache = list[Any]  # one cache object per layer, as mlx-lm's make_prompt_cache builds it


def common_prefix_length(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


def cache_nbytes(cache: KVCache) -> int:
    return sum(layer.nbytes for layer in cache)


@dataclass
class _Entry:
    tokens: np.ndarray
    cache: KVCache
    nbytes: int
    trimmable: bool


class PromptCache:
    """KV caches of earlier requests, capped by count and by bytes (LRU eviction)."""

    def __init__(self, max_bytes: int, max_entries: int):
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[int, _Entry] = OrderedDict()  # oldest first
        self._next_key = 0
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def fetch(self, tokens: Sequence[int]) -> tuple[KVCache | None, int]:
        """A private copy of the best cache for ``tokens`` and how many tokens it covers.

        At least one prompt token is always left uncovered: generation needs the
        logits of the last prompt token, which only prefilling it produces.
        """
        prompt = np.asarray(tokens, dtype=np.int64)
        limit = len(prompt) - 1
        best_key, best_reuse = None, 0
        for key, entry in self._entries.items():
            shared = min(common_prefix_length(entry.tokens, prompt), limit)
            reuse = shared if entry.trimmable else (len(entry.tokens) if len(entry.tokens) <= shared else 0)
            if reuse > 0 and reuse >= best_reuse:
                best_key, best_reuse = key, reuse
        if best_key is None:
            return None, 0
        entry = self._entries[best_key]
        self._entries.move_to_end(best_key)
        cache = copy.deepcopy(entry.cache)
        if len(entry.tokens) > best_reuse:
            trim_prompt_cache(cache, len(entry.tokens) - best_reuse)
        return cache, best_reuse

    def store(self, tokens: Sequence[int], cache: KVCache) -> None:
        """Keep ``cache``, which holds exactly ``tokens``; evict to stay within the caps."""
        if not len(tokens):
            return
        held = np.asarray(tokens, dtype=np.int64)
        trimmable = can_trim_prompt_cache(cache)
        for key, entry in list(self._entries.items()):
            shared = common_prefix_length(entry.tokens, held)
            if shared == len(held) and entry.trimmable and len(entry.tokens) >= len(held):
                self._entries.move_to_end(key)  # an entry already covers these tokens
                return
            if shared == len(entry.tokens) and trimmable:
                self._drop(key)  # the new entry covers this one
        nbytes = cache_nbytes(cache)
        self._entries[self._next_key] = _Entry(held, cache, nbytes, trimmable)
        self._next_key += 1
        self.nbytes += nbytes
        while self._entries and (len(self._entries) > self.max_entries or self.nbytes > self.max_bytes):
            self._drop(next(iter(self._entries)))

    def held_prefix(self, tokens: Sequence[int]) -> int:
        """How many leading ``tokens`` some stored cache holds; changes nothing (not even the order)."""
        prompt = np.asarray(tokens, dtype=np.int64)
        return max((common_prefix_length(entry.tokens, prompt) for entry in self._entries.values()), default=0)

    def token_lists(self) -> list[list[int]]:
        """The tokens held by each entry, least recently used first."""
        return [entry.tokens.tolist() for entry in self._entries.values()]

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0

    def _drop(self, key: int) -> None:
        self.nbytes -= self._entries.pop(key).nbytes
