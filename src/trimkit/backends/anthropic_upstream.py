"""Generate with an Anthropic-compatible engine: ``POST /v1/messages``, streamed.

The trimmed request goes as the rendered chat: the system text as ``system`` and
each turn as one text message (tool calls and results already written in
trimkit's convention, tools taught in the system prompt), so any engine that
speaks the Messages API can serve it, another trimkit included. A final
assistant message is continued, as the Messages API does.

Text deltas stream straight through; ``tool_use`` blocks the upstream returns are
written in trimkit's convention at the end of the turn; thinking is dropped.
Usage comes from ``message_start`` and ``message_delta``: ``input_tokens`` plus
``cache_creation_input_tokens`` are what was prefilled, ``cache_read_input_tokens``
what the upstream's cache supplied. An ``error`` event is answered as :func:`~.upstream_errors.event_error` says.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import httpx
import msgspec

from ..constrain.engines import anthropic_fields
from .base import ChatMessages, GenerationEvent, GenerationParams, TextDelta
from .upstream import UpstreamBackend
from .upstream_errors import event_error
from .upstream_stream import Turn, decode_chunk, sampling, sse_events

ANTHROPIC_VERSION = "2023-06-01"
CUT_REASONS = ("max_tokens", "model_context_window_exceeded")


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class _Message(msgspec.Struct):
    usage: _Usage | None = None


class _Block(msgspec.Struct):
    type: str
    name: str | None = None
    text: str | None = None


class _Delta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    stop_reason: str | None = None


class _Error(msgspec.Struct):
    type: str = "api_error"
    message: str = ""


class _Event(msgspec.Struct):
    type: str
    index: int = 0
    message: _Message | None = None
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: _Error | None = None


class AnthropicBackend(UpstreamBackend):
    name = "anthropic"
    generate_path = "/v1/messages"
    default_auth = "both"

    def headers(self) -> dict[str, str]:
        return {"accept": "text/event-stream", "anthropic-version": ANTHROPIC_VERSION, **self.auth_headers()}

    def request_body(self, model: str, messages: ChatMessages, params: GenerationParams) -> dict[str, Any]:
        system = [m["content"] for m in messages if m["role"] == "system"]
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": params.max_tokens,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"],
            "stream": True,
        }
        if system:
            body["system"] = "\n\n".join(system)
        return body | sampling(params, self.dropped_sampling) | anthropic_fields(params.constraint)

    async def read(self, response: httpx.Response, turn: Turn) -> AsyncIterator[GenerationEvent]:
        tool_blocks: set[int] = set()
        async for _, data in sse_events(response, turn):
            event: _Event = decode_chunk(data, _Event)
            if event.type == "content_block_start" and event.content_block is not None:
                turn.token()
                block = event.content_block
                if block.type == "tool_use":
                    tool_blocks.add(event.index)
                    turn.calls.add(event.index, block.name)
                elif block.type == "text" and block.text:
                    yield TextDelta(block.text)
            elif event.type == "content_block_delta" and event.delta is not None:
                turn.token()
                if event.delta.type == "text_delta" and event.delta.text:
                    yield TextDelta(event.delta.text)
                elif event.delta.type == "input_json_delta" and event.index in tool_blocks:
                    turn.calls.add(event.index, arguments=event.delta.partial_json)
            elif event.type in ("message_start", "message_delta"):
                usage = event.message.usage if event.message is not None else event.usage
                if usage is not None:
                    self._usage(usage, turn)
                if event.delta is not None and event.delta.stop_reason in CUT_REASONS:
                    turn.finish = "length"
            elif event.type == "message_stop":
                turn.done = True
                break
            elif event.type == "error":
                error = event.error or _Error()
                raise event_error(error.type, error.message, self.redactor)

    @staticmethod
    def _usage(usage: _Usage, turn: Turn) -> None:
        if usage.input_tokens is not None:
            cached = usage.cache_read_input_tokens or 0
            turn.prompt_tokens = usage.input_tokens + (usage.cache_creation_input_tokens or 0) + cached
            turn.cached_tokens = cached
        if usage.output_tokens is not None:
            turn.output_tokens = usage.output_tokens
