"""Stop sequences: found wherever the stream is split, in memory and time linear in their length."""

from __future__ import annotations

import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from trimkit.toolcalls.response import ResponseBuilder, StopMatcher

ALPHABET = "ab\n"


def reference(text: str, stops: list[str]) -> tuple[str, str | None]:
    """The first stop to be complete in ``text`` (at equal ends the longer), and the text before it."""
    best = None
    for stop in {s for s in stops if s}:
        i = text.find(stop)
        if i >= 0:
            key = (i + len(stop), -len(stop), stop)
            best = key if best is None or key < best else best
    if best is None:
        return text, None
    end, _, stop = best
    return text[: end - len(stop)], stop


def matched(chunks: list[str], stops: list[str]) -> tuple[str, str | None]:
    matcher = StopMatcher(stops)
    out = []
    for chunk in chunks:
        text, stop = matcher.feed(chunk)
        out.append(text)
        if stop is not None:
            return "".join(out), stop
    return "".join(out) + matcher.flush(), None


@given(
    text=st.text(ALPHABET, max_size=60),
    stops=st.lists(st.text(ALPHABET, max_size=6), max_size=4),
    cuts=st.lists(st.integers(0, 60), max_size=8),
)
def test_the_match_and_the_text_before_it_do_not_depend_on_where_the_stream_is_split(text, stops, cuts):
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    chunks = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    assert matched(chunks, stops) == reference(text, stops)


def test_text_that_only_starts_a_stop_sequence_is_held_back_and_no_more():
    matcher = StopMatcher(["abcab"])
    assert matcher.feed("xxabca") == ("xx", None)
    assert matcher.feed("b") == ("", "abcab")
    matcher = StopMatcher(["abcab"])
    assert matcher.feed("xxabca") == ("xx", None)
    assert matcher.feed("z") == ("abcaz", None)


def test_a_long_partial_match_is_released_as_soon_as_it_breaks():
    matcher = StopMatcher(["a" * 50 + "b"])
    assert matcher.feed("a" * 80) == ("a" * 30, None)
    assert matcher.feed("c") == ("a" * 50 + "c", None)


def test_a_stop_sequence_of_20000_characters_costs_memory_in_proportion_to_its_length():
    stop = "".join(chr(0x4E00 + i % 500) for i in range(20_000))
    tracemalloc.start()
    try:
        matcher = StopMatcher([stop])
        for i in range(0, 19_990, 7):
            assert matcher.feed(stop[i : min(i + 7, 19_990)]) == ("", None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert matcher.feed(stop[19_990:19_995]) == ("", None)
    assert matcher.feed(stop[19_995:] + "tail") == ("", stop)
    assert peak < 2_000_000, f"peak {peak:,} bytes for a 20,000-character stop sequence"


def test_a_megabyte_of_output_against_a_sequence_it_almost_matches_is_read_in_one_pass():
    stop = "a" * 4000 + "b"
    builder = ResponseBuilder(None, [stop])
    for _ in range(1_000_000 // 1000):
        builder.feed("a" * 1000)
    builder.feed("b")
    builder.finish("stop")
    assert builder.stop_reason == "stop_sequence" and builder.stop_sequence == stop
    assert "".join(b.text for b in builder.content) == "a" * (1_000_000 - 4000)
