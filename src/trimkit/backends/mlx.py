"""Generate with an MLX model in this process (mlx-lm).

mlx-lm evaluates on a thread-local stream, so one dedicated thread does all model
work: it loads the weights, then serves queued requests one at a time. Each
request's events travel back to its event loop with ``call_soon_threadsafe``.
Closing the async generator sets a flag the thread checks after every decode
step and between prefill chunks, so the model is free again within one step.

Across requests a :class:`~.prompt_cache.PromptCache` keeps KV caches keyed by
their tokens: a prompt that extends an earlier one prefills only the new tokens.

A server of several models holds one ``MLXBackend`` per model, each with its own
generation thread, prefix cache and slot, so a short request to a small model is not
stuck behind a long answer from a big one. MLX evaluates thread-safely from 0.31.2;
with an older MLX the threads take turns (:data:`MLX_TURNS`), one generation or load
at a time across models. ``unload()`` ends the thread and frees the weights and the
prefix cache (the tokenizer stays, so prompts are still counted and rendered);
``load()`` starts a new thread that loads them again.

Prompts are rendered by the model's chat template through a
:class:`~trimkit.chat_template.ChatTemplate`, which learns at load time what the template
can do: when it renders tools, the server gives it the model's own convention
(``renders_tools``), and ``opens_thinking`` tells whether the generation prompt leaves
a reasoning section open.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from ..chat_template import ChatTemplate
from ..constrain import UnsupportedSchema, lark_grammar, markers
from ..profile import ModelProfile
from ..render import Chat
from .base import (Backend, BackendError, BackendStatus, ChatMessages, Finished, GenerationEvent,
                   GenerationParams, Readiness, TextDelta)
from .locate import model_label, resolve_model_path, without_paths
from .mlx_grammar import DEFAULT_CACHE_ENTRIES, GrammarEngine, log as constrain_log
from .prefill_meter import PREFILL_REPORT_SECONDS, PrefillMeter, PrefillProgress
from .prompt_cache import PromptCache
from .prompt_tokens import PromptTokenizer

DEFAULT_MAX_CACHE_BYTES = 4 << 30
DEFAULT_MAX_CACHE_ENTRIES = 4
DEFAULT_PREFILL_STEP = 2048
DEFAULT_TEMPERATURE = 1.0  # the Anthropic API's default
LOAD_STEP_BYTES = 256 << 20
"""Weights are read in steps of about this much, so that loading can say how far it got."""
THREAD_SAFE_MLX = (0, 31, 2)  # the first MLX whose evaluation may run on several threads at once


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def _turns_lock() -> threading.Lock | contextlib.nullcontext:
    """A lock shared by every model's thread when this MLX cannot evaluate on two at once."""
    import importlib.metadata

    try:
        safe = _version(importlib.metadata.version("mlx")) >= THREAD_SAFE_MLX
    except (importlib.metadata.PackageNotFoundError, ValueError):
        safe = False
    return contextlib.nullcontext() if safe else threading.Lock()


MLX_TURNS = _turns_lock()
"""Held around each load and each generation: a no-op where MLX is thread-safe."""


@dataclass(frozen=True)
class MemoryReading:
    """MLX's own counters, for the whole process: bytes in arrays, the peak since the last reset, the buffer cache."""

    active: int
    peak: int
    cache: int


def mlx_memory() -> MemoryReading:
    import mlx.core as mx

    return MemoryReading(mx.get_active_memory(), mx.get_peak_memory(), mx.get_cache_memory())


class _Cancelled(Exception):
    pass


@dataclass
class _Job:
    messages: ChatMessages | Chat
    params: GenerationParams
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)

    def emit(self, item: GenerationEvent | BackendError) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)
        except RuntimeError:  # the consumer's loop is closed: nobody is listening
            self.cancel.set()


def load_chat_tokenizer(path: Path, eos_token_ids=None) -> tuple[Any, ChatTemplate | None]:
    """mlx-lm's tokenizer for a model directory and its chat template (None without one).

    ``trimkit inspect --model`` renders with this too, so it shows the prompt the server sends.
    """
    from mlx_lm.utils import load_tokenizer

    tokenizer = load_tokenizer(path, eos_token_ids=eos_token_ids)
    if not tokenizer.has_chat_template:
        return tokenizer, None

    def render(messages: list[dict], **options: Any) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, **options)

    return tokenizer, ChatTemplate(render)


