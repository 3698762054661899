"""Where to cut a conversation: pure functions of its sizes, the limits and what is cached.

A cut drops the first ``c`` droppable units (see :class:`.conversation.Conversation`).
Three promises shape the choice:

* **The cut stays put.** The window's cut drops a whole number of *steps*, each a
  fixed number of tokens counted from the oldest turn, so the boundaries never move
  as the conversation grows: request after request cuts at the same place, and
  each request's prompt starts with the last one's, until the prompt outgrows the
  window again. Then the cut moves a whole step, about half the window's limit, and
  many turns follow before it moves again.
* **Monotone in what helps.** A larger window never keeps less: every limit in a
  range shares one step (3·2ⁿ tokens, about half the limit), and the cut is the
  least that any window up to this one, on its own step, would make. More cached
  tokens never keep less: the prefill target only ever cuts beyond the window's
  cut, and less so the more is cached.
* **The prefill target is soft.** It counts only uncached tokens, and acts as a
  smaller window cut in steps, never smaller than a floor (half the window's limit by
  default), so a slow model keeps a conversation worth having and the prefill
  target's cut stays put as the window's does.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Sizes:
    """A conversation's sizes in tokens, as a cut sees them."""

    total: int
    """The whole prompt, nothing dropped."""
    dropped: list[int]
    """Tokens gone when the first ``c`` units go (with their linked units), for ``c`` from 0 to all."""
    middle: int
    """How many units are turns after the opening one (which goes last)."""
    note: int
    """The most the note marking the gap adds."""

    @property
    def units(self) -> int:
        return len(self.dropped) - 1

    def kept(self, count: int) -> int:
        """The prompt's size with the first ``count`` units dropped (the note counted at its largest)."""
        return self.total - self.dropped[count] + (self.note if count else 0)


STEP_REACH = Fraction(8, 5)
"""A step is at most this many times ``drop_step`` of the limit (and more than half that)."""


def step_for(limit: int, share: Fraction) -> int:
    """The step for a limit: the largest 3·2ⁿ tokens within ``STEP_REACH × share`` of it.

    For a limit of 3·2ⁿ tokens, which a power-of-two window less a quarter for output
    is, that is exactly ``share`` of it (half, by default).
    """
    reach = STEP_REACH * share * limit
    if reach < 3:
        return 1
    return 3 << ((int(reach) // 3).bit_length() - 1)


def step_drop(total: int, limit: int, share: float) -> int:
    """Tokens to drop from the oldest turns so that ``total`` fits ``limit``: a whole number of steps.

    Every limit in a range shares one step (:func:`step_for`), so the tokens dropped,
    and the turns they cover, stay the same while ``total`` grows, until it has grown
    by a step; and within a range, a larger limit drops less. Where the step doubles,
    a window just above would drop more than one just below on the finer step: so the
    result is the least that the top of each smaller window's range drops too (the
    ranges below hardly ever win: the step is chosen so the usual limits sit where the
    range below is a whole half-step away).
    """
    if total <= limit:
        return 0
    share = Fraction(share)  # exact, so that every limit falls in one range whatever the float
    step, top, best = step_for(limit, share), limit, None
    while True:
        drop = step * math.ceil((total - top) / step) if total > top else 0
        best = drop if best is None else min(best, drop)
        if step == 1:
            return best
        top = min(top, math.ceil(step / (STEP_REACH * share)) - 1)  # the largest limit on the next step down
        if top <= 0 or total - top >= best:  # smaller windows drop at least total - top
            return best
        step = step // 2 if step >= 6 else 1


def window_cut(sizes: Sizes, limit: int, drop_step: float | int) -> int:
    """Units to drop so that the prompt fits ``limit``; all of them when even that is not enough.

    ``drop_step`` is a share of ``limit`` (see :func:`step_drop`), or a whole number of turns.
    """
    if sizes.total <= limit:
        return 0
    if isinstance(drop_step, int):
        counts = [*range(drop_step, sizes.middle, drop_step), sizes.middle, sizes.units]
        return next((c for c in counts if sizes.kept(c) <= limit), sizes.units)
    need = step_drop(sizes.total + sizes.note, limit, drop_step)
    return min(bisect_left(sizes.dropped, need), sizes.units)
