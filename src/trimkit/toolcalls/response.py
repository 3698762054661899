"""From raw model text to Anthropic content blocks, as the text streams.

:class:`ResponseBuilder` takes the model's text chunk by chunk and gives back
block events (start, delta, stop) that map one to one onto the Messages API's
``content_block_*`` SSE events, and at the end the finished ``content`` blocks,
``stop_reason`` and ``stop_sequence`` for a non-streaming response. It imports no
model runtime and no web framework.

The raw text passes three steps:

1. stop sequences are looked for in the raw text, before anything else; the match
   and all after it are dropped, and :attr:`ResponseBuilder.stopped` tells the
   caller to stop generating;
2. :class:`~trimkit.toolcalls.parser.ToolCallParser` drops thinking and turns
   tool-call markup into calls (see there for the dialects);
3. calls to declared tools become ``tool_use`` blocks with input coerced to the
   tool's schema (:mod:`trimkit.toolcalls.coerce`); the rest becomes ``text`` blocks.

Text is kept as written, with three exceptions: a text block never starts with
whitespace, never ends with whitespace when a tool call follows it, and a block
that would hold only whitespace (the newlines between two calls) is not made.
Every character of a tool's string arguments is kept.

Output cut by ``max_tokens`` inside a call gives no ``tool_use`` for it: the
partial markup comes out as text, so nothing the model wrote is lost, and the stop
reason is ``max_tokens``.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Callable, Literal, Union

import msgspec

from .coerce import coerce_arguments
from .parser import Needles, ParsedCall, ToolCallParser
from ..wire import Block, TextBlock, Tool, ToolUseBlock

_ID_ALPHABET = string.ascii_letters + string.digits


def new_tool_use_id() -> str:
    """``toolu_`` and 24 random base62 characters."""
    return "toolu_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


@dataclass
class BlockStart:
    index: int
    block: Union[TextBlock, ToolUseBlock]  # TextBlock(text="") or ToolUseBlock(id, name, input={})


@dataclass
class BlockDelta:
    index: int
    kind: Literal["text_delta", "input_json_delta"]
    value: str  # the text, or the partial JSON of the input


@dataclass
class BlockStop:
    index: int


ResponseEvent = Union[BlockStart, BlockDelta, BlockStop]


class StopMatcher:
    """Finds the first of several stop strings in streamed text, split anywhere.

    The match reported is the first to be complete in the stream (at equal ends, the
    longer one), so it does not depend on how the text was chunked.
    """

    def __init__(self, stops: list[str]):
        self.stops = [s for s in dict.fromkeys(stops) if s]
        self._needles = Needles(*self.stops)
        self._held = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        """The text that is certainly not part of a stop string, and the stop string matched."""
        window = self._held + text
        best: tuple[int, int, str] | None = None
        for stop in self.stops:
            i = window.find(stop)
            if i >= 0:
                key = (i + len(stop), -len(stop), stop)
                if best is None or key < best:
                    best = key
        if best is not None:
            self._held = ""
            return window[: best[0] - len(best[2])], best[2]
        keep = self._needles.held(window, 0)
        self._held = window[len(window) - keep :] if keep else ""
        return window[: len(window) - keep], None

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


class ResponseBuilder:
    """Turns one model turn into content-block events; see the module docstring.

    ``id_factory`` makes each ``tool_use`` id (the whole id; default
    :func:`new_tool_use_id`). ``thinking_open`` tells whether the rendered prompt
    ended inside an opened ``<think>``: True drops the text up to the first
    ``</think>`` as thinking; False streams it at once; None (unknown) holds the
    leading text back until a ``<think>`` or ``</think>`` decides, or to the end.
    """

    def __init__(
        self,
        tools: list[Tool] | None,
        stop_sequences: list[str] | None = None,
        *,
        id_factory: Callable[[], str] | None = None,
        strip_thinking: bool = True,
        thinking_open: bool | None = None,
    ):
        self._tools = {tool.name: tool for tool in tools or ()}
        self._stop = StopMatcher(stop_sequences) if stop_sequences and any(stop_sequences) else None
        self._parser = ToolCallParser(self._tools, strip_thinking=strip_thinking, thinking_open=thinking_open)
        self._new_id = id_factory or new_tool_use_id
        self._blocks: list[list[str] | ToolUseBlock] = []
        self._text_open = False
        self._space = ""
        self._stopped = False
        self._finished = False
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None

    @property
    def stopped(self) -> bool:
        """A stop sequence was found: generation must stop."""
        return self._stopped

    @property
    def tool_uses(self) -> int:
        return sum(isinstance(block, ToolUseBlock) for block in self._blocks)

    @property
    def content(self) -> list[Block]:
        """The blocks so far, complete after :meth:`finish`."""
        return [TextBlock(text="".join(b)) if isinstance(b, list) else b for b in self._blocks]

    def feed(self, text: str) -> list[ResponseEvent]:
        if self._stopped or self._finished or not text:
            return []
        if self._stop is not None:
            text, matched = self._stop.feed(text)
            if matched is not None:
                self._stopped = True
                self.stop_sequence = matched
        return self._events(self._parser.feed(text)) if text else []

    def finish(self, finish: Literal["stop", "length"]) -> list[ResponseEvent]:
        """Flush what is held and close the last block; sets the stop reason."""
        if self._finished:
            return []
        self._finished = True
        items = []
        if self._stop is not None and not self._stopped:
            items = self._parser.feed(self._stop.flush())
        events = self._events(items + self._parser.finish())
        events += self._close_text(keep_space=True)
        if self._stopped:
            self.stop_reason = "stop_sequence"
        elif finish == "length":
            self.stop_reason = "max_tokens"
        else:
            self.stop_reason = "tool_use" if self.tool_uses else "end_turn"
        return events

    # ------------------------------------------------------------------ events

    def _events(self, items: list[str | ParsedCall]) -> list[ResponseEvent]:
        events: list[ResponseEvent] = []
        text: list[str] = []
        for item in items:
            if isinstance(item, str):
                text.append(item)
                continue
            if text:
                self._text("".join(text), events)
                text = []
            events += self._close_text()
            self._tool_use(item, events)
        if text:
            self._text("".join(text), events)
        return events

    def _text(self, text: str, events: list[ResponseEvent]) -> None:
        """Text, with leading whitespace of a block dropped and trailing whitespace held."""
        if not self._text_open:
            text = text.lstrip()
        body = text.rstrip()
        if not body:
            if self._text_open:
                self._space += text
            return
        if not self._text_open:
            self._text_open = True
            self._blocks.append([])
            events.append(BlockStart(len(self._blocks) - 1, TextBlock(text="")))
        piece = self._space + body
        self._space = text[len(body) :]
        self._blocks[-1].append(piece)
        events.append(BlockDelta(len(self._blocks) - 1, "text_delta", piece))

    def _close_text(self, keep_space: bool = False) -> list[ResponseEvent]:
        if not self._text_open:
            return []
        index = len(self._blocks) - 1
        events: list[ResponseEvent] = [BlockStop(index)]
        if keep_space and self._space:
            self._blocks[index].append(self._space)
            events.insert(0, BlockDelta(index, "text_delta", self._space))
        self._text_open = False
        self._space = ""
        return events

    def _tool_use(self, call: ParsedCall, events: list[ResponseEvent]) -> None:
        tool = self._tools[call.name]
        arguments = coerce_arguments(call.arguments, tool.input_schema)
        block = ToolUseBlock(id=self._new_id(), name=call.name, input=arguments)
        index = len(self._blocks)
        self._blocks.append(block)
        events.append(BlockStart(index, ToolUseBlock(id=block.id, name=block.name, input={})))
        events.append(BlockDelta(index, "input_json_delta", msgspec.json.encode(arguments).decode()))
        events.append(BlockStop(index))
