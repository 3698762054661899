"""From a request body to a response: decode, check, trim, render, generate, assemble."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from ..backends.base import Backend, BackendError, Finished, GenerationEvent, GenerationParams, TextDelta
from ..backends.residency import ModelSet, ModelState, Resident
from ..constrain import Constraint, ConstraintKinds, constraint_for
from .capture import Capture
from .lanes import Lane, Place
from ..pipeline import Pipeline
from ..profile import ModelProfile
from ..render import Chat, chat_for, thinking_setting
from ..request_kind import RequestKind, classify, title_from_words
from ..toolcalls.response import BlockDelta, BlockStart, BlockStop, ResponseBuilder
from ..errors import ConversationError
from ..stage import ConfigError, PromptTooLong, TrimResult
from ..wire import (
    MessagesRequest,
    MessagesResponse,
    RequestDecodeError,
    Usage,
    decode_request,
    output_schema,
)
from . import sse
from .delivery import delivered
from .errors import ApiError
from .retry import MIN_RETRY_TOKENS, plan_retry
from .shutdown import Shutdown
from .trace import NO_TRACE
from .validation import check_request
from ..config.settings import ServerSettings

log = logging.getLogger("trimkit.server")


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


@dataclass
class Prepared:
    request: MessagesRequest
    lane: Lane
    """The model the request was routed to."""
    trimmed: TrimResult
    chat: Chat
    prompt_tokens: int
    max_tokens: int | None
    """Decided by the budget stage; the client's own only when that stage is disabled."""
    body: bytes = b""
    kind: RequestKind = RequestKind.MAIN
    answer: str | None = None
    """The text to answer with, when the request is answered without the model."""
    constraint: Constraint | None = None
    trace: Any = NO_TRACE
    """The request's :class:`~.trace.RequestTrace`, told how it goes (for ``/metrics`` and the live view)."""
    thinking_open: bool = False
    """Whether the prompt leaves the model inside a thinking block (read once: it renders the template)."""


@dataclass
class _Attempt:
    """What one generation wrote and how it ended (``finished`` is None when it was stopped early)."""

    pieces: list[str] = field(default_factory=list)
    finished: Finished | None = None
    stopped: bool = False
    """Stopped to give the slot to the user's turn (a side request); it will start over."""
    first_at: float | None = None
    """When the first text arrived (``time.perf_counter``), and when the generation finished."""
    ended_at: float | None = None

    @property
    def written(self) -> str:
        return "".join(self.pieces)

    @property
    def finish(self) -> str:
        return self.finished.finish if self.finished else "stop"

    @property
    def output_tokens(self) -> int:
        return self.finished.output_tokens if self.finished else len(self.pieces)

    def input_tokens(self, prep: Prepared) -> int:
        return self.finished.input_tokens if self.finished else prep.prompt_tokens


