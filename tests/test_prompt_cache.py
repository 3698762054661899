import numpy as np
import pytest

pytest.importorskip("mlx_lm")

import mlx.core as mx
from hypothesis import given
from hypothesis import strategies as st
from mlx_lm.models.cache import KVCache

from trimkit.backends.prompt_cache import PromptCache, cache_nbytes, common_prefix_length

LAYERS = 2


def kv_cache(tokens: list[int]) -> list[KVCache]:
    """A two-layer KV cache whose rows are the token ids, so its content can be checked."""
    cache = [KVCache() for _ in range(LAYERS)]
    rows = mx.array(tokens, dtype=mx.float32).reshape(1, 1, len(tokens), 1)
    for layer in cache:
        layer.update_and_fetch(rows, rows)
    return cache


def held(cache: list[KVCache]) -> list[int]:
    keys, _ = cache[0].keys_and_values()
    return [int(v) for v in keys.reshape(-1).tolist()]


class Recurrent:
    """Stands in for a recurrent (non-trimmable) layer state."""

    nbytes = 100

    def is_trimmable(self):
        return False


def test_fetch_cuts_the_longest_common_prefix_and_keeps_the_entry_whole():
    store = PromptCache(max_bytes=1 << 30, max_entries=8)
    store.store([1, 2, 3, 4, 5, 6], kv_cache([1, 2, 3, 4, 5, 6]))
    store.store([1, 2, 9, 9], kv_cache([1, 2, 9, 9]))
    cache, reused = store.fetch([1, 2, 3, 4, 7, 8])
    assert reused == 4
    assert held(cache) == [1, 2, 3, 4]
    cache[0].update_and_fetch(mx.full((1, 1, 2, 1), 7.0), mx.full((1, 1, 2, 1), 7.0))
    again, reused = store.fetch([1, 2, 3, 4, 5, 6, 0])
    assert reused == 6 and held(again) == [1, 2, 3, 4, 5, 6]


def test_fetch_always_leaves_one_token_to_prefill():
    store = PromptCache(max_bytes=1 << 30, max_entries=8)
    store.store([1, 2, 3], kv_cache([1, 2, 3]))
    cache, reused = store.fetch([1, 2, 3])
    assert reused == 2 and held(cache) == [1, 2]
    assert store.fetch([5, 6]) == (None, 0)


def test_an_extension_replaces_the_entry_it_covers():
    store = PromptCache(max_bytes=1 << 30, max_entries=8)
    store.store([1, 2], kv_cache([1, 2]))
    store.store([1, 2, 3, 4], kv_cache([1, 2, 3, 4]))
    store.store([1, 2, 3], kv_cache([1, 2, 3]))  # already covered: not stored again
    assert store.token_lists() == [[1, 2, 3, 4]]
    assert store.nbytes == cache_nbytes(kv_cache([1, 2, 3, 4]))


def test_entry_cap_evicts_the_least_recently_used():
    store = PromptCache(max_bytes=1 << 30, max_entries=2)
    store.store([1, 1], kv_cache([1, 1]))
    store.store([2, 2], kv_cache([2, 2]))
    store.fetch([1, 1, 5])  # touches [1, 1]
    store.store([3, 3], kv_cache([3, 3]))
    assert store.token_lists() == [[1, 1], [3, 3]]


def test_byte_cap_evicts_until_it_fits():
    one = cache_nbytes(kv_cache([1]))
    store = PromptCache(max_bytes=int(2.5 * one), max_entries=100)
    for first in range(1, 6):
        store.store([first, 0], kv_cache([first, 0]))
        assert store.nbytes <= store.max_bytes
    assert store.token_lists() == [[4, 0], [5, 0]]
    tiny = PromptCache(max_bytes=one - 1, max_entries=100)
    tiny.store([1], kv_cache([1]))
    assert len(tiny) == 0 and tiny.nbytes == 0


def test_untrimmable_caches_are_reused_only_as_whole_prefixes():
    store = PromptCache(max_bytes=1 << 30, max_entries=8)
    store.store([1, 2, 3], [Recurrent(), Recurrent()])
    assert store.fetch([1, 2, 4, 5]) == (None, 0)
    cache, reused = store.fetch([1, 2, 3, 4])
    assert reused == 3 and len(cache) == 2


@given(st.lists(st.integers(0, 3), max_size=12), st.lists(st.integers(0, 3), max_size=12))
def test_common_prefix_length_matches_a_plain_loop(a, b):
    expected = 0
    while expected < min(len(a), len(b)) and a[expected] == b[expected]:
        expected += 1
    assert common_prefix_length(np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)) == expected
