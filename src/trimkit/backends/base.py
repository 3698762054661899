"""The contract between the server and whatever generates text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Literal, Protocol, Union

from ..profile import ModelProfile

ChatMessages = list[dict[str, str]]


@dataclass
class GenerationParams:
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None


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


class BackendError(Exception):
    """A generation failed; the message is safe to show a client.

    ``status`` and ``error_type`` are the Anthropic error to answer with: a failed
    generation is a 500 ``api_error`` unless the backend knows better (an upstream
    that is down is a 529 ``overloaded_error``; one that rejects the request, a 400).
    """

    def __init__(self, message: str, *, status: int = 500, error_type: str = "api_error"):
        super().__init__(message)
        self.status = status
        self.error_type = error_type


@dataclass
class BackendStatus:
    """``failed`` means the backend will never become ready (its model could not be loaded)."""

    ready: bool
    detail: str = ""
    failed: bool = False
    extra: dict = field(default_factory=dict)


class Backend(Protocol):
    """A text generator. ``generate`` is an async generator; closing it early
    (``aclose()``) must stop generation promptly and free the model."""

    name: str
    profile: ModelProfile

    def status(self) -> BackendStatus: ...

    def count_tokens(self, messages: ChatMessages) -> int:
        """Tokens the rendered prompt for ``messages`` would prefill."""
        ...

    def generate(self, messages: ChatMessages, params: GenerationParams) -> AsyncIterator[GenerationEvent]: ...

    def close(self) -> None: ...
