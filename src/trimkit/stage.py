"""The objects a stage works with: its declaration, the state it changes, the report.

``ConfigError`` and ``PromptTooLong``, the errors a stage raises, are defined in
:mod:`trimkit.errors` and importable from here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import msgspec

from .errors import ConfigError, PromptTooLong
from .profile import ModelProfile
from .wire import MessagesRequest, to_builtins

__all__ = [
    "BudgetResult", "Carry", "ConfigError", "PromptTooLong", "Size", "Stage", "StageReport", "TrimReport", "TrimResult", "TrimState",
]


class NoOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The options of a stage that takes none."""


@dataclass
class Stage:
    """A named step of the pipeline.

    ``run(state)`` changes ``state.request`` (replacing or editing it) and may
    record what it removed with ``state.removed(category, chars)``. Stages must
    treat the incoming request as immutable: build new Structs
    (``msgspec.structs.replace``) and new lists rather than editing the ones they
    were given.

    ``options`` declares the stage's options, normally as a frozen
    :class:`msgspec.Struct` type: its fields are the option names, their types
    and defaults. The pipeline converts and checks the configuration into an
    instance for every tier when it is built (see :mod:`trimkit.options`), and the
    stage reads ``state.options.NAME``. ``tier_options`` maps a tier to its
    defaults, an instance of that Struct or a mapping of the fields that differ.
    A plain mapping in ``options`` (the defaults) is accepted too, for stages
    written before typed options: its keys are checked, its values are not, and
    the stage reads ``state.options["name"]`` from a fresh dict.
    """

    name: str
    run: Callable[["TrimState"], None]
    options: type[msgspec.Struct] | Mapping[str, Any] = NoOptions
    tier_options: Mapping[str, msgspec.Struct | Mapping[str, Any]] = field(default_factory=dict)
    order: int = 500


class BudgetResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the budget stage decided for a request; the server generates with it.

    ``prompt_tokens`` is the fitted prompt's size: the backend's own count of the
    rendered prompt when the profile can ask for one (``ModelProfile.count_prompt``),
    else the pipeline's measure. ``max_tokens`` is the output the request may
    generate within the window. ``budget_tokens`` is the limit the prompt was fitted
    to; ``cached_tokens`` the leading prompt tokens counted as already in the
    backend's cache.
    """

    prompt_tokens: int
    max_tokens: int
    budget_tokens: int
    dropped_turns: int = 0
    cut_results: int = 0
    cached_tokens: int = 0


@dataclass
class Carry:
    """Facts stages leave for later stages and for the caller, in typed fields.

    ``recognized_agent``: the agent whose system prompt the ``system_prompt`` stage
    recognised (``trimkit inspect`` shows it). ``tool_names``: the tools the model
    is shown (``tools`` stage; ``trimkit inspect`` and captures list them).
    ``budget``: what the ``budget`` stage decided (the server reads it), None when
    that stage did not run.
    """

    recognized_agent: str | None = None
    tool_names: list[str] = field(default_factory=list)
    budget: BudgetResult | None = None


@dataclass
class TrimState:
    request: MessagesRequest
    profile: ModelProfile
    options: Any = None
    """The stage's options for this tier: an instance of its options Struct (or a dict)."""
    carry: Carry = field(default_factory=Carry)
    cached_tokens: int = 0
    measure: Any = None  # trimkit.measure.Measure: memoized sizes for this trim
    _removed: dict[str, int] = field(default_factory=dict)

    def removed(self, category: str, chars: int) -> None:
        """Record that ``chars`` characters of ``category`` were taken out."""
        if chars:
            self._removed[category] = self._removed.get(category, 0) + chars

    @property
    def tier(self) -> str:
        return self.profile.tier


class StageReport(msgspec.Struct, kw_only=True):
    name: str
    chars_before: int
    chars_after: int
    tokens_before: int
    tokens_after: int
    ms: float
    removed: dict[str, int] = {}


class Size(msgspec.Struct):
    chars: int
    tokens: int


class TrimReport(msgspec.Struct, kw_only=True):
    before: Size
    after: Size
    stages: list[StageReport]
    tier: str
    exact_tokens: bool

    @property
    def ms(self) -> float:
        return sum(s.ms for s in self.stages)

    def summary(self) -> str:
        """One line for a log or a terminal: sizes before and after, time, tier.

        ``87,015 → 3,977 chars (21.9× smaller), 24,863 → 1,138 tokens (estimated), 22.68 ms, tier small``
        """
        ratio = self.before.chars / max(self.after.chars, 1)
        count = "tokens" if self.exact_tokens else "tokens (estimated)"
        return (
            f"{self.before.chars:,} → {self.after.chars:,} chars ({ratio:.1f}× smaller), "
            f"{self.before.tokens:,} → {self.after.tokens:,} {count}, {self.ms:.2f} ms, tier {self.tier}"
        )

    @property
    def removed(self) -> dict[str, int]:
        """Characters removed by category, over every stage."""
        total: dict[str, int] = {}
        for stage in self.stages:
            for category, chars in stage.removed.items():
                total[category] = total.get(category, 0) + chars
        return total


@dataclass
class TrimResult:
    request: MessagesRequest
    report: TrimReport
    original: MessagesRequest
    profile: ModelProfile
    carry: Carry

    def as_dict(self) -> dict[str, Any]:
        """The ``trimkit inspect --json`` shape."""
        return {
            "before": msgspec.to_builtins(self.report.before),
            "after": msgspec.to_builtins(self.report.after),
            "stages": [msgspec.to_builtins(s) for s in self.report.stages],
            "tier": self.report.tier,
            "exact_tokens": self.report.exact_tokens,
            "request": to_builtins(self.request),
        }
