"""The contract between the server and whatever generates text.

:class:`Backend` declares everything the server asks of a backend, with the
default for what a backend may not support, so the server never probes a
backend for a method. Every backend subclasses it: the in-process MLX model,
the replay backend, the upstream engines (OpenAI- and Anthropic-compatible) and
the stand-in for a backend that failed to build.

The server renders a trimmed request into chat messages (a
:class:`trimkit.render.Chat`): role/content pairs with tools taught as trimkit's
XML (:func:`trimkit.render.chat_messages`), or, for a backend whose chat template
renders tools (``renders_tools``), OpenAI-style tool calls and results with the
tool definitions alongside (:func:`trimkit.render.native_chat`). A backend turns
them into its model's prompt, counts its tokens and generates from it.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Collection, Literal, Union

from ..constrain import Constraint
from ..errors import BackendError
from ..profile import ModelProfile

__all__ = [
    "Backend",
    "BackendError",
    "BackendStatus",
    "ChatMessages",
    "Finished",
    "GenerationEvent",
    "GenerationParams",
    "Readiness",
    "TextDelta",
]

ChatMessages = list[dict[str, Any]]  # a trimkit.render.Chat, or a plain list of role/content dicts


@dataclass
class GenerationParams:
    """How to sample, and ``constraint``: the shape the output must have, for backends that can enforce it."""

    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    constraint: Constraint | None = None


@dataclass
class TextDelta:
    text: str


@dataclass
class Finished:
    """The last item of every generation.

    ``finish`` is ``"stop"`` for end-of-sequence and ``"length"`` when
    ``max_tokens`` ran out. ``input_tokens`` are the prompt tokens actually
    prefilled; ``cached_tokens`` those reused from the prefix cache.
    """

    finish: Literal["stop", "length"]
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    prefill_tps: float | None = None


GenerationEvent = Union[TextDelta, Finished]


class Readiness(enum.Enum):
    """Whether a backend can serve; the values are what ``/health`` says in ``status``."""

    READY = "ok"
    LOADING = "loading"  # not yet: the model is loading, or an upstream is not answering for now
    FAILED = "error"  # never, without a change of configuration: the model could not be loaded
    UNLOADED = "unloaded"  # its weights are not in memory; load() brings them (a server of several models)


@dataclass
class BackendStatus:
    """A backend's readiness, with ``detail`` saying why in words for people.

    ``answer`` is the HTTP status a request gets while the backend is not ready, when
    it is not the usual 500 (failed) or 529 (loading): 502 when an upstream engine
    refuses this server's key.
    """

    state: Readiness
    detail: str = ""
    extra: dict = field(default_factory=dict)
    answer: int | None = None
    progress: tuple[int, int] | None = None
    """While loading, (bytes of weights loaded, bytes in all), for progress bars; None when not told."""

    @property
    def ready(self) -> bool:
        return self.state is Readiness.READY

    @property
    def http_status(self) -> int:
        """What a request is answered while the backend is not ready."""
        return self.answer or (500 if self.failed else 529)

    @property
    def failed(self) -> bool:
        return self.state is Readiness.FAILED


class Backend(abc.ABC):
    """A text generator, and everything the server asks of one.

    ``name`` says which kind it is (``/health`` shows it); ``profile`` describes
    the model (name, tier, context window, tokenizer, measured prefill speed) for
    the pipeline's budget. ``max_concurrency`` is how many generations the server
    lets run at once: one for a model in this process, more for an engine that
    batches.
    """

    name: str = "backend"
    profile: ModelProfile
    max_concurrency: int = 1
    renders_tools: bool = False
    """The model's chat template writes tool definitions and tool turns itself, so the
    server sends tools in the model's own convention (``convention = "auto"``)."""
    special_tokens: frozenset[str] = frozenset()
    """The tokenizer's special tokens, which never reach a client as text."""
    chat_template: str | None = None
    """The chat template's source, from which the server recognises how the model writes
    tool calls (:func:`trimkit.toolcalls.dialects.dialect_for`); None when unknown."""
    vocab: Collection[str] = ()
    """The tokenizer's tokens, for the same (some formats show in the vocabulary only)."""
    load_seconds: float | None = None
    """How long the model took to load (``/metrics`` shows it); None until loaded, or with nothing to load."""

    @abc.abstractmethod
    def status(self) -> BackendStatus:
        """Whether requests can be served now; cheap enough to call on every request."""

    @abc.abstractmethod
    def generate(self, messages: ChatMessages, params: GenerationParams) -> AsyncIterator[GenerationEvent]:
        """Stream the model's answer to ``messages``: ``TextDelta`` items, then one ``Finished``.

        An async generator; closing it early (``aclose()``) must stop generation
        promptly and free the model. Failures raise :class:`BackendError`.
        """

    def count_tokens(self, messages: ChatMessages) -> int:
        """Tokens the rendered prompt for ``messages`` would prefill.

        By default an estimate from the profile's tokenizer (or its characters per
        token) plus a few tokens of role markers per message; a backend that
        renders the prompt itself counts exactly.
        """
        return sum(self.profile.count_tokens(m["content"]) + self.profile.message_tokens for m in messages)

    def prompt_tokens(self, messages: ChatMessages) -> list[int] | None:
        """The token ids the model sees for ``messages``, rendered with its chat template.

        None where the prompt is rendered out of sight (an upstream engine renders
        its own).
        """
        return None

    def cached_prefix_tokens(self, messages: ChatMessages) -> int:
        """How many leading tokens of this prompt the backend's prefix cache holds now.

        Changes nothing. 0 where the backend keeps no cache it can look into, so
        the budget counts every token as one to prefill.
        """
        return 0

    def opens_thinking(self, messages: ChatMessages) -> bool | None:
        """Whether the rendered prompt leaves the model inside a thinking block.

        Some chat templates end the generation prompt with ``<think>``, so the
        model's text begins mid-thought and the response reader must start in
        thinking. None means unknown, read as no.
        """
        return None

    def load(self) -> None:
        """Start loading the weights if they are not in memory; ``status()`` says when they are.

        A backend that holds its model from the start (or has none) does nothing.
        """

    def unload(self) -> None:
        """Free the weights and caches, keeping what counting and rendering need (the tokenizer).

        Called only when nothing is generating or queued; ``load()`` brings the weights back.
        A backend whose model is not in this process does nothing.
        """

    def memory_bytes(self) -> int:
        """Bytes the loaded weights hold in this process (0 when none are, or the model is elsewhere)."""
        return 0

    def close(self) -> None:
        """Stop serving and free the model; called once when the server shuts down."""
