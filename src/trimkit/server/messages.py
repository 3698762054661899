"""From a request body to a response: decode, check, trim, render, generate, assemble."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, replace
from typing import AsyncIterator

from ..backends.base import Backend, BackendError, Finished, GenerationParams, TextDelta
from .capture import Capture
from ..pipeline import Pipeline
from ..render import Chat, chat_messages, native_chat
from ..toolcalls.response import BlockDelta, BlockStart, BlockStop, ResponseBuilder
from ..stage import ConfigError, PromptTooLong, TrimResult
from ..wire import (
    MessagesRequest,
    MessagesResponse,
    RequestDecodeError,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    decode_request,
)
from . import sse
from .errors import ApiError
from .gate import GenerationGate, Ticket
from ..config.settings import ServerSettings

log = logging.getLogger("trimkit.server")


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


@dataclass
class Prepared:
    request: MessagesRequest
    trimmed: TrimResult
    chat: Chat
    prompt_tokens: int
    max_tokens: int
    body: bytes = b""


def check_request(request: MessagesRequest, *, needs_max_tokens: bool) -> None:
    """What the API requires beyond the types: the messages Structs already enforce the rest."""
    if needs_max_tokens and request.max_tokens is None:
        raise ApiError(400, "max_tokens: Field required")
    if not request.messages:
        raise ApiError(400, "messages: at least one message is required")
    for i, message in enumerate(request.messages):
        if isinstance(message.content, list):
            for j, block in enumerate(message.content):
                if isinstance(block, ToolUseBlock) and (not block.id or not block.name):
                    raise ApiError(400, f"messages.{i}.content.{j}: tool_use requires an id and a name")
                if isinstance(block, ToolResultBlock) and not block.tool_use_id:
                    raise ApiError(400, f"messages.{i}.content.{j}: tool_result requires a tool_use_id")
    if request.tools:
        names = [tool.name for tool in request.tools]
        if len(set(names)) != len(names):
            raise ApiError(400, "tools: tool names must be unique")
    for name, value in (("temperature", request.temperature), ("top_p", request.top_p)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ApiError(400, f"{name}: must be between 0 and 1")
    if request.top_k is not None and request.top_k < 0:
        raise ApiError(400, "top_k: must be 0 or more")


class MessageService:
    def __init__(self, settings: ServerSettings, backend: Backend, pipeline: Pipeline):
        self.settings = settings
        self.backend = backend
        self.pipeline = pipeline
        self.gate = GenerationGate(settings.max_queue, backend.max_concurrency)
        self.capture = Capture.from_settings(settings)

    # ------------------------------------------------------------------ preparing

    def served_models(self) -> set[str]:
        names = {self.backend.profile.name}
        if self.settings.model:
            names.add(self.settings.model)
            names.add(self.settings.model.rstrip("/").rsplit("/", 1)[-1])
        return names

    def native_tools(self) -> bool:
        """Whether tools go through the model's own template (``convention``; see docs/config.md)."""
        return self.settings.convention != "xml" and self.backend.renders_tools

    def profile(self):
        profile = self.backend.profile
        if self.settings.tier:
            profile = replace(profile, tier=self.settings.tier)
        if self.settings.context_window:
            profile = replace(profile, context_window=self.settings.context_window)
        if profile.native_tools != self.native_tools():
            profile = replace(profile, native_tools=self.native_tools())
        return profile

    def chat(self, trimmed: TrimResult) -> Chat:
        """The trimmed request as chat messages, in the convention the profile says."""
        if trimmed.profile.native_tools:
            return native_chat(trimmed.request)
        return chat_messages(trimmed.request)

    def prepare(self, body: bytes, *, needs_max_tokens: bool = True) -> Prepared:
        try:
            request = decode_request(body)
        except RequestDecodeError as exc:
            raise ApiError(400, str(exc)) from None
        check_request(request, needs_max_tokens=needs_max_tokens)
        if not self.settings.accepts_model(request.model, self.served_models()):
            raise ApiError(404, f"model: {request.model} is not served here")
        status = self.backend.status()
        if not status.ready:
            raise ApiError(500 if status.failed else 529, f"The model is not ready: {status.detail}",
                           lasting=status.failed)
        profile = self.profile()
        try:
            trimmed = self.trim(request, profile)
            chat = self.chat(trimmed)
            prompt_tokens = self.backend.count_tokens(chat)
        except PromptTooLong as exc:
            raise ApiError(400, str(exc)) from None
        except ConfigError as exc:
            raise ApiError(500, f"trimkit configuration error: {exc}", lasting=True) from None
        except RecursionError:  # stages walk blocks and schemas recursively
            raise ApiError(400, "request is nested too deeply to process") from None
        window = profile.context_window
        if prompt_tokens >= window:
            raise ApiError(400, f"prompt is too long: {prompt_tokens} tokens > {window - 1} maximum")
        wanted = trimmed.request.max_tokens or request.max_tokens or 4096
        if self.settings.max_output_tokens:
            wanted = min(wanted, self.settings.max_output_tokens)
        max_tokens = max(1, min(wanted, window - prompt_tokens))
        return Prepared(request, trimmed, chat, prompt_tokens, max_tokens, body)

    def trim(self, request: MessagesRequest, profile) -> TrimResult:
        """Trim, letting the prefill budget count what the backend already has cached.

        The budget stage holds uncached tokens to the prefill target. When it had to
        cut, ask the backend how much of the window-limited prompt is already in its
        prefix cache and trim again with that figure, so a long conversation whose
        earlier turns are cached is not cut for prefill time it will not spend.
        """
        trimmed = self.pipeline.trim(request, profile)
        budget = trimmed.carry.extra.get("budget") or {}
        if not (budget.get("dropped_turns") or budget.get("cut_results")):
            return trimmed
        relaxed = self.pipeline.trim(request, profile, cached_tokens=profile.context_window)
        cached = self.backend.cached_prefix_tokens(self.chat(relaxed))
        if cached <= 0:
            return trimmed
        return self.pipeline.trim(request, profile, cached_tokens=cached)

    def count_tokens(self, body: bytes) -> int:
        return self.prepare(body, needs_max_tokens=False).prompt_tokens

    def params(self, prep: Prepared) -> GenerationParams:
        r = prep.request
        return GenerationParams(max_tokens=prep.max_tokens, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k)

    def builder(self, prep: Prepared) -> ResponseBuilder:
        return ResponseBuilder(
            prep.request.tools,
            prep.request.stop_sequences,
            thinking_open=bool(self.backend.opens_thinking(prep.chat)),
        )

    # ------------------------------------------------------------------ generating

    async def _events(self, prep: Prepared, builder: ResponseBuilder, outcome: dict) -> AsyncIterator[object]:
        """Yield response events (and ``None`` while waiting, so the caller can ping)."""
        generation = self.backend.generate(prep.chat, self.params(prep))
        deltas = 0
        finished: Finished | None = None
        first = asyncio.ensure_future(anext(generation))
        try:
            while True:
                done, _ = await asyncio.wait({first}, timeout=self.settings.ping_interval)
                if done:
                    break
                yield None
            item = first.result()
            while True:
                if isinstance(item, TextDelta):
                    deltas += 1
                    for event in builder.feed(item.text):
                        yield event
                    if builder.stopped:
                        break
                elif isinstance(item, Finished):
                    finished = item
                    break
                await asyncio.sleep(0)  # a disconnect is noticed even if the backend never waits
                item = await anext(generation)
        except StopAsyncIteration:
            pass
        finally:
            if not first.done():
                first.cancel()
                await asyncio.gather(first, return_exceptions=True)
            await generation.aclose()
        for event in builder.finish(finished.finish if finished else "stop"):
            yield event
        outcome["usage"] = Usage(
            input_tokens=finished.input_tokens if finished else prep.prompt_tokens,
            output_tokens=finished.output_tokens if finished else deltas,
            cache_creation_input_tokens=0,
            cache_read_input_tokens=finished.cached_tokens if finished else 0,
        )

    async def create(self, prep: Prepared) -> MessagesResponse:
        ticket = self.gate.reserve()
        try:
            await ticket.acquire()
            builder = self.builder(prep)
            outcome: dict = {}
            async for _ in self._events(prep, builder, outcome):
                pass
        except BackendError as exc:
            raise ApiError(exc.status, str(exc), exc.error_type, lasting=exc.lasting) from None
        finally:
            ticket.release()
        message = MessagesResponse(
            id=new_message_id(),
            model=prep.request.model,
            content=builder.content,
            stop_reason=builder.stop_reason,
            stop_sequence=builder.stop_sequence,
            usage=outcome["usage"],
        )
        await self._capture(prep, message)
        return message

    async def _capture(self, prep: Prepared, message: MessagesResponse) -> None:
        if self.capture is not None:
            extra = {"prompt_tokens": prep.prompt_tokens, "max_tokens": prep.max_tokens}
            await self.capture.save(prep.body, prep.trimmed, prep.chat, message, extra)

    def start_stream(self, prep: Prepared) -> AsyncIterator[bytes]:
        """Reserve a queue place now (so overload is a 529, not a broken stream), then stream."""
        ticket = self.gate.reserve()
        return self._stream(prep, ticket)

    async def _stream(self, prep: Prepared, ticket: Ticket) -> AsyncIterator[bytes]:
        message_id = new_message_id()
        start = MessagesResponse(
            id=message_id,
            model=prep.request.model,
            content=[],
            usage=Usage(input_tokens=prep.prompt_tokens, output_tokens=1),
        )
        try:
            yield sse.message_start(start)
            yield sse.PING
            waiting = asyncio.ensure_future(ticket.acquire())
            try:
                while not waiting.done():
                    done, _ = await asyncio.wait({waiting}, timeout=self.settings.ping_interval)
                    if not done:
                        yield sse.PING
            finally:
                if not waiting.done():
                    waiting.cancel()
            waiting.result()
            builder = self.builder(prep)
            outcome: dict = {}
            async for event in self._events(prep, builder, outcome):
                if event is None:
                    yield sse.PING
                elif isinstance(event, BlockDelta):
                    yield sse.block_delta(event.index, event.kind, event.value)
                elif isinstance(event, BlockStart):
                    yield sse.block_start(event.index, event.block)
                elif isinstance(event, BlockStop):
                    yield sse.block_stop(event.index)
            usage = outcome["usage"]
            yield sse.message_delta(
                builder.stop_reason,
                builder.stop_sequence,
                {
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": usage.cache_read_input_tokens or 0,
                },
            )
            await self._capture(prep, MessagesResponse(
                id=message_id, model=prep.request.model, content=builder.content,
                stop_reason=builder.stop_reason, stop_sequence=builder.stop_sequence, usage=usage,
            ))
            yield sse.MESSAGE_STOP
        except asyncio.CancelledError:
            raise
        except BackendError as exc:
            yield sse.error(exc.error_type, str(exc))
        except Exception as exc:  # a failure after the stream began must end it cleanly
            log.exception("stream failed")
            yield sse.error("api_error", f"Internal server error ({type(exc).__name__})")
        finally:
            ticket.release()
