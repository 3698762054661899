"""Finding a client's stop sequences in streamed model text, in linear time and memory.

Stop sequences come from the client, so nothing here may cost more than their
length in memory or more than a constant number of looks per character of output
per sequence. Each sequence gets a Knuth–Morris–Pratt failure table (an array of
4-byte ints, built in time proportional to its length) and a state: how much of
it the stream's end matches now. Runs of output where no sequence is partly
matched are searched with ``str.find`` (C, linear); only the characters around a
partial match are stepped through one by one.

The text held back from the client is exactly the longest partial match, so it
never exceeds the longest sequence, and it is kept as a list of the pieces it was
fed in (cut once when released), so holding it costs no copying per chunk.
"""

from __future__ import annotations

from array import array
from collections import deque


class _Sequence:
    """One stop sequence, its failure table and how much of it the stream's end matches."""

    __slots__ = ("text", "fail", "state")

    def __init__(self, text: str):
        self.text = text
        self.fail = _failure_table(text)
        self.state = 0

    def first_end(self, chunk: str) -> int:
        """Where the first complete match ends in ``chunk`` (an index just past it), or -1.

        Advances :attr:`state` over the chunk when there is no match.
        """
        text, fail, m, n = self.text, self.fail, len(self.text), len(chunk)
        s, k = self.state, 0
        while k < n:
            if s == 0:
                found = chunk.find(text, k)
                if found >= 0:
                    return found + m
                # No whole match is left in the chunk: only its last m - 1 characters
                # can begin a partial one, and the state there starts from nothing.
                k = max(k, n - m + 1)
                if k >= n:
                    break
            ch = chunk[k]
            while s and text[s] != ch:
                s = fail[s - 1]
            if text[s] == ch:
                s += 1
                if s == m:
                    return k + 1
            k += 1
        self.state = s
        return -1


def _failure_table(text: str) -> array:
    """``fail[i]``: the length of the longest proper prefix of ``text[:i + 1]`` that is also its suffix."""
    fail = array("i", bytes(4 * len(text)))
    k = 0
    for i in range(1, len(text)):
        ch = text[i]
        while k and text[k] != ch:
            k = fail[k - 1]
        if text[k] == ch:
            k += 1
        fail[i] = k
    return fail


class StopMatcher:
    """Finds the first of several stop strings in streamed text, split anywhere.

    The match reported is the first to be complete in the stream (at equal ends, the
    longer one), so it does not depend on how the text was chunked. Empty and
    repeated strings are ignored.
    """

    def __init__(self, stops: list[str]):
        self.stops = [s for s in dict.fromkeys(stops) if s]
        self._sequences = [_Sequence(s) for s in self.stops]
        self._held: deque[str] = deque()
        self._skip = 0  # characters of the first held piece already released
        self._held_chars = 0

    def feed(self, text: str) -> tuple[str, str | None]:
        """The text that is certainly not part of a stop string, and the stop string matched."""
        best: tuple[int, int, str] | None = None
        for sequence in self._sequences:
            end = sequence.first_end(text)
            if end >= 0:
                key = (end, -len(sequence.text), sequence.text)
                if best is None or key < best:
                    best = key
        if best is not None:
            end, _, stop = best
            # The match starts ``len(stop) - end`` characters before this chunk when
            # that is positive: inside the held text, which holds every partial match.
            before = self._release(self._held_chars - max(0, len(stop) - end))
            self.flush()
            return before + text[: max(0, end - len(stop))], stop
        keep = max((sequence.state for sequence in self._sequences), default=0)
        self._held.append(text)
        self._held_chars += len(text)
        return self._release(self._held_chars - keep), None

    def _release(self, count: int) -> str:
        """The first ``count`` held characters, no longer held; only they are copied."""
        out: list[str] = []
        while count > 0 and self._held:
            first = self._held[0]
            take = min(count, len(first) - self._skip)
            out.append(first[self._skip : self._skip + take])
            self._skip += take
            if self._skip == len(first):
                self._held.popleft()
                self._skip = 0
            count -= take
            self._held_chars -= take
        return "".join(out)

    def flush(self) -> str:
        """Everything held (the end of a stream that matched no stop string); starts afresh."""
        held = self._release(self._held_chars)
        for sequence in self._sequences:
            sequence.state = 0
        return held
