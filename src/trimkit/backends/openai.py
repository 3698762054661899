"""Generate with an OpenAI-compatible engine: ``POST /v1/chat/completions``, streamed.

The rendered chat goes as plain role/content strings (system first), with
``stream_options.include_usage`` so the last chunk carries the usage: prompt
tokens, completion tokens and, where the engine has a prefix cache (vLLM, SGLang,
llama.cpp, ``mlx_lm.server``), ``prompt_tokens_details.cached_tokens``, reported
to the client as ``cache_read_input_tokens``. ``finish_reason: "length"`` is the
only one that means "cut"; every other reason ends the turn normally.

Reasoning that an engine separates out (``reasoning_content``, ``reasoning``) is
thinking and is dropped, as ``<think>`` text is for the in-process model.
Sampling fields are sent only when the client set them, so the engine's own
defaults (often the model's recommended ones) apply otherwise; ``top_k`` is not
standard OpenAI: vLLM, SGLang and llama.cpp take it, ``transformers serve``
refuses it, and a field an engine refuses is dropped from then on (with a log line)
rather than failing the request (see ``UpstreamBackend._drop_rejected``).
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import httpx
import msgspec

from ..constrain.engines import openai_fields
from .base import ChatMessages, GenerationEvent, GenerationParams, TextDelta
from .upstream import UpstreamBackend
from .upstream_stream import Turn, decode_chunk, sampling, sse_events


class _FunctionDelta(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCallDelta(msgspec.Struct):
    index: int = 0
    function: _FunctionDelta | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: list[_ToolCallDelta] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: _PromptDetails | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = msgspec.field(default_factory=list)
    usage: _Usage | None = None


class OpenAIBackend(UpstreamBackend):
    name = "openai"
    generate_path = "/v1/chat/completions"

    def headers(self) -> dict[str, str]:
        return {"accept": "text/event-stream", **self.auth_headers()}

    def request_body(self, model: str, messages: ChatMessages, params: GenerationParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": params.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        return body | sampling(params, self.dropped_sampling) | openai_fields(params.constraint)

    async def read(self, response: httpx.Response, turn: Turn) -> AsyncIterator[GenerationEvent]:
        async for _, data in sse_events(response, turn):
            if data.strip() == "[DONE]":
                turn.done = True
                break
            chunk: _Chunk = decode_chunk(data, _Chunk)
            if chunk.usage is not None:
                self._usage(chunk.usage, turn)
            for choice in chunk.choices:
                delta = choice.delta
                if delta is not None:
                    if delta.content or delta.tool_calls or delta.reasoning_content or delta.reasoning:
                        turn.token()
                    for call in delta.tool_calls or ():
                        function = call.function or _FunctionDelta()
                        turn.calls.add(call.index, function.name, function.arguments)
                    if delta.content:
                        yield TextDelta(delta.content)
                if choice.finish_reason:
                    turn.finish = choice.finish_reason
                    turn.done = True  # some engines close without "[DONE]" after this

    @staticmethod
    def _usage(usage: _Usage, turn: Turn) -> None:
        if usage.prompt_tokens is not None:
            turn.prompt_tokens = usage.prompt_tokens
        if usage.completion_tokens is not None:
            turn.output_tokens = usage.completion_tokens
        details = usage.prompt_tokens_details
        if details is not None and details.cached_tokens is not None:
            turn.cached_tokens = details.cached_tokens