class MessageService:
    def __init__(self, settings: ServerSettings, models: ModelSet | Backend, pipeline: Pipeline | None = None):
        """``models`` are the server's models (a single backend is the one-model server).
        ``pipeline`` defaults to one built from ``settings.stages``; either way each
        model's lane adds the server's own plugin (:class:`~trimkit.server.plugin.ServerPlugin`),
        and ``settings.stages`` is laid over a given pipeline's configuration, so stage options
        set for the server are never silently dropped (a prefill target turned off there
        stays off, and no cut then depends on the measured prefill speed)."""
        self.settings = settings
        self.models = models if isinstance(models, ModelSet) else ModelSet.single(models, settings)
        self.capture = Capture.from_settings(settings)
        self.shutdown = Shutdown()
        self._pipeline = pipeline
        self._lanes: dict[str, Lane] = {}
        self._lanes_lock = threading.Lock()

    # ------------------------------------------------------------------ the models

    def lane(self, resident: Resident) -> Lane:
        """The model's lane, built when it is first asked for (its backend's tokenizer loads then)."""
        lane = self._lanes.get(resident.name)
        if lane is None:
            backend = self.models.backend(resident)
            with self._lanes_lock:
                lane = self._lanes.get(resident.name)
                if lane is None:
                    lane = Lane(resident, backend, self.settings, self._pipeline, managed=self.models.managed)
                    self._lanes[resident.name] = lane
        return lane

    @property
    def default_lane(self) -> Lane:
        """The lane of the model ``model_patterns`` ids go to (the only one of a one-model server)."""
        return self.lane(self.models.default)

    def built_lanes(self) -> list[Lane]:
        return list(self._lanes.values())

    def route(self, requested: str) -> Lane:
        """The lane of the model that answers ``requested`` (a 404 when none does)."""
        resident = self.models.route(requested)
        if resident is None:
            raise ApiError(404, f"model: {requested} is not served here")
        return self.lane(resident)

    def profile(self) -> ModelProfile:
        """The default model's profile, as its requests are trimmed."""
        return self.default_lane.profile()

    # ------------------------------------------------------------------ preparing

    def chat(self, trimmed: TrimResult) -> Chat:
        """The trimmed request as chat messages, in the convention the profile says."""
        return chat_for(trimmed.request, trimmed.profile.native_tools)

    def prepare(self, body: bytes, *, needs_max_tokens: bool = True, trace: Any = NO_TRACE) -> Prepared:
        try:
            request = decode_request(body)
        except RequestDecodeError as exc:
            raise ApiError(400, str(exc)) from None
        check_request(request, needs_max_tokens=needs_max_tokens)
        lane = self.route(request.model)
        self.check_servable(lane)
        try:
            trimmed = lane.pipeline.trim(request, lane.backend.profile)
            chat = self.chat(trimmed)
            prompt_tokens, max_tokens = self.tokens(lane, trimmed, chat)
            thinking_open = self.opens_thinking(lane, chat)
            constraint = self.constraint(lane, request, trimmed, thinking_open)
        except (PromptTooLong, ConversationError) as exc:
            raise ApiError(400, str(exc)) from None
        except ConfigError as exc:
            raise ApiError(500, f"trimkit configuration error: {exc}", lasting=True) from None
        except RecursionError:  # stages walk blocks and schemas recursively
            raise ApiError(400, "request is nested too deeply to process") from None
        kind = classify(request)
        answer = title_from_words(request) if kind is RequestKind.TITLE and self.settings.quick_titles else None
        trace.prepared(request, trimmed, kind.value)
        return Prepared(request, lane, trimmed, chat, prompt_tokens, max_tokens, body, kind, answer, constraint, trace,
                        thinking_open)

    def check_servable(self, lane: Lane) -> None:
        """Refuse a request its model cannot serve: too big for the memory cap (400), failed to
        load (500), neither of which a retry fixes; still loading (529), for the one-model server
        (several models wait for theirs to load)."""
        resident = lane.resident
        if resident.plan.too_big is not None:
            raise ApiError(400, resident.plan.too_big, lasting=True)
        if self.models.managed:
            if resident.state is ModelState.FAILED:
                raise ApiError(500, f"The model is not ready: {resident.reason}", lasting=True)
            return
        status = lane.backend.status()
        if not status.ready:
            raise ApiError(status.http_status, f"The model is not ready: {status.detail}", lasting=status.failed)

    def constraint(self, lane: Lane, request: MessagesRequest, trimmed: TrimResult,
                   thinking_open: bool) -> Constraint | None:
        """What the output must fit: the tools the prompt shows, ``tool_choice``, a JSON output schema.

        Calls may name only the tools the tools stage showed the model (all of them
        when that stage left the tools as JSON), with their full input schemas, in
        the dialect the prompt is written in: the model's own when its template
        renders the tools, else trimkit's XML.
        """
        settings = self.settings
        kinds = ConstraintKinds(
            tool_calls=settings.constrain_tool_calls,
            tool_choice=settings.constrain_tool_choice,
            json_output=settings.constrain_json_output,
        )
        shown = trimmed.carry.tool_names if trimmed.request.tools is None else None
        return constraint_for(
            request.tools,
            request.tool_choice,
            output_schema(request),
            shown=shown,
            kinds=kinds,
            dialect=lane.dialect.name if trimmed.profile.native_tools else "xml",
            thinking_open=thinking_open,
        )

    def tokens(self, lane: Lane, trimmed: TrimResult, chat: Chat) -> tuple[int, int | None]:
        """The prompt's tokens and the output allowed: what the budget stage decided.

        Without a budget stage nothing fitted the prompt or chose ``max_tokens``: the
        backend counts the prompt, one the window cannot hold is refused, and the
        client's ``max_tokens`` goes through.
        """
        budget = trimmed.carry.budget
        if budget is not None:
            return budget.prompt_tokens, budget.max_tokens
        prompt_tokens = lane.backend.count_tokens(chat)
        window = trimmed.profile.context_window
        if prompt_tokens >= window:
            raise ApiError(400, str(PromptTooLong(prompt_tokens, window - 1)))
        return prompt_tokens, trimmed.request.max_tokens

    def params(self, prep: Prepared) -> GenerationParams:
        r = prep.request
        sampling = {"temperature": r.temperature, "top_p": r.top_p, "top_k": r.top_k}
        return GenerationParams(max_tokens=prep.max_tokens, constraint=prep.constraint, **sampling)

    def opens_thinking(self, lane: Lane, chat: Chat) -> bool:
        return bool(lane.backend.opens_thinking(chat))

    def builder(self, prep: Prepared) -> ResponseBuilder:
        """The response builder for the model's format, the request's thinking setting and the retry."""
        return ResponseBuilder(
            prep.request.tools,
            prep.request.stop_sequences,
            dialect=prep.lane.dialect,
            thinking=bool(thinking_setting(prep.request)),
            thinking_open=prep.thinking_open,
            special_tokens=prep.lane.backend.special_tokens,
            hold_failed=self.settings.retry_tool_calls,
        )

    # ------------------------------------------------------------------ generating

    async def _events(self, prep: Prepared, builder: ResponseBuilder, outcome: dict,
                      stop: asyncio.Event | None = None) -> AsyncIterator[object]:
        """Yield response events (and ``None`` while waiting, so the caller can ping).

        A tool call the builder holds back as failed gets one retry (:mod:`.retry`);
        the retry's events continue the same response. When ``stop`` is set (a side
        request asked to give its slot to the user's turn) the generation is closed and
        ``outcome["stopped"]`` says so.
        """
        params = self.params(prep)
        first = _Attempt()
        async for event in self._attempt(prep.lane, prep.chat, params, builder, first, stop, prep.answer):
            yield event
        if first.stopped:
            outcome["stopped"] = True
            return
        attempts = [first]
        for event in builder.finish(first.finish):
            yield event
        if builder.failed is not None:
            retry = self._retry(prep, builder, first, params)
            if retry is None:
                events = builder.release_failed() + builder.finish(first.finish)
            else:
                builder.restart(thinking_open=self.opens_thinking(prep.lane, retry.chat))
                second = _Attempt()
                async for event in self._attempt(prep.lane, retry.chat, retry.params, builder, second):
                    yield event
                attempts.append(second)
                events = builder.finish(second.finish)
            for event in events:
                yield event
        outcome["usage"] = Usage(
            input_tokens=sum(a.input_tokens(prep) for a in attempts),
            output_tokens=sum(a.output_tokens for a in attempts),
            cache_creation_input_tokens=0,
            cache_read_input_tokens=sum(a.finished.cached_tokens for a in attempts if a.finished),
        )
        prep.trace.generated(attempts, builder, outcome["usage"])

    def _retry(self, prep: Prepared, builder: ResponseBuilder, first: "_Attempt", params: GenerationParams):
        """The retry for the failed call the builder holds, or None when there is no room or way for one."""
        retry = plan_retry(prep.chat, first.written, builder.failed, params, first.output_tokens)
        if retry is None:
            return None
        try:
            prompt = prep.lane.backend.count_tokens(retry.chat)
            self.opens_thinking(prep.lane, retry.chat)
        except Exception:  # a template that refuses the retry's conversation: the text goes out as it is
            log.warning("no retry: the chat template refused the corrected conversation", exc_info=True)
            return None
        room = prep.trimmed.profile.context_window - prompt
        if room < retry.params.max_tokens:
            retry.params.max_tokens = room
        return retry if retry.params.max_tokens >= MIN_RETRY_TOKENS else None

    async def _attempt(self, lane: Lane, chat: Chat, params: GenerationParams, builder: ResponseBuilder,
                       attempt: "_Attempt", stop: asyncio.Event | None = None,
                       answer: str | None = None) -> AsyncIterator[object]:
        """One generation, its text fed to ``builder``; yields events, and ``None`` while waiting.

        ``answer``, when given, is said instead of asking the model."""
        generation = fixed_text(answer) if answer is not None else lane.backend.generate(chat, params)
        first = asyncio.ensure_future(anext(generation))
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            while True:
                done, _ = await asyncio.wait({first, stopper} - {None}, timeout=self.settings.ping_interval,
                                             return_when=asyncio.FIRST_COMPLETED)
                if first in done:
                    break
                if stopper is not None and stopper in done:
                    attempt.stopped = True
                    return
                yield None
            item = first.result()
            while True:
                if stop is not None and stop.is_set():
                    attempt.stopped = True
                    return
                if isinstance(item, TextDelta):
                    if attempt.first_at is None:
                        attempt.first_at = time.perf_counter()
                    attempt.pieces.append(item.text)
                    for event in builder.feed(item.text):
                        yield event
                    if builder.stopped:
                        break
                elif isinstance(item, Finished):
                    attempt.finished = item
                    attempt.ended_at = time.perf_counter()
                    break
                await asyncio.sleep(0)  # a disconnect is noticed even if the backend never waits
                item = await anext(generation)
        except StopAsyncIteration:
            pass
        finally:
            for pending in (first, stopper):
                if pending is not None and not pending.done():
                    pending.cancel()
                    await asyncio.gather(pending, return_exceptions=True)
            await generation.aclose()

    def reserve(self, prep: Prepared) -> Place | None:
        """A place in the model's queue (a 529 when it is full) and on the model, or None when
        no model is needed."""
        if prep.answer is not None:
            return None
        ticket = prep.lane.gate.reserve(urgent=not prep.kind.side)
        return Place(ticket, self.models.lease(prep.lane.resident))

    async def _generate(self, prep: Prepared, ticket: Place | None, outcome: dict) -> AsyncIterator[object]:
        """The response events for ``prep``, ``None`` while waiting (for the model to load, for a
        slot, for the prefill).

        The user's turn streams as the model writes. A side request is generated whole
        before any event leaves, so that when the user's turn needs its slot it can stop,
        step aside and start over later without its client having seen a word.
        ``outcome["builder"]`` is the response builder that made the events.
        """
        builder = outcome["builder"] = self.builder(prep)
        if ticket is None:
            async for event in self._events(prep, builder, outcome):
                yield event
            return
        while True:
            prep.trace.waiting()
            waiting = asyncio.ensure_future(ticket.acquire())
            try:
                while not waiting.done():
                    done, _ = await asyncio.wait({waiting}, timeout=self.settings.ping_interval)
                    if not done:
                        yield None
            finally:
                if not waiting.done():
                    waiting.cancel()
                    await asyncio.gather(waiting, return_exceptions=True)
            waiting.result()
            prep.trace.running()
            if ticket.urgent:
                async for event in self._events(prep, builder, outcome):
                    yield event
                return
            held: list[object] = []
            async for event in self._events(prep, builder, outcome, stop=ticket.yield_requested):
                if event is None:
                    yield None
                else:
                    held.append(event)
            if not outcome.pop("stopped", False):
                for event in held:
                    yield event
                return
            log.info("a %s request stepped aside for the user's turn", prep.kind.value)
            ticket.step_aside()
            builder = outcome["builder"] = self.builder(prep)

    async def create(self, prep: Prepared) -> MessagesResponse:
        ticket = self.reserve(prep)
        outcome: dict = {}
        try:
            async for _ in self._generate(prep, ticket, outcome):
                pass
        except asyncio.CancelledError:
            prep.trace.client_left()
            raise
        except BackendError as exc:
            raise ApiError(exc.status, str(exc), exc.error_type, lasting=exc.lasting) from None
        finally:
            if ticket is not None:
                ticket.release()
        builder = outcome["builder"]
        prep.trace.answered(200)
        message = MessagesResponse(
            id=new_message_id(),
            model=prep.request.model,
            content=builder.content,
            stop_reason=builder.stop_reason,
            stop_sequence=builder.stop_sequence,
            usage=outcome["usage"],
        )
        await self._capture(prep, message)
        prep.trace.complete()
        return message

    async def _capture(self, prep: Prepared, message: MessagesResponse) -> None:
        if self.capture is not None:
            extra = {"prompt_tokens": prep.prompt_tokens, "max_tokens": prep.max_tokens}
            await self.capture.save(prep.body, prep.trimmed, prep.chat, message, extra)

    async def open_stream(self, prep: Prepared) -> AsyncIterator[bytes]:
        """The SSE stream for ``prep``, once it has something to say.

        The stream opens (``message_start``) with the first event, or after
        ``ping_interval`` of waiting for a slot or a long prefill, whichever is first. A
        failure before then (a replay script used up, an engine refusing the request) is
        raised here, to be answered with its own status: Claude Code shows such an answer
        at once, while an ``error`` event after ``message_start`` reaches its user as an
        "empty or malformed response", and a retryable status as minutes of retries.
        """
        ticket = self.reserve(prep)
        stream = self._stream(prep, ticket)
        try:
            first = await anext(stream)
        except BackendError as exc:
            raise ApiError(exc.status, str(exc), exc.error_type, lasting=exc.lasting) from None
        prep.trace.answered(200)
        return delivered(first, stream, ping_interval=self.settings.ping_interval, shutdown=self.shutdown)

    async def _stream(self, prep: Prepared, ticket: Place | None) -> AsyncIterator[bytes]:
        message_id = new_message_id()
        start = MessagesResponse(
            id=message_id,
            model=prep.request.model,
            content=[],
            usage=Usage(input_tokens=prep.prompt_tokens, output_tokens=1),
        )
        opened = False
        outcome: dict = {}
        try:
            async for event in self._generate(prep, ticket, outcome):
                if not opened:
                    opened = True
                    yield sse.message_start(start) + sse.PING
                if event is None:
                    yield sse.PING
                elif isinstance(event, BlockDelta):
                    yield sse.block_delta(event.index, event.kind, event.value)
                elif isinstance(event, BlockStart):
                    yield sse.block_start(event.index, event.block)
                elif isinstance(event, BlockStop):
                    yield sse.block_stop(event.index)
            usage, builder = outcome["usage"], outcome["builder"]
            closing = sse.message_delta(
                builder.stop_reason,
                builder.stop_sequence,
                {
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": usage.cache_read_input_tokens or 0,
                },
            )
            yield (b"" if opened else sse.message_start(start)) + closing
            await self._capture(prep, MessagesResponse(
                id=message_id, model=prep.request.model, content=builder.content,
                stop_reason=builder.stop_reason, stop_sequence=builder.stop_sequence, usage=usage,
            ))
            yield sse.MESSAGE_STOP
        except asyncio.CancelledError:
            prep.trace.client_left()
            raise
        except BackendError as exc:
            if not opened:
                raise
            prep.trace.stream_failed(exc.error_type, str(exc))
            yield sse.error(exc.error_type, str(exc))
        except Exception as exc:  # a failure after the stream began must end it cleanly
            if not opened:
                raise
            log.exception("stream failed")
            message = f"Internal server error ({type(exc).__name__})"
            prep.trace.stream_failed("api_error", message)
            yield sse.error("api_error", message)
        finally:
            if ticket is not None:
                ticket.release()
            prep.trace.complete()


async def fixed_text(text: str) -> AsyncIterator[GenerationEvent]:
    """A generation that says ``text``, for a request answered without the model (the
    usage then counts the prompt as rendered, and the text a token per four characters)."""
    yield TextDelta(text)
