"""What the backends that forward to an inference engine over HTTP share.

An upstream backend sends the trimmed, rendered chat to an engine (vLLM, SGLang,
llama.cpp's server, Ollama, ``mlx_lm.server``, another trimkit) and streams its
answer back as model text, so the server's tool-call parser and SSE writer treat
it exactly like text from the in-process model. :mod:`.openai` speaks
``/v1/chat/completions``, :mod:`.anthropic_upstream` speaks ``/v1/messages``.

Everything here is async on the server's event loop (httpx), so a slow upstream
holds only the request waiting for it. Nothing opens a connection unless an
upstream URL is configured; the key for it comes from the configuration, never
from a client's request.

Tool calls an engine returns natively (``tool_calls`` from an engine started
with its own tool parser, ``tool_use`` blocks from an Anthropic-compatible one)
are written out at the end of the turn in trimkit's convention, so the one
response parser turns them into ``tool_use`` blocks with the client's names and
coerced arguments. Reading the stream is in :mod:`.upstream_stream`; an engine's
failures become trimkit's errors in :mod:`.upstream_errors`; this module holds the
configuration, the probing of ``/v1/models`` and the backend itself.

Token counts for budgeting are estimates from the profile unless
``upstream_tokenizer`` names a local ``tokenizer.json`` (or a model directory);
the usage reported to the client is the upstream's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import msgspec

from ..errors import ConfigError
from ..profile import ModelProfile, tier_for
from ..redact import Redactor, public_url, url_secrets
from .base import (Backend, BackendError, BackendStatus, ChatMessages, Finished, GenerationEvent,
                   GenerationParams, Readiness, TextDelta)
from .prefill_meter import PrefillMeter
from .upstream_errors import ERROR_BODY_LIMIT, error_message, rejected_fields, status_error, transport_error
from .upstream_stream import LISTING_LIMIT, Turn, aread_bounded, read_bounded

PROBE_RETRY_SECONDS = 2.0  # while the upstream is unreachable, /health and requests re-probe this often
PROBE_READ_TIMEOUT = 10.0
AUTH_STYLES = ("auto", "bearer", "x-api-key", "both")

log = logging.getLogger("trimkit.upstream")


@dataclass
class UpstreamConfig:
    url: str
    model: str | None = None
    api_key: str | None = None
    timeout: float = 300.0
    connect_timeout: float = 5.0
    tokenizer: str | None = None
    concurrency: int = 4
    auth: str = "auto"  # how the key is sent: see UpstreamBackend.auth_headers

    def __post_init__(self) -> None:
        if self.auth not in AUTH_STYLES:
            raise ConfigError(f"upstream_auth {self.auth!r}: choose one of {', '.join(AUTH_STYLES)}",
                              key="upstream_auth")

    @classmethod
    def from_settings(cls, settings: Any, url: str | None = None) -> "UpstreamConfig":
        url = url or upstream_urls(settings)[0]
        return cls(
            url=url,
            model=settings.upstream_model,
            api_key=settings.upstream_api_key,
            timeout=settings.upstream_timeout,
            connect_timeout=settings.upstream_connect_timeout,
            tokenizer=settings.upstream_tokenizer,
            concurrency=settings.upstream_concurrency,
            auth=settings.upstream_auth,
        )


def upstream_urls(settings: Any) -> list[str]:
    """Every engine the settings name: ``upstream`` first, then ``upstreams``, without repeats."""
    urls = [u for u in [settings.upstream, *settings.upstreams] if u]
    if not urls:
        raise ConfigError(
            f"the {settings.backend} backend needs --upstream URL (the engine's base URL, "
            "for example http://127.0.0.1:8000)",
            key="upstream",
        )
    return list(dict.fromkeys(urls))


def make_upstream_backend(settings: Any):
    """The backend ``settings.backend`` names (``openai`` or ``anthropic``); a pool of them for several engines."""
    if settings.backend == "openai":
        from .openai import OpenAIBackend as kind
    else:
        from .anthropic_upstream import AnthropicBackend as kind
    configs = [UpstreamConfig.from_settings(settings, url) for url in upstream_urls(settings)]
    if len(configs) == 1:
        return kind(configs[0])
    from .pool import UpstreamPool

    return UpstreamPool([kind(config) for config in configs])


def base_url(url: str) -> str:
    """The engine's root URL: ``http://host:8000``, ``…/`` and ``…/v1`` all give ``http://host:8000``."""
    parsed = httpx.URL(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"upstream {url!r} is not an http:// or https:// URL", key="upstream")
    root = str(parsed.copy_with(query=None, fragment=None)).rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def local_profile(config: UpstreamConfig) -> ModelProfile:
    """A profile named for the served model, from a local model directory or tokenizer when given."""
    name = config.model or "upstream"
    if not config.tokenizer:
        return ModelProfile.from_name(name)
    path = Path(config.tokenizer).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return ModelProfile.from_model_dir(path, name=name)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"upstream_tokenizer {config.tokenizer}: no tokenizer.json there", key="upstream_tokenizer")
    from tokenizers import Tokenizer

    return ModelProfile.from_name(name, tokenizer=Tokenizer.from_file(str(file)))


