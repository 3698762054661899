"""Talking to an engine over a stream: the sampling fields sent, the events read back, the turn they make.

:func:`sse_events` reads server-sent events as both engine APIs stream them;
:class:`Turn` gathers what a stream has said (timing, usage, native tool calls,
whether it ended properly) for the backend to report as :class:`~.base.Finished`.
Tool calls an engine returns natively are written out in trimkit's convention by
:class:`NativeCalls`, so the one response reader turns them into ``tool_use``
blocks.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import httpx
import msgspec

from .. import convention
from .base import BackendError, GenerationParams

SAMPLING_FIELDS = ("temperature", "top_p", "top_k")


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` for each server-sent event; comments such as ``: keepalive`` are skipped."""
    event, data = "", []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield event or "message", "\n".join(data)


def sampling(params: GenerationParams, dropped: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """The sampling fields the client set, less those the engine rejects; the rest are the engine's defaults."""
    fields = {"temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k}
    return {name: value for name, value in fields.items() if value is not None and name not in dropped}


def decode_chunk(data: str, kind: type) -> Any:
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as exc:
        raise BackendError(f"upstream sent unreadable data ({exc}): {data[:200]}") from None


class NativeCalls:
    """Tool calls an engine returned natively, gathered from their streamed pieces by index."""

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}

    def add(self, index: int, name: str | None = None, arguments: str | None = None) -> None:
        call = self._calls.setdefault(index, ["", ""])
        if name:
            call[0] += name
        if arguments:
            call[1] += arguments

    def as_text(self) -> str:
        """The calls in trimkit's convention; arguments that are not a JSON object stay raw text."""
        if not self._calls:
            return ""
        calls, unreadable = [], []
        for name, arguments in (self._calls[i] for i in sorted(self._calls)):
            try:
                parsed = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                calls.append((name, parsed))
            else:
                unreadable.append(f"{name}({arguments})")
        parts = [convention.format_calls(calls)] if calls else []
        return "\n\n" + "\n".join(unreadable + parts)


@dataclass
class Turn:
    """What a stream has said so far: timing, usage and native tool calls."""

    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    finish: str = "stop"
    prompt_tokens: int | None = None  # prompt tokens in all, cached included
    cached_tokens: int = 0
    output_tokens: int | None = None
    deltas: int = 0
    done: bool = False
    calls: NativeCalls = field(default_factory=NativeCalls)

    def token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
