"""From raw model text to Anthropic content blocks, as the text streams.

:class:`ResponseBuilder` takes the model's text chunk by chunk and gives back
block events (start, delta, stop) that map one to one onto the Messages API's
``content_block_*`` SSE events, and at the end the finished ``content`` blocks,
``stop_reason`` and ``stop_sequence`` for a non-streaming response. It imports no
model runtime and no web framework.

The raw text passes four steps:

1. stop sequences are looked for in the raw text, before anything else; the match
   and all after it are dropped, and :attr:`ResponseBuilder.stopped` tells the
   caller to stop generating;
2. the dialect's reader (:mod:`trimkit.toolcalls.dialects`; trimkit's XML by
   default) separates text, reasoning and calls, typing call arguments by the
   tool's schema;
3. reasoning becomes ``thinking`` blocks when ``thinking`` is on (streamed as
   ``thinking_delta``, then one ``signature_delta``), and is dropped otherwise;
4. the tokenizer's special tokens are removed from text and thinking, so an
   ``<|im_end|>`` the model wrote never reaches the client.

Text is kept as written, with three exceptions: a text block never starts with
whitespace, never ends with whitespace when another block follows it, and a block
that would hold only whitespace (the newlines between two calls) is not made.
Thinking blocks are trimmed the same way at both ends. Every character of a
tool's string arguments is kept.

A call that cannot become a ``tool_use`` (a tool that is not declared, arguments
that cannot be read even after repair) comes out as its raw text, unless
``hold_failed`` is set: then the builder stops at it, makes no event for it or
anything after it, and reports it in :attr:`ResponseBuilder.failed`, so the server
can retry once (:meth:`ResponseBuilder.restart`) or give the text up after all
(:meth:`ResponseBuilder.release_failed`).

Output cut by ``max_tokens`` inside a call gives no ``tool_use`` for it: the
partial markup comes out as text, so nothing the model wrote is lost, and the stop
reason is ``max_tokens``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
from dataclasses import dataclass
from typing import Callable, Collection, Literal, Union

import msgspec

from .catalog import Catalog
from .dialects import DEFAULT, Dialect
from .items import FailedCall, Item, ParsedCall, Reasoning
from .scan import TokenFilter
from .stops import StopMatcher
from ..wire import Block, TextBlock, ThinkingBlock, Tool, ToolUseBlock

_ID_ALPHABET = string.ascii_letters + string.digits


def new_tool_use_id() -> str:
    """``toolu_`` and 24 random base62 characters."""
    return "toolu_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def thinking_signature(thinking: str) -> str:
    """A signature for a thinking block: a digest of its text (the client only stores and returns it)."""
    digest = hashlib.sha256(b"trimkit thinking\0" + thinking.encode("utf-8", "surrogatepass")).digest()
    return base64.b64encode(digest).decode()


@dataclass
class BlockStart:
    index: int
    block: Union[TextBlock, ToolUseBlock, ThinkingBlock]
    """TextBlock(text=""), ToolUseBlock(id, name, input={}) or ThinkingBlock(thinking="", signature="")."""


@dataclass
class BlockDelta:
    index: int
    kind: Literal["text_delta", "input_json_delta", "thinking_delta", "signature_delta"]
    value: str  # the text, the partial JSON of the input, the thinking, or the signature


@dataclass
class BlockStop:
    index: int


ResponseEvent = Union[BlockStart, BlockDelta, BlockStop]


class _Thought:
    """An open or finished thinking block's text and signature."""

    __slots__ = ("pieces", "signature")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.signature = ""