class MLXBackend(Backend):
    """An mlx-lm model served from one generation thread, with a KV prefix cache.

    The tokenizer loads in the constructor (so ``count_tokens`` works at once and a
    missing model fails here); the weights load on the generation thread, and
    ``status()`` says when they are ready. ``wait_ready()`` blocks until then. With
    ``load=False`` the weights wait for ``load()``.
    """

    name = "mlx"

    def __init__(
        self,
        model: str,
        *,
        max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES,
        max_cache_entries: int = DEFAULT_MAX_CACHE_ENTRIES,
        memory_limit: int | None = None,
        cache_limit: int | None = None,
        prefill_step_size: int = DEFAULT_PREFILL_STEP,
        allow_download: bool = False,
        logits_processors: Callable[[list[int]], list] | None = None,
        grammar_cache_entries: int = DEFAULT_CACHE_ENTRIES,
        name: str | None = None,
        load: bool = True,
    ):
        """``logits_processors``, if given, is called once per generation with the prompt's
        token ids and returns mlx-lm logits processors for that generation (tests use it to
        force a scripted reply, which then goes unconstrained). Otherwise a request's
        constraint is enforced by its grammar's processor (``grammar_cache_entries``
        compiled grammars are kept). ``name`` is the model's name in the profile (by
        default its directory's name, or the Hugging Face id)."""
        from mlx_lm.utils import load_config

        self.model_id = model
        self.label = name or model_label(model)
        self.path = resolve_model_path(model, allow_download=allow_download)
        config = load_config(self.path)
        self.tokenizer, self.template = load_chat_tokenizer(self.path, config.get("eos_token_id"))
        name = name or (self.path.name if Path(model).expanduser().is_dir() else model)
        self.profile = ModelProfile.from_model_dir(self.path, name=name)
        if self.profile.tokenizer is None:
            self.profile.tokenizer = getattr(self.tokenizer, "backend_tokenizer", None)
        self.prompt_cache = PromptCache(max_cache_bytes, max_cache_entries)
        self._vocab_size = int(config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size") or 0) \
            or len(self.tokenizer.get_vocab())
        self.prefill_step_size = prefill_step_size
        self.grammars = GrammarEngine(self.tokenizer, self._vocab_size, cache_entries=grammar_cache_entries)
        self.prefill_meter = PrefillMeter(self.profile)
        self.logits_processors = logits_processors
        self.load_seconds: float | None = None
        self.load_progress: tuple[int, int] | None = None
        """(bytes of weights read, bytes in all) while loading."""
        self.prefill_report_seconds = PREFILL_REPORT_SECONDS
        self.model: Any = None
        self.weights_bytes = 0

        self._memory_limit = memory_limit
        self._cache_limit = cache_limit
        self._load_error: str | None = None
        self._loaded = threading.Event()
        self._closed = False
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._pending = 0  # jobs submitted and not yet done
        self._pending_changed = threading.Condition()
        self._tokenizer_lock = threading.Lock()
        self._swap_lock = threading.Lock()  # a load waits for an unload under way to free its weights
        self._prompt_tokenizer = (
            PromptTokenizer(lambda text: self.tokenizer.encode(text, add_special_tokens=False), self._split_tokens())
            if self.template is not None else None
        )
        self._running: _Job | None = None
        self.profile.message_tokens = self._message_tokens()
        self._thread: threading.Thread | None = None
        if load:
            self.load()

    # ------------------------------------------------------------------ public API

    def status(self) -> BackendStatus:
        if (refusal := self._refusal()) is not None:
            return BackendStatus(Readiness.FAILED, detail=str(refusal))
        if self._thread is None:
            return BackendStatus(Readiness.UNLOADED, detail=f"{self.label} is not loaded")
        if not self._loaded.is_set():
            return BackendStatus(Readiness.LOADING, detail=f"loading {self.label}", progress=self.load_progress)
        return BackendStatus(
            Readiness.READY,
            detail=f"{self.label} loaded in {self.load_seconds:.2f} s",
            extra={
                "model": self.model_id,
                "path": str(self.path),
                "context_window": self.profile.context_window,
                "prefill_tps": round(self.profile.prefill_tps, 1),
                "prompt_cache_entries": len(self.prompt_cache),
                "prompt_cache_bytes": self.prompt_cache.nbytes,
            },
        )

    @property
    def last_prefill_tps(self) -> float | None:
        """Prefill tokens/s of the latest request (``profile.prefill_tps`` is the smoothed figure)."""
        return self.prefill_meter.last_tps

    def wait_ready(self, timeout: float | None = None) -> "MLXBackend":
        """Block until the weights are loaded; raise ``BackendError`` if loading failed."""
        if self._thread is None and self._refusal() is None:
            raise BackendError(f"model {self.label} is not loaded")
        if not self._loaded.wait(timeout):
            raise BackendError(f"model {self.label} is still loading")
        if (refusal := self._refusal()) is not None:
            raise refusal
        return self

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no request is running or queued; False on timeout."""
        with self._pending_changed:
            return self._pending_changed.wait_for(lambda: self._pending == 0, timeout)

    @property
    def renders_tools(self) -> bool:
        """The chat template writes tool definitions and tool turns itself (the model's own convention)."""
        return self.template is not None and self.template.traits.renders_tools

    @property
    def chat_template(self) -> str | None:
        """The template's source, for recognising the model's tool-call format."""
        template = getattr(self.tokenizer, "chat_template", None)
        return template if isinstance(template, str) else None

    @functools.cached_property
    def vocab(self) -> dict[str, int]:
        return self.tokenizer.get_vocab()

    @property
    def special_tokens(self) -> frozenset[str]:
        """Tokens the tokenizer marks special: never text for a client."""
        added = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        special = {token.content for token in added.values() if getattr(token, "special", False)}
        return frozenset(special | set(self.tokenizer.all_special_tokens))

    def prompt_text(self, messages: ChatMessages | Chat) -> str:
        """The prompt exactly as the model reads it.

        Rendered with the model's chat template and a generation prompt; when the
        last message is the assistant's, the model continues it instead.
        """
        chat = messages if isinstance(messages, Chat) else Chat(messages)
        with self._tokenizer_lock:
            if self.template is not None:
                return self.template.text(chat)
            continue_last = bool(chat) and chat[-1]["role"] == "assistant" and bool(chat[-1]["content"].strip())
            if chat and chat[-1]["role"] == "assistant" and not continue_last:
                chat = chat.with_messages(chat[:-1])
            text = "".join(f"{m['role']}: {m['content']}\n" for m in chat)
            return text + ("" if continue_last else "assistant: ")

    def prompt_tokens(self, messages: ChatMessages | Chat) -> list[int]:
        """The token ids the model sees for ``messages`` (see :meth:`prompt_text`).

        Counting, the cache's answer and generation all take them from here, and only
        pieces of the prompt not seen before are tokenized (:mod:`.prompt_tokens`).
        """
        text = self.prompt_text(messages)
        with self._tokenizer_lock:
            if self._prompt_tokenizer is not None:
                return self._prompt_tokenizer(text)
            return self.tokenizer.encode(text, add_special_tokens=True)

    def _split_tokens(self) -> list[str]:
        """Special tokens a prompt may be cut at: those that keep the spaces beside them."""
        added = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        return [token.content for token in added.values()
                if getattr(token, "special", False) and not getattr(token, "lstrip", False)
                and not getattr(token, "rstrip", False)]

    def opens_thinking(self, messages: ChatMessages | Chat) -> bool:
        """Whether the generation prompt leaves a reasoning section open (``<think>`` with no ``</think>``).

        As mlx-lm's server decides it, from the tokenizer's reasoning markers, but only in
        what the generation prompt adds, so a ``<think>`` quoted in a message counts for nothing.
        """
        if self.template is None or not self.tokenizer.has_thinking:
            return False
        chat = messages if isinstance(messages, Chat) else Chat(messages)
        with self._tokenizer_lock:
            tail = self.template.generation_prompt(chat)
        start, end = self.tokenizer.think_start, self.tokenizer.think_end
        return start in tail and tail.rfind(start) > tail.rfind(end)

    def count_tokens(self, messages: ChatMessages | Chat) -> int:
        return len(self.prompt_tokens(messages))

    def _message_tokens(self) -> int:
        """Tokens the chat template adds around each message, measured: eight more one-word
        turns, less their words, divided by eight (rounded up, so the budget errs long)."""
        one = [{"role": "user", "content": "x"}]
        nine = one + [{"role": "assistant", "content": "x"}, {"role": "user", "content": "x"}] * 4
        try:
            added = len(self.prompt_tokens(nine)) - len(self.prompt_tokens(one))
        except Exception:  # a template that will not render these: keep the estimate
            return self.profile.message_tokens
        words = 8 * self.profile.count_tokens("x")
        return max(1, -(-(added - words) // 8))

    def cached_prefix_tokens(self, messages: ChatMessages | Chat) -> int:
        """How many leading tokens of this prompt the prefix cache already holds; changes nothing."""
        return self.prompt_cache.held_prefix(self.prompt_tokens(messages))

    async def generate(self, messages: ChatMessages | Chat, params: GenerationParams) -> AsyncIterator[GenerationEvent]:
        if params.max_tokens < 1:
            raise BackendError("max_tokens must be at least 1")
        job = _Job(messages, params, asyncio.get_running_loop())
        self._submit(job)
        try:
            while True:
                item = await job.events.get()
                if isinstance(item, BackendError):
                    raise item
                yield item
                if isinstance(item, Finished):
                    return
        finally:
            job.cancel.set()

    def load(self) -> None:
        """Start loading the weights on a new generation thread (nothing when loaded or loading;
        after an unload still under way, once it has freed the old weights)."""
        with self._swap_lock, self._pending_changed:
            if self._closed or self._thread is not None:
                return
            self._load_error = None
            self._loaded.clear()
            self.load_progress = None
            self._jobs = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, name="trimkit-mlx-generation", daemon=True)
            self._thread.start()

    def unload(self) -> None:
        """End the generation thread and free the weights and the prefix cache (MLX's buffers too).

        The tokenizer, template and grammars stay: prompts are still counted and
        rendered, and ``load()`` brings the weights back. New requests are refused at
        once (a 529); those already on the thread end first. A server of several models
        unloads a model only when no request holds it, so those are requests whose
        client went away, which stop within a step or a prefill chunk, or one that
        has sent its answer and is tidying up: unloading waits for them instead of
        refusing, which would fail the load that needed the room.
        """
        with self._swap_lock:
            with self._pending_changed:
                thread = self._thread
                if thread is None:
                    return
                self._jobs.put(None)
                self._thread = None
            thread.join()
            self._release_memory()

    def memory_bytes(self) -> int:
        return self.weights_bytes if self.model is not None else 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if (running := self._running) is not None:
            running.cancel.set()
        if (thread := self._thread) is not None:
            self._jobs.put(None)
            thread.join(timeout=30)
        self._release_memory()

    def _release_memory(self) -> None:
        import mlx.core as mx

        self.prompt_cache.clear()
        self.model = None
        self.weights_bytes = 0
        self._loaded.clear()
        mx.clear_cache()  # the freed buffers go back to the system, not to MLX's cache

    # ------------------------------------------------------------------ generation thread

    def _refusal(self) -> BackendError | None:
        """Why no request can be served now, if that is so."""
        if self._load_error is not None:
            return BackendError(f"model {self.label} failed to load: {without_paths(self._load_error, self.model_id, self.path)}")
        if self._closed:
            return BackendError("the model backend is closed")
        return None

    def _submit(self, job: _Job) -> None:
        if (refusal := self._refusal()) is not None:
            raise refusal
        with self._pending_changed:
            if self._thread is None:
                raise BackendError(f"model {self.label} is not loaded", status=529, error_type="overloaded_error")
            self._pending += 1
            self._jobs.put(job)

    def _run(self) -> None:
        import mlx.core as mx

        try:
            self._serve_queue()
        finally:
            # MLX keeps per-thread stream state; left behind by a finished thread
            # it aborts the process at exit ("terminate called without an active
            # exception"), so release it before this thread ends.
            mx.synchronize()
            if hasattr(mx, "clear_streams"):  # mlx >= 0.31
                mx.clear_streams()

    def _serve_queue(self) -> None:
        jobs = self._jobs
        try:
            with MLX_TURNS:
                self._load()
        except Exception as exc:
            self._load_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._loaded.set()
        if self._load_error is None:
            self.grammars.prepare()  # llguidance's tokenizer (about a second at 150 K tokens), before the first request needs it
        while (job := jobs.get()) is not None:
            try:
                if (refusal := self._refusal()) is not None:
                    job.emit(refusal)
                elif not job.cancel.is_set():
                    self._running = job
                    with MLX_TURNS:
                        self._serve(job)
            except Exception as exc:
                job.emit(BackendError(f"generation failed: {type(exc).__name__}: {exc}"))
            finally:
                self._running = None
                with self._pending_changed:
                    self._pending -= 1
                    self._pending_changed.notify_all()

    def _load(self) -> None:
        import mlx.core as mx
        from mlx.utils import tree_flatten
        from mlx_lm.utils import load_model

        if self._memory_limit is not None:
            mx.set_memory_limit(self._memory_limit)
        if self._cache_limit is not None:
            mx.set_cache_limit(self._cache_limit)
        start = time.perf_counter()
        model, _ = load_model(self.path, lazy=True)
        arrays = [array for _, array in tree_flatten(model.parameters())]
        total = sum(array.nbytes for array in arrays)
        done, step, step_bytes = 0, [], 0
        self.load_progress = (0, total)
        for i, array in enumerate(arrays):  # what load_model(lazy=False) evaluates at once, in counted steps
            step.append(array)
            step_bytes += array.nbytes
            if step_bytes >= LOAD_STEP_BYTES or i == len(arrays) - 1:
                mx.eval(step)
                done += step_bytes
                self.load_progress = (done, total)
                step, step_bytes = [], 0
        self.model = model
        self.weights_bytes = total
        self.load_seconds = time.perf_counter() - start

    def _serve(self, job: _Job) -> None:
        import mlx.core as mx
        from mlx_lm.generate import stream_generate
        from mlx_lm.models.cache import make_prompt_cache
        from mlx_lm.sample_utils import make_sampler

        prompt = self.prompt_tokens(job.messages)
        cache, reused = self.prompt_cache.fetch(prompt)
        if cache is None:
            cache = make_prompt_cache(self.model)
        held = reused  # prompt tokens the cache holds so far
        progress = PrefillProgress(len(prompt) - reused, reused, self.prefill_report_seconds)

        def on_prefill_progress(done: int, total: int) -> None:
            nonlocal held
            if done < total:
                held = reused + done
                if job.cancel.is_set():
                    raise _Cancelled
                progress.step(done, total)

        params = job.params
        sampler = make_sampler(
            DEFAULT_TEMPERATURE if params.temperature is None else params.temperature,
            top_p=params.top_p or 0.0,
            top_k=params.top_k if params.top_k and params.top_k < self._vocab_size else 0,
        )
        generated: list[int] = []
        response = None
        if self.logits_processors:  # a scripted reply is decided already: a grammar on top could only refuse it
            processors = list(self.logits_processors(prompt))
        else:
            processors = self._constraint_processors(params)
        steps = stream_generate(
            self.model,
            self.tokenizer,
            mx.array(prompt[reused:]),
            max_tokens=params.max_tokens,
            sampler=sampler,
            prompt_cache=cache,
            prefill_step_size=self.prefill_step_size,
            prompt_progress_callback=on_prefill_progress,
            logits_processors=processors or None,
        )
        try:
            with contextlib.closing(steps):
                for response in steps:
                    if not generated:
                        progress.finished(len(prompt) - reused)
                    held = len(prompt)
                    generated.append(response.token)
                    if response.text:
                        job.emit(TextDelta(response.text))
                    if response.finish_reason is not None or job.cancel.is_set():
                        break
        except _Cancelled:
            pass
        self._keep_cache(prompt[:held] + generated, cache)
        if response is None or response.finish_reason is None:
            # Cancelled. The consumer has usually gone; when close() cancelled it, it is still waiting.
            job.emit(self._refusal() or BackendError("generation cancelled"))
            return
        self.prefill_meter.record(len(prompt) - reused, response.prompt_tps)
        job.emit(
            Finished(
                finish="stop" if response.finish_reason == "stop" else "length",
                input_tokens=len(prompt) - reused,
                output_tokens=len(generated),
                cached_tokens=reused,
                prefill_tps=response.prompt_tps,
            )
        )

    def _constraint_processors(self, params: GenerationParams) -> list[Any]:
        """The logits processor enforcing ``params.constraint``; none when there is none or it cannot be compiled."""
        constraint = params.constraint
        if constraint is None:
            return []
        what = ", ".join(constraint.kinds)
        try:
            special = self.grammars.special_ids(markers(constraint.dialect))
            grammar = lark_grammar(constraint, special)
        except UnsupportedSchema as exc:
            constrain_log.warning("constrained decoding off for this request (%s): %s", what, exc)
            return []
        if grammar is None:
            return []
        processor = self.grammars.processor(grammar, what)
        return [processor] if processor is not None else []

    def _keep_cache(self, tokens: list[int], cache: list[Any]) -> None:
        """Store ``cache`` under the tokens it holds, if they can be told exactly."""
        offset = getattr(cache[0], "offset", None) if cache else None
        if offset is not None and offset != len(tokens):
            return
        self.prompt_cache.store(tokens, cache)
