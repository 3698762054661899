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
from typing import Any, AsyncIterator, Iterable

import httpx
import msgspec

from .. import convention
from .base import BackendError, GenerationParams

SAMPLING_FIELDS = ("temperature", "top_p", "top_k")


MAX_EVENT_BYTES = 8 * 1024 * 1024
"""The largest server-sent event read from an engine (its lines together); a longer one is an error,
not memory without end (an engine's event is a token or a tool call's arguments)."""
LISTING_LIMIT = 4 * 1024 * 1024
"""Bytes of an engine's ``/v1/models`` listing read at most."""
MAX_CHARS_PER_TOKEN = 64
"""Characters of output past which ``max_tokens`` tokens are surely spent, for an engine that sends many per event."""


def read_bounded(chunks: Iterable[bytes], limit: int) -> bytes:
    """The first ``limit`` bytes of a response body (the rest is never read)."""
    body = bytearray()
    for chunk in chunks:
        body += chunk[: limit - len(body)]
        if len(body) >= limit:
            break
    return bytes(body)


async def aread_bounded(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """:func:`read_bounded` for an async body."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk[: limit - len(body)]
        if len(body) >= limit:
            break
    return bytes(body)


async def bounded_lines(chunks: AsyncIterator[bytes], limit: int = MAX_EVENT_BYTES) -> AsyncIterator[str]:
    """The lines of a body (ended by LF, CRLF or CR), none allowed longer than ``limit`` bytes.

    ``httpx``'s ``aiter_lines`` keeps a line however long it grows: an engine that
    never sends a newline would fill the memory.
    """
    buffer = bytearray()
    start = 0
    async for chunk in chunks:
        buffer += chunk
        while True:
            end = _line_end(buffer, start)
            if end is None:
                break
            stop, after = end
            yield buffer[start:stop].decode("utf-8", "replace")
            start = after
        if start:
            del buffer[:start]
            start = 0
        if len(buffer) > limit:
            raise BackendError(f"upstream sent a line of more than {limit} bytes")
    if buffer:
        yield buffer.decode("utf-8", "replace").rstrip("\r")


def _line_end(buffer: bytearray, start: int) -> tuple[int, int] | None:
    """Where the line from ``start`` ends and the next begins; None while it may go on."""
    lf, cr = buffer.find(b"\n", start), buffer.find(b"\r", start)
    if cr >= 0 and (lf < 0 or cr < lf):
        if cr + 1 == len(buffer):
            return None  # a CR at the end may be half of a CRLF
        return cr, cr + 2 if buffer[cr + 1] == 0x0A else cr + 1
    return (lf, lf + 1) if lf >= 0 else None


async def sse_events(response: httpx.Response, turn: "Turn | None" = None) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` for each server-sent event; comments such as ``: keepalive`` are skipped.

    With ``turn``, the stream ends (cut, as by ``max_tokens``) once the engine has sent
    more than the turn's ``max_tokens`` allow, even in events that yield no text.
    """
    event, data, size = "", [], 0
    async for line in bounded_lines(response.aiter_bytes()):
        if not line:
            if data:
                yield event or "message", "\n".join(data)
                if turn is not None and turn.beyond():
                    turn.cut()
                    return
            event, data, size = "", [], 0
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
            size += len(value)
            if size > MAX_EVENT_BYTES:
                raise BackendError(f"upstream sent an event of more than {MAX_EVENT_BYTES} bytes")
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
        self.chars = 0

    def add(self, index: int, name: str | None = None, arguments: str | None = None) -> None:
        call = self._calls.setdefault(index, ["", ""])
        if name:
            call[0] += name
            self.chars += len(name)
        if arguments:
            call[1] += arguments
            self.chars += len(arguments)

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
    events: int = 0  # content and tool-call deltas the engine sent (see token())
    chars: int = 0  # of the text deltas passed on
    max_tokens: int | None = None
    done: bool = False
    calls: NativeCalls = field(default_factory=NativeCalls)

    def beyond(self) -> bool:
        """Whether the engine has sent more than ``max_tokens`` allow (it ignored the field):
        each delta is a token at least (one more for a block's opening event), and no
        token is longer than :data:`MAX_CHARS_PER_TOKEN` characters."""
        if self.max_tokens is None:
            return False
        chars = self.chars + self.calls.chars
        return self.events > self.max_tokens + 1 or chars > self.max_tokens * MAX_CHARS_PER_TOKEN

    def cut(self) -> None:
        """End the turn as ``max_tokens`` would have."""
        self.finish, self.done = "length", True

    def token(self) -> None:
        """Called for each content or tool-call delta the engine sends."""
        self.events += 1
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