class ResponseBuilder:
    """Turns one model turn into content-block events; see the module docstring.

    ``dialect`` is the format to read (default trimkit's XML). ``thinking``: reasoning
    becomes thinking blocks (True) or is dropped (False). ``thinking_open`` tells
    whether the rendered prompt ended inside an opened reasoning section: True reads
    the start as reasoning; False streams it at once as text; None (unknown) holds
    the leading text back until a marker decides, or to the end. ``special_tokens``
    never reach the client as text. ``hold_failed``: hold a failed call for one
    retry (see :meth:`restart`). ``id_factory`` makes each ``tool_use`` id (default
    :func:`new_tool_use_id`), ``signature_factory`` each thinking signature
    (default :func:`thinking_signature`).
    """

    def __init__(
        self,
        tools: list[Tool] | None,
        stop_sequences: list[str] | None = None,
        *,
        dialect: Dialect | None = None,
        thinking: bool = False,
        thinking_open: bool | None = None,
        special_tokens: Collection[str] = (),
        hold_failed: bool = False,
        id_factory: Callable[[], str] | None = None,
        signature_factory: Callable[[str], str] | None = None,
    ):
        self._catalog = Catalog(tools)
        self._dialect = dialect or DEFAULT
        self._stops = [s for s in stop_sequences or () if s]
        self._stop = StopMatcher(self._stops) if self._stops else None
        self._reader = self._dialect.reader(self._catalog, thinking_open=thinking_open)
        self._thinking = thinking
        self._special = tuple(special_tokens)
        self._text_filter = TokenFilter(self._special)
        self._thought_filter = TokenFilter(self._special)
        self._hold_failed = hold_failed
        self._new_id = id_factory or new_tool_use_id
        self._sign = signature_factory or thinking_signature
        self._blocks: list[list[str] | _Thought | ToolUseBlock] = []
        self._open: Literal["text", "thinking"] | None = None
        self._space = ""
        self._stopped = False
        self._read_all = False
        self._closed = False
        self._retried = False
        self._held: list[Item] | None = None
        self.failed: FailedCall | None = None
        """The call held for a retry (with ``hold_failed``); None when there is none."""
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None

    @property
    def stopped(self) -> bool:
        """Generation must stop: a stop sequence was found, or a failed call is held."""
        return self._stopped or self.failed is not None

    @property
    def tool_uses(self) -> int:
        return sum(isinstance(block, ToolUseBlock) for block in self._blocks)

    @property
    def content(self) -> list[Block]:
        """The blocks so far, complete after :meth:`finish`."""
        out: list[Block] = []
        for block in self._blocks:
            if isinstance(block, list):
                out.append(TextBlock(text="".join(block)))
            elif isinstance(block, _Thought):
                out.append(ThinkingBlock(thinking="".join(block.pieces), signature=block.signature))
            else:
                out.append(block)
        return out

    def feed(self, text: str) -> list[ResponseEvent]:
        if self._stopped or self._read_all or not text:
            return []
        if self._stop is not None:
            text, matched = self._stop.feed(text)
            if matched is not None:
                self._stopped = True
                self.stop_sequence = matched
        return self._events(self._reader.feed(text)) if text else []

    def finish(self, finish: Literal["stop", "length"]) -> list[ResponseEvent]:
        """Flush what is held and close the last block; sets the stop reason.

        With a failed call held, the blocks stay open and the stop reason unset: call
        :meth:`restart` (and feed the retry) or :meth:`release_failed`, then
        ``finish`` again.
        """
        if self._closed:
            return []
        events: list[ResponseEvent] = []
        if not self._read_all:
            self._read_all = True
            items: list[Item] = []
            if self._stop is not None and not self._stopped:
                items = self._reader.feed(self._stop.flush())
            truncated = finish == "length" or self._stopped
            events = self._events(items + self._reader.finish(truncated=truncated))
        if self.failed is not None:
            return events
        self._switch(None, events, final=True)
        self._closed = True
        if self._stopped:
            self.stop_reason = "stop_sequence"
        elif finish == "length":
            self.stop_reason = "max_tokens"
        else:
            self.stop_reason = "tool_use" if self.tool_uses else "end_turn"
        return events

    # ------------------------------------------------------------------ the retry

    def restart(self, *, thinking_open: bool | None = None) -> None:
        """Drop the held failed call and read a retry's output from the start, after the blocks made so far.

        Only one retry: after a restart, a failed call comes out as text.
        """
        self.failed = None
        self._held = None
        self._retried = True
        self._reader = self._dialect.reader(self._catalog, thinking_open=thinking_open)
        self._stop = StopMatcher(self._stops) if self._stops else None
        self._stopped = False
        self.stop_sequence = None
        self._read_all = False

    def release_failed(self) -> list[ResponseEvent]:
        """Give the held failed call (and anything read after it) to the client as text."""
        if self.failed is None:
            return []
        held = [self.failed.raw, *(self._held or ())]
        self.failed = None
        self._held = None
        self._retried = True
        return self._events(held)

    # ------------------------------------------------------------------ events

    def _events(self, items: list[Item]) -> list[ResponseEvent]:
        events: list[ResponseEvent] = []
        for item in items:
            if self._held is not None:
                self._held.append(item)
            elif isinstance(item, str):
                self._add_text(item, events)
            elif isinstance(item, Reasoning):
                if self._thinking:
                    self._add_thought(item.text, events)
            elif isinstance(item, ParsedCall):
                self._switch(None, events)
                self._tool_use(item, events)
            elif self._hold_failed and not self._retried:
                self._switch(self._open, events)  # the open block stays open for what comes next
                self.failed = item
                self._held = []
            else:
                self._add_text(item.raw, events)
        return events

    def _add_text(self, text: str, events: list[ResponseEvent]) -> None:
        self._switch("text", events)
        self._grow("text", self._text_filter.feed(text), events)

    def _add_thought(self, text: str, events: list[ResponseEvent]) -> None:
        self._switch("thinking", events)
        self._grow("thinking", self._thought_filter.feed(text), events)

    def _grow(self, kind: Literal["text", "thinking"], text: str, events: list[ResponseEvent]) -> None:
        """Add to the open block of ``kind``: leading whitespace of a block dropped, trailing whitespace held."""
        if self._open != kind:
            text = text.lstrip()
        body = text.rstrip()
        if not body:
            if self._open == kind:
                self._space += text
            return
        if self._open != kind:
            self._open = kind
            if kind == "text":
                self._blocks.append([])
                events.append(BlockStart(len(self._blocks) - 1, TextBlock(text="")))
            else:
                self._blocks.append(_Thought())
                events.append(BlockStart(len(self._blocks) - 1, ThinkingBlock(thinking="", signature="")))
        piece = self._space + body
        self._space = text[len(body) :]
        self._append(piece, events)

    def _append(self, piece: str, events: list[ResponseEvent]) -> None:
        index = len(self._blocks) - 1
        block = self._blocks[index]
        if isinstance(block, _Thought):
            block.pieces.append(piece)
            events.append(BlockDelta(index, "thinking_delta", piece))
        else:
            block.append(piece)
            events.append(BlockDelta(index, "text_delta", piece))

    def _switch(self, kind: Literal["text", "thinking"] | None, events: list[ResponseEvent], final: bool = False) -> None:
        """Close the open block unless it is of ``kind``, with what its token filter still held.

        Only the filter fed last can hold anything, so its tail always belongs to the
        open block (or starts it). Text keeps its trailing whitespace only at the very end.
        """
        for other, token_filter in (("text", self._text_filter), ("thinking", self._thought_filter)):
            if other != kind:
                tail = token_filter.flush()
                if tail:
                    self._grow(other, tail, events)  # type: ignore[arg-type]
        if self._open is None or self._open == kind:
            return
        index = len(self._blocks) - 1
        block = self._blocks[index]
        if isinstance(block, _Thought):
            block.signature = self._sign("".join(block.pieces))
            events.append(BlockDelta(index, "signature_delta", block.signature))
        elif final and self._space:
            self._append(self._space, events)
        events.append(BlockStop(index))
        self._open = None
        self._space = ""

    def _tool_use(self, call: ParsedCall, events: list[ResponseEvent]) -> None:
        block = ToolUseBlock(id=self._new_id(), name=call.name, input=call.arguments)
        index = len(self._blocks)
        self._blocks.append(block)
        events.append(BlockStart(index, ToolUseBlock(id=block.id, name=block.name, input={})))
        events.append(BlockDelta(index, "input_json_delta", msgspec.json.encode(call.arguments).decode()))
        events.append(BlockStop(index))
