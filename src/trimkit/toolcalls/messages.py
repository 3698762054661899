"""Tool calls out of an Anthropic answer someone else produced: a message, or its event stream.

A proxy that sends a trimmed request in the ``xml`` convention (see
:mod:`trimkit.forward`) gives its upstream no tools: the model writes its calls
as markup in its text, and the Anthropic answer that comes back (from an engine
that speaks the Messages API, or from a proxy that translated an OpenAI one)
holds that markup in its ``text`` blocks. These readers run trimkit's response
reader (:class:`~trimkit.toolcalls.response.ResponseBuilder`) over that text, so
the client gets ``tool_use`` blocks with its own tool names and typed arguments,
exactly as from trimkit's server:

* :func:`read_message` rewrites a finished message (a dict);
* :class:`MessageStreamReader` rewrites the stream event by event (dicts), and
  :meth:`MessageStreamReader.feed_sse` does the same on raw SSE bytes split anywhere.

Only text is read. Blocks the upstream made itself (its own ``tool_use``, its
``thinking``) pass through in their place, renumbered around the blocks made from
text. A text block in which the reader found no call and no reasoning is left as
it was. When calls were made and the upstream said ``end_turn``, the stop reason
becomes ``tool_use``. Imports no web framework.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from ..wire import TextBlock, Tool, to_builtins
from .dialects import Dialect
from .events import event_data
from .response import ResponseBuilder

ToolsLike = Iterable[Tool | Mapping[str, Any]] | None


def declared_tools(tools: ToolsLike) -> list[Tool]:
    """Tools as the reader takes them, from :class:`~trimkit.wire.Tool` s or dicts in the
    Anthropic shape (``name``, ``input_schema``) or the OpenAI one (``function.parameters``)."""
    out: list[Tool] = []
    for tool in tools or ():
        if isinstance(tool, Tool):
            out.append(tool)
            continue
        function = tool.get("function") if isinstance(tool.get("function"), Mapping) else None
        spec = function or tool
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            continue
        schema = spec.get("parameters" if function else "input_schema")
        out.append(Tool(name=name, input_schema=dict(schema) if isinstance(schema, Mapping) else {}))
    return out


def _builder(tools: list[Tool], dialect: Dialect | None, thinking: bool) -> ResponseBuilder:
    """A reader of one run of text: the prompt did not open a reasoning section, so text streams at once."""
    return ResponseBuilder(tools, dialect=dialect, thinking=thinking, thinking_open=False)


def _found_something(builder: ResponseBuilder, text: str) -> bool:
    """Whether reading changed more than the whitespace at the ends of ``text``."""
    content = builder.content
    if not all(isinstance(block, TextBlock) for block in content):
        return True
    return "".join(block.text for block in content).strip() != text.strip()  # type: ignore[union-attr]


def read_message(
    message: Mapping[str, Any],
    tools: ToolsLike,
    *,
    dialect: Dialect | None = None,
    thinking: bool = False,
) -> dict[str, Any]:
    """``message`` (a Messages API response dict) with the calls in its text made ``tool_use`` blocks.

    ``tools`` are the client's declared tools; ``dialect`` the format the model
    writes (default trimkit's XML); ``thinking`` whether the client asked for
    reasoning (then a ``<think>`` section in the text becomes a ``thinking`` block;
    otherwise it is dropped). Returns a new dict; ``message`` is not changed.
    """
    declared = declared_tools(tools)
    content = message.get("content")
    if not declared and not thinking or not isinstance(content, list):
        return dict(message)
    truncated = message.get("stop_reason") == "max_tokens"
    out: list[Any] = []
    run: list[Mapping[str, Any]] = []

    def flush() -> None:
        if not run:
            return
        text = "".join(str(block.get("text", "")) for block in run)
        builder = _builder(declared, dialect, thinking)
        builder.feed(text)
        builder.finish("length" if truncated else "stop")
        if _found_something(builder, text):
            out.extend(to_builtins(block) for block in builder.content)
        else:
            out.extend(run)
        run.clear()

    for block in content:
        if isinstance(block, Mapping) and block.get("type") == "text":
            run.append(block)
        else:
            flush()
            out.append(block)
    flush()
    answer = {**message, "content": out}
    made_calls = any(isinstance(b, Mapping) and b.get("type") == "tool_use" for b in out)
    if made_calls and message.get("stop_reason") in (None, "end_turn"):
        answer["stop_reason"] = "tool_use"
    return answer


class MessageStreamReader:
    """Rewrites a Messages API event stream so the calls written in its text become ``tool_use`` blocks.

    Feed the stream's events in order (the ``data`` object of each SSE frame) to
    :meth:`feed`, which returns the events to send instead; or feed raw SSE bytes,
    split anywhere, to :meth:`feed_sse`, and :meth:`close_sse` at the end. The
    arguments are those of :func:`read_message`.

    The upstream's text blocks are read, not passed on: what goes out for them is
    the reader's blocks, as trimkit's server streams them. Text streams as it comes,
    except what might be the start of a call, which is held until it is one (then it
    goes out as a whole ``tool_use`` block) or is not (then it goes out as text).
    """

    def __init__(self, tools: ToolsLike, *, dialect: Dialect | None = None, thinking: bool = False):
        self._tools = declared_tools(tools)
        self._dialect = dialect
        self._thinking = thinking
        self._active = bool(self._tools) or thinking
        self._builder: ResponseBuilder | None = None
        self._base = 0  # the output index of the open builder's first block
        self._next = 0  # the next free output index
        self._index: dict[Any, int] = {}  # an upstream block passed through → its output index
        self._calls = 0
        self._buffer = b""

    @property
    def tool_uses(self) -> int:
        """``tool_use`` blocks sent so far, made from text or passed through."""
        return self._calls

    def feed(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        if not self._active:
            return [dict(event)]
        kind = event.get("type")
        index = event.get("index")
        if kind == "content_block_start":
            out = self._close_text()
            block = event.get("content_block") or {}
            if block.get("type") == "text":
                self._builder = _builder(self._tools, self._dialect, self._thinking)
                self._base = self._next
                return out
            self._index[index] = self._next
            self._next += 1
            self._calls += block.get("type") == "tool_use"
            return out + [dict(event, index=self._index[index])]
        if kind in ("content_block_delta", "content_block_stop") and index in self._index:
            return [dict(event, index=self._index[index])]
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if self._builder is None or delta.get("type") != "text_delta":
                return []
            return self._made(self._builder.feed(str(delta.get("text", ""))))
        if kind == "content_block_stop":
            return self._close_text()
        if kind == "message_delta":
            out = self._close_text()
            delta = event.get("delta") or {}
            if self._calls and delta.get("stop_reason") in (None, "end_turn"):
                event = dict(event, delta={**delta, "stop_reason": "tool_use"})
            return out + [dict(event)]
        return self._close_text() + [dict(event)] if kind == "message_stop" else [dict(event)]

    def _made(self, events: list) -> list[dict[str, Any]]:
        """The reader's events for the client, numbered after the blocks before them."""
        out = [event_data(e, self._base) for e in events]
        self._calls += sum(e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"
                           for e in out)
        return out

    def _close_text(self) -> list[dict[str, Any]]:
        if self._builder is None:
            return []
        builder, self._builder = self._builder, None
        out = self._made(builder.finish("stop"))
        self._next = self._base + len(builder.content)
        return out

    # ------------------------------------------------------------------ raw SSE

    def feed_sse(self, chunk: bytes) -> bytes:
        """Raw SSE bytes in (split anywhere), rewritten whole frames out."""
        self._buffer += chunk.replace(b"\r\n", b"\n")
        frames, _, self._buffer = self._buffer.rpartition(b"\n\n")
        if not frames:
            return b""
        return b"".join(self._frame(raw) for raw in frames.split(b"\n\n") if raw.strip())

    def close_sse(self) -> bytes:
        """What is left at the end of the stream: a last frame without its blank line, and held text."""
        rest, self._buffer = self._buffer, b""
        out = self._frame(rest) if rest.strip() else b""
        return out + b"".join(sse_frame(e) for e in self._close_text())

    def _frame(self, raw: bytes) -> bytes:
        data_lines = [line[5:].lstrip() for line in raw.split(b"\n") if line.startswith(b"data:")]
        try:
            event = json.loads(b"\n".join(data_lines)) if data_lines else None
        except ValueError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return raw + b"\n\n"  # not an event this reads (a comment, "[DONE]"): as it came
        return b"".join(sse_frame(e) for e in self.feed(event))


def sse_frame(data: Mapping[str, Any]) -> bytes:
    """One SSE frame for an event's ``data``, with the ``event:`` line Anthropic clients dispatch on."""
    return b"event: " + str(data["type"]).encode() + b"\ndata: " + json.dumps(data).encode() + b"\n\n"