# ---------------------------------------------------------------- the model listing


class _Meta(msgspec.Struct):
    """llama.cpp's server: ``n_ctx`` is the window it was started with (``-c``), unlike ``n_ctx_train``."""

    n_params: int | None = None
    n_ctx: int | None = None


class _Listed(msgspec.Struct):
    """One entry of ``GET /v1/models``, with the fields engines use for the window and size."""

    id: str
    max_model_len: int | None = None  # vLLM, SGLang
    context_length: int | None = None  # LM Studio, OpenRouter-style listings
    max_input_tokens: int | None = None  # Anthropic-style (trimkit)
    meta: _Meta | None = None

    @property
    def context_window(self) -> int | None:
        served = self.meta.n_ctx if self.meta is not None else None
        return self.max_model_len or served or self.context_length or self.max_input_tokens


class _Listing(msgspec.Struct):
    data: list[_Listed] = msgspec.field(default_factory=list)


# ---------------------------------------------------------------- the backend


class UpstreamBackend(Backend):
    """The shared half of an upstream backend; subclasses say how to ask and how to read."""

    name = "upstream"
    generate_path = "/v1/messages"
    default_auth = "bearer"  # what ``upstream_auth = "auto"`` means for this API

    def __init__(self, config: UpstreamConfig, *, probe: bool = True):
        self.config = config
        self.max_concurrency = max(1, config.concurrency)
        self.base = base_url(config.url)
        self.shown = public_url(self.base)
        """The URL as it may be shown (``/health``, messages, logs): no password, no query values."""
        self.redactor = Redactor([config.api_key or "", *url_secrets(config.url)])
        self.model = config.model
        self.profile = local_profile(config)
        self.prefill_meter = PrefillMeter(self.profile)
        self.timeout = httpx.Timeout(config.timeout, connect=config.connect_timeout)
        self._state = Readiness.LOADING
        self._detail = f"upstream {self.shown} not probed yet"
        self._answer: int | None = None
        self._last_probe = float("-inf")
        self._probe_task: asyncio.Task | None = None
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.dropped_sampling: set[str] = set()  # fields this engine said it does not take
        self.outstanding = 0  # generations in flight (a pool sends the next one where this is lowest)
        if probe:
            self.probe()

    # ------------------------------------------------------------------ subclass hooks

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def auth_headers(self) -> dict[str, str]:
        """The key as ``Authorization: Bearer``, ``x-api-key`` or both, as ``upstream_auth`` says.

        ``auto`` is the API's own style (``default_auth``): Bearer for OpenAI-compatible
        engines; both for Anthropic-compatible ones, since vLLM's ``/v1/messages``
        reads only Bearer while Anthropic's own API and trimkit read ``x-api-key``.
        """
        key = self.config.api_key
        if not key:
            return {}
        style = self.default_auth if self.config.auth == "auto" else self.config.auth
        headers = {}
        if style in ("bearer", "both"):
            headers["authorization"] = f"Bearer {key}"
        if style in ("x-api-key", "both"):
            headers["x-api-key"] = key
        return headers

    def request_body(self, model: str, messages: ChatMessages, params: GenerationParams) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, response: httpx.Response, turn: Turn) -> AsyncIterator[GenerationEvent]:
        """Yield ``TextDelta`` items and fill ``turn`` (usage, native calls); set ``turn.done`` at a proper end."""
        raise NotImplementedError

    # ------------------------------------------------------------------ status and probing

    def status(self) -> BackendStatus:
        if self._closed:
            return BackendStatus(Readiness.FAILED, detail="closed")
        if self._state is not Readiness.READY:
            self._probe_soon()
        return BackendStatus(
            self._state,
            detail=self._detail,
            extra={
                "upstream": self.shown,
                "model": self.model,
                "context_window": self.profile.context_window,
                "prefill_tps": round(self.profile.prefill_tps, 1),
            },
            answer=self._answer,
        )

    def probe(self) -> BackendStatus:
        """Ask the upstream for its model listing now (blocking; for start-up and scripts)."""
        self._last_probe = time.monotonic()
        try:
            with httpx.Client(timeout=self._probe_timeout()) as client:
                with client.stream("GET", self.base + "/v1/models", headers=self.headers()) as response:
                    status, body = response.status_code, read_bounded(response.iter_bytes(), LISTING_LIMIT)
        except httpx.HTTPError as exc:
            self._unreachable(exc)
        else:
            self._listed(status, body)
        return self.status()

    async def probe_async(self) -> BackendStatus:
        self._last_probe = time.monotonic()
        try:
            async with self._async_client().stream("GET", self.base + "/v1/models", headers=self.headers(),
                                                   timeout=self._probe_timeout()) as response:
                status, body = response.status_code, await aread_bounded(response.aiter_bytes(), LISTING_LIMIT)
        except httpx.HTTPError as exc:
            self._unreachable(exc)
        else:
            self._listed(status, body)
        return self.status()

    def _probe_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(min(self.config.timeout, PROBE_READ_TIMEOUT), connect=self.config.connect_timeout)

    def _probe_soon(self) -> None:
        """Re-probe in the background (at most every PROBE_RETRY_SECONDS) when called on an event loop."""
        if self._probe_task is not None and not self._probe_task.done():
            return
        if time.monotonic() - self._last_probe < PROBE_RETRY_SECONDS:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._last_probe = time.monotonic()
        self._probe_task = loop.create_task(self.probe_async())

    def take_out_of_service(self, reason: str) -> None:
        """Not ready until a probe of the model listing succeeds (the first one after PROBE_RETRY_SECONDS)."""
        self._last_probe = time.monotonic()
        self._not_ready(reason, lasting=False)

    def _unreachable(self, exc: httpx.HTTPError) -> None:
        error = transport_error(exc, self.shown, self.config.timeout, streaming=False, redactor=self.redactor)
        self._not_ready(str(error), lasting=error.lasting)

    def _not_ready(self, reason: str, *, lasting: bool, answer: int | None = None) -> None:
        """A configuration problem lasts (a 500, or ``answer``, until it changes); anything else may pass (a 529)."""
        self._state = Readiness.FAILED if lasting else Readiness.LOADING
        self._detail = reason if lasting else f"{reason}; retrying"
        self._answer = answer if lasting else None

    def _listed(self, status: int, body: bytes) -> None:
        if status >= 400 and status != 404:
            error = status_error(status, body, "GET /v1/models", self.redactor)
            passing = error.status in (429, 529) or status >= 500
            self._not_ready(str(error) if passing else f"failed: {error}", lasting=not passing,
                            answer=error.status if error.status >= 500 else None)
            return
        entries: list[_Listed] = []
        if status < 400:
            try:
                entries = msgspec.json.decode(body, type=_Listing).data
            except msgspec.DecodeError:
                entries = []
        names = [entry.id for entry in entries]
        if self.model is None:
            if len(names) != 1:
                served = ", ".join(names[:5]) + (", …" if len(names) > 5 else "") if names else "none listed"
                self._not_ready(
                    f"failed: choose the upstream model with upstream_model "
                    f"(upstream {self.shown} serves {len(names)}: {served})",
                    lasting=True,
                )
                return
            self.model = names[0]
            self.profile = local_profile(replace(self.config, model=self.model))
            self.prefill_meter = PrefillMeter(self.profile)
        listed = next((entry for entry in entries if entry.id == self.model), None)
        if listed is not None and listed.context_window:
            self.profile.context_window = listed.context_window
        if listed is not None and listed.meta is not None and listed.meta.n_params:
            self.profile.total_params = float(listed.meta.n_params)
            self.profile.tier = tier_for(self.profile.total_params)
        self._state = Readiness.READY
        note = "" if listed is not None or status == 404 or not names else " (not in its listing; sent anyway)"
        self._detail = f"upstream {self.shown} serving {self.model}{note}"

    # ------------------------------------------------------------------ generating

    def _async_client(self) -> httpx.AsyncClient:
        """One connection pool per event loop (a client cannot move between loops)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(timeout=self.timeout)
            self._client_loop = loop
        return self._client

    async def generate(self, messages: ChatMessages, params: GenerationParams) -> AsyncIterator[GenerationEvent]:
        if self._closed:
            raise BackendError("the upstream backend is closed")
        if self.model is None:
            raise BackendError(f"the upstream model is not known yet: {self._detail}", status=529,
                               error_type="overloaded_error")
        url = self.base + self.generate_path
        turn = Turn(max_tokens=params.max_tokens)
        streaming = False
        self.outstanding += 1
        try:
            while not streaming:
                body = self.request_body(self.model, messages, params)
                async with self._async_client().stream("POST", url, json=body, headers=self.headers()) as response:
                    if response.status_code >= 400:
                        error_body = await aread_bounded(response.aiter_bytes(), ERROR_BODY_LIMIT)
                        if self._drop_rejected(response.status_code, error_body, body):
                            continue
                        raise status_error(response.status_code, error_body, f"POST {self.generate_path}",
                                           self.redactor)
                    streaming = True
                    self._state = Readiness.READY
                    async for event in self.read(response, turn):
                        if turn.deltas >= params.max_tokens:  # text past max_tokens: the engine ignores it
                            turn.cut()
                            break
                        turn.deltas += 1
                        turn.chars += len(event.text) if isinstance(event, TextDelta) else 0
                        yield event
        except httpx.HTTPError as exc:
            error = transport_error(exc, self.shown, self.config.timeout, streaming=streaming, redactor=self.redactor)
            if error.status == 529:
                self._unreachable(exc)
            raise error from None
        finally:
            self.outstanding -= 1
        if not turn.done:
            raise BackendError("upstream stream ended before the response finished")
        calls = turn.calls.as_text()
        if calls:
            yield TextDelta(calls)
        yield self._finished(messages, turn)

    def _drop_rejected(self, status: int, error_body: bytes, sent: dict[str, Any]) -> bool:
        """Whether the engine refused a sampling field it does not know; if so, it is not sent again."""
        rejected = rejected_fields(status, error_body, sent) - self.dropped_sampling
        if not rejected:
            return False
        self.dropped_sampling |= rejected
        log.warning("upstream %s does not take %s (%s); sending requests without it", self.shown,
                    ", ".join(sorted(rejected)), self.redactor.text(error_message(error_body)[:200]))
        return True

    def _finished(self, messages: ChatMessages, turn: Turn) -> Finished:
        prompt = turn.prompt_tokens if turn.prompt_tokens is not None else self.count_tokens(messages)
        cached = min(turn.cached_tokens, prompt)
        prefilled = prompt - cached
        tps = None
        if turn.first_token_at is not None and prefilled > 0:
            tps = prefilled / max(turn.first_token_at - turn.started, 1e-6)
            self.prefill_meter.record(prefilled, tps)
        return Finished(
            finish="length" if turn.finish == "length" else "stop",
            input_tokens=prefilled,
            output_tokens=turn.output_tokens if turn.output_tokens is not None else turn.deltas,
            cached_tokens=cached,
            prefill_tps=tps,
        )

    def close(self) -> None:
        """Stop taking requests and let the connection pool close on its loop."""
        self._closed = True
        client, self._client = self._client, None
        if client is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop is self._client_loop:
            loop.create_task(client.aclose())
