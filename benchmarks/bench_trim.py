"""Trimming figures, side by side in one run.

    python benchmarks/bench_trim.py

Prints, for a Claude-Code-shaped first request (~88 KB, 25 tools) and a 40-turn
session (~300 KB): size before and after per tier, what the small tier kept,
trim() median time, and prefix stability over every turn of the session.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures import claude_code as cc  # noqa: E402

from trimkit import ModelProfile, Pipeline, decode_request, encode  # noqa: E402
from trimkit.render import prompt_text  # noqa: E402
from trimkit.stage import PromptTooLong  # noqa: E402

CORE_TOOLS = ["Read", "Write", "Edit", "Bash", "Glob", "Grep"]


def median_ms(fn, repeat: int) -> float:
    for _ in range(min(20, repeat)):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


class Size:
    def __init__(self, text: str):
        self.chars = len(text)
        self.tokens = ModelProfile().count_tokens(text)


def sizes() -> None:
    request = cc.first_request(cc.EXAMPLE_PROMPT)
    body = encode(decode_request(request))
    print(f"first request: {len(body):,} bytes of JSON, {len(request['tools'])} tools")
    print(f"{'tier':<8}{'prompt chars before':>22}{'after':>10}{'ratio':>9}{'tokens after (est.)':>22}  goal")
    pipeline = Pipeline()
    for tier, goal in (("small", 4000), ("medium", 8000), ("large", None)):
        result = pipeline.trim(request, ModelProfile.for_tier(tier))
        before, after = Size(prompt_text(result.original)), Size(prompt_text(result.request))
        verdict = "" if goal is None else (f"≤ {goal:,}: " + ("met" if after.chars <= goal else "MISSED"))
        print(f"{tier:<8}{before.chars:>22,}{after.chars:>10,}{before.chars / after.chars:>8.1f}×{after.tokens:>22,}  {verdict}")
    small = pipeline.trim(request, ModelProfile.for_tier("small"))
    text = prompt_text(small.request)
    checks = {
        "user's question": cc.EXAMPLE_PROMPT in text,
        "project instructions": "CLAUDE.md" in text or "Project instructions" in text,
        "working directory": "/home/dev/shop" in text,
        "six core tools": sorted(small.carry.tool_names) == sorted(CORE_TOOLS),
    }
    print("small tier keeps: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in checks.items()))
    print(f"small tier tools: {', '.join(small.carry.tool_names)}")


def speed() -> None:
    pipeline = Pipeline()
    first = encode(decode_request(cc.first_request(cc.EXAMPLE_PROMPT)))
    session = encode(decode_request(cc.session(40)))
    profile = ModelProfile.for_tier("small", context_window=1_000_000, prefill_tps=1e9)
    print()
    print(f"session: {len(session):,} bytes, 40 turns")
    print(f"{'input':<16}{'decode ms':>11}{'trim() ms (median, incl. decode)':>36}  goal")
    for name, body, repeat, goal in (("first request", first, 300, 1.0), ("40-turn session", session, 100, 5.0)):
        decode = median_ms(lambda: decode_request(body), repeat)
        total = median_ms(lambda: pipeline.trim(body, profile), repeat)
        print(f"{name:<16}{decode:>11.3f}{total:>36.3f}  ≤ {goal} ms: {'met' if total <= goal else 'MISSED'}")


def prefix_stability() -> None:
    pipeline = Pipeline()
    print()
    for tier in ("small", "medium", "large"):
        profile = ModelProfile.for_tier(tier, context_window=1_000_000, prefill_tps=1e9)
        prefixes = cc.session_prefixes(40)
        previous = None
        held = checked = cut = 0
        for request in prefixes:
            try:
                result = pipeline.trim(request, profile)
            except PromptTooLong:
                cut += 1
                previous = None
                continue
            text = prompt_text(result.request)
            if result.carry.budget and result.carry.budget.dropped_turns:
                cut += 1
                previous = None
                continue
            if previous is not None:
                checked += 1
                held += text.startswith(previous)
            previous = text
        pct = 100.0 * held / checked if checked else 0.0
        print(f"prefix stability, {tier:<6}: {held}/{checked} turns ({pct:.0f} %), {cut} turns with a budget cut")


if __name__ == "__main__":
    sizes()
    speed()
    prefix_stability()
