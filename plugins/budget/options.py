"""The budget stage's options (``[stages.budget]``) and the limits they set for one request."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import msgspec

Tokens = Annotated[int, msgspec.Meta(ge=0)]
Share = Annotated[float, msgspec.Meta(gt=0, le=1)]


class BudgetOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The budget stage's options; 0 turns a limit off where noted."""

    enabled: bool = True
    target_prefill_seconds: Annotated[float, msgspec.Meta(ge=0)] | None = 8.0
    """Prefill time to aim for at the measured speed, counting only tokens the backend has
    not cached (0: no prefill target, only the window). A soft goal: see ``prefill_floor``."""
    prefill_floor: Share = 0.5
    """The prefill target never asks for a prompt smaller than this share of the window's
    prompt limit (cutting in whole steps, it keeps more than 60 % of that): a slow model
    is kept waiting rather than left without its conversation."""
    min_output_tokens: Annotated[int, msgspec.Meta(ge=1)] = 1024
    """The least output room accepted before the prompt is too long."""
    max_output_tokens: Tokens | None = None
    """A cap on ``max_tokens`` (0: none)."""
    max_output_share: Share = 0.25
    """The output reserve is at most this share of the window (but at least ``min_output_tokens``)."""
    default_max_tokens: Annotated[int, msgspec.Meta(ge=1)] = 4096
    """Output wanted when the request names no ``max_tokens``."""
    tool_result_max_tokens: Tokens | None = 8000
    """A longer tool result keeps its head and tail once the prompt outgrows the window (0: never cut)."""
    keep_head_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.6
    """The share of a shortened tool result taken from its head."""
    drop_step: Share | Annotated[int, msgspec.Meta(ge=1)] = 0.5
    """How far the cut moves when the window forces it, so that many turns follow before it
    moves again: turns worth about this share of the window's prompt limit, in a step of
    3·2ⁿ tokens between 0.8 and 1.6 times that share (exactly that share when the limit is
    a power-of-two window less a quarter for output); a whole number is a number of turns."""


@dataclass(frozen=True)
class Limits:
    """The sizes one request's prompt is held to, in tokens."""

    window: int
    """The context window less the output reserve: the cut keeps the prompt within it."""
    maximum: int
    """The context window less the least output accepted: beyond it the prompt is too long."""
    prefill: int | None
    """Uncached tokens the model prefills in ``target_prefill_seconds`` (None: no target)."""
    floor: int
    """The smallest limit the prefill target may set."""
    output_wanted: int
    """``max_tokens`` as asked (or the default), under ``max_output_tokens``."""

    @property
    def shorten_above(self) -> int:
        """Beyond this size a cut may come, so long tool results are shortened first: the window's
        limit, or the least the prefill target may ask with nothing cached."""
        if self.prefill is None:
            return self.window
        return min(self.window, max(self.floor, self.prefill))


def limits_for(context_window: int, prefill_tps: float | None, max_tokens: int | None,
               options: BudgetOptions) -> Limits:
    """The limits for one request.

    A client asking for 64,000 output tokens from a 32k-context model must not make
    every prompt impossible: the reserve is capped at ``max_output_share`` of the
    window, and ``max_tokens`` is lowered afterwards to what is left.
    """
    wanted = max_tokens or options.default_max_tokens
    if options.max_output_tokens:
        wanted = min(wanted, options.max_output_tokens)
    wanted = max(1, wanted)
    reserve = min(wanted, max(options.min_output_tokens, int(context_window * options.max_output_share)))
    least = max(1, min(wanted, options.min_output_tokens))
    window = max(0, context_window - reserve)
    prefill = None
    if options.target_prefill_seconds and prefill_tps:
        prefill = int(prefill_tps * options.target_prefill_seconds)
    return Limits(
        window=window,
        maximum=max(0, context_window - least),
        prefill=prefill,
        floor=math.ceil(window * options.prefill_floor),
        output_wanted=wanted,
    )
