"""What a streaming reader gives back: text, calls, reasoning, and calls that failed.

A reader turns the model's raw text into a sequence of items, in the order the
model wrote them: plain text (``str``), :class:`ParsedCall`, :class:`Reasoning`,
and :class:`FailedCall`. Every character the model wrote is in exactly one item,
except the markup of a made call (kept in :attr:`ParsedCall.raw`) and the
markers around reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """A call to a declared tool: the tool's exact name and arguments typed by its schema."""

    name: str
    arguments: dict[str, Any]
    raw: str


@dataclass(frozen=True, slots=True)
class Reasoning:
    """A piece of the model's reasoning (``<think>``, harmony's analysis channel, Gemma's thought channel)."""

    text: str


FailureReason = Literal["undeclared", "unreadable", "unfinished"]


@dataclass(frozen=True, slots=True)
class FailedCall:
    """Markup that was meant as a call but cannot become a ``tool_use``.

    ``reason`` is ``"undeclared"`` (no declared tool has that name, even ignoring
    case), ``"unreadable"`` (the arguments could not be read, even after repair) or
    ``"unfinished"`` (the output ended inside the call). ``name`` is the name the
    model wrote, when it got that far. ``raw`` is the markup exactly as written; it
    becomes text if the call is not retried. ``detail`` says what went wrong in
    plain words, for a correction the server can show the model.
    """

    name: str | None
    raw: str
    reason: FailureReason
    detail: str


Item = Union[str, ParsedCall, Reasoning, FailedCall]
