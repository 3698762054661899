"""Caches of what clients send hold what a budget allows, however many distinct large requests come."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

import trimkit
from trimkit.memo import SizedLRU, memoized
from trimkit.profile import ModelProfile

MB = 1 << 20


def big_tools(i: int, chars: int) -> list[dict]:
    return [{"name": "Read", "description": f"variant {i} " + "r" * chars,
             "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}},
            {"name": "Bash", "description": "Run a command",
             "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]


def big_reminder(i: int, chars: int) -> list[dict]:
    text = f"<system-reminder>\n# claudeMd\nvariant {i}\n" + "r" * chars + "\n</system-reminder>"
    return [{"role": "user", "content": [{"type": "text", "text": text}, {"type": "text", "text": "hi"}]}]


def big_system(i: int, chars: int) -> list[dict]:
    return [{"type": "text", "text": f"You are an agent, variant {i}.\n" + "s" * chars}]


PLACES = {
    "tools": ("tools", lambda i, chars: {"tools": big_tools(i, chars)}),
    "reminders": ("reminders", lambda i, chars: {"messages": big_reminder(i, chars)}),
    "system prompt": ("system_prompt", lambda i, chars: {"system": big_system(i, chars)}),
}


@pytest.mark.parametrize("place", PLACES)
def test_seventy_distinct_large_requests_leave_bounded_caches_behind(place):
    stage, part = PLACES[place]
    pipeline = trimkit.Pipeline()
    profile = ModelProfile(name="m", context_window=10**7, tier="large")
    request = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    pipeline.run_stage(stage, {**request, **part(-1, 10)}, profile)  # the caches' own setup
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(70):
            pipeline.run_stage(stage, {**request, **part(i, 2 * MB)}, profile)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < 80 * MB, f"{retained / MB:.0f} MB kept after 70 distinct requests of 2 MB"


def test_the_cache_evicts_by_size_and_keeps_nothing_too_big():
    cache = SizedLRU(100)
    for key in "abcdef":
        cache.put(key, key, 20)
    assert cache.size == 100 and cache.get("a") is None and cache.get("f") == "f"
    cache.put("huge", "x", 26)  # over a quarter of the budget
    assert cache.get("huge") is None and cache.size == 100


def test_memoized_reuses_results_within_its_budget():
    calls = []

    @memoized(1000)
    def length(text: str) -> int:
        calls.append(text)
        return len(text)

    assert length("abc") == length("abc") == 3 and calls == ["abc"]
    length("x" * 300)  # over a quarter of the budget: computed, not kept
    length("x" * 300)
    assert calls == ["abc", "x" * 300, "x" * 300]
    assert length.cache_info().hits == 1
