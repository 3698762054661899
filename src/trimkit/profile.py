"""What the pipeline needs to know about the model: size tier, context window, prefill speed.

Token counts are exact when a ``tokenizers.Tokenizer`` is attached. Without one they
are an estimate of one token per 3.5 characters, rounded up: a little pessimistic for
English prose (about 4 characters a token) and close for code and JSON, so budgets
built on it err on the side of fitting.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

if TYPE_CHECKING:
    from .wire import MessagesRequest

from .errors import ModelError

Tier = Literal["small", "medium", "large"]
TIERS: tuple[Tier, ...] = ("small", "medium", "large")

CHARS_PER_TOKEN_ESTIMATE = 3.5
MESSAGE_TOKENS = 3
"""Tokens a typical chat template adds around a message, when the template is not at hand to measure."""
DEFAULT_CONTEXT_WINDOW = 32_768
SMALL_MAX_PARAMS = 8e9
MEDIUM_MAX_PARAMS = 32e9
# Prefill on a recent Apple-silicon laptop runs at very roughly this many
# tokens/s for a 1 B-active-parameter 4-bit model, and scales about inversely
# with active parameters. The server replaces the estimate with measurements.
PREFILL_TPS_PER_BILLION_ACTIVE = 5_000.0


def tier_for(params: float | None) -> Tier:
    """The size tier for a total parameter count (medium when unknown)."""
    if params is None:
        return "medium"
    if params <= SMALL_MAX_PARAMS:
        return "small"
    if params <= MEDIUM_MAX_PARAMS:
        return "medium"
    return "large"


def estimate_prefill_tps(active_params: float | None) -> float:
    billions = (active_params or 8e9) / 1e9
    return PREFILL_TPS_PER_BILLION_ACTIVE / max(billions, 0.1)


@dataclass
class ModelProfile:
    """``native_tools``: the model's chat template renders tools and tool turns itself, so
    the tools stage hands it the compacted tools instead of teaching trimkit's XML."""

    name: str = "unknown"
    total_params: float | None = None
    active_params: float | None = None
    context_window: int = DEFAULT_CONTEXT_WINDOW
    tier: Tier = "medium"
    prefill_tps: float = field(default_factory=lambda: estimate_prefill_tps(None))
    tokenizer: Any = None  # tokenizers.Tokenizer, kept untyped so importing this needs no tokenizers
    native_tools: bool = False
    message_tokens: int = MESSAGE_TOKENS
    """Tokens the chat template adds around each message (role markers, separators).

    An estimate by default; a backend that renders with the model's own template
    measures it (the MLX backend does, at load), so the budget's count of a
    conversation of thousands of short turns is the template's, not a few per turn."""
    token_counts: "TokenCountCache" = field(default_factory=lambda: TokenCountCache(), repr=False, compare=False)
    count_prompt: "Callable[[MessagesRequest], int] | None" = field(default=None, repr=False, compare=False)
    """Exact tokens of a trimmed request's rendered prompt, as the backend will prefill it.

    Set by a server (through ``trimkit_prepare_profile``); the budget stage counts
    its final prompt with it, so ``max_tokens`` fits the real window."""
    cached_prefix: "Callable[[MessagesRequest], int] | None" = field(default=None, repr=False, compare=False)
    """How many leading tokens of a trimmed request's rendered prompt the backend already
    holds in its KV cache. Set by a server; the budget stage asks only when the prefill
    target may bind, since cached tokens cost no prefill time."""
    recent_cuts: "RecentCuts | None" = field(default=None, repr=False, compare=False)
    """Where the budget stage cut recent conversations; set by a server (see :class:`RecentCuts`)."""
    exact_report: bool = True
    """Count the pipeline's report with the tokenizer. A server turns this off: tokenizing
    every stage's version of an 88 KB request costs more than the figures are worth there,
    so the report estimates from characters, while the budget stage still counts what it
    decides on exactly and the backend counts the prompt it renders."""

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        if self.tokenizer is None:
            return self.estimate_tokens(text)
        if len(text) < TokenCountCache.MIN_CHARS:
            return len(self.tokenizer.encode(text, add_special_tokens=False).ids)
        cached = self.token_counts.get(text)
        if cached is None:
            cached = len(self.tokenizer.encode(text, add_special_tokens=False).ids)
            self.token_counts.put(text, cached)
        return cached

    @staticmethod
    def estimate_tokens(text: str) -> int:
        """Tokens estimated from characters alone (see the module docstring)."""
        return math.ceil(len(text) / CHARS_PER_TOKEN_ESTIMATE)

    @property
    def exact_counts(self) -> bool:
        return self.tokenizer is not None

    def with_tier(self, tier: Tier) -> "ModelProfile":
        return replace(self, tier=tier)

    # ------------------------------------------------------------------ builders

    @classmethod
    def for_tier(cls, tier: Tier, **overrides: Any) -> "ModelProfile":
        """A typical profile of a tier, for inspecting and testing without a model."""
        typical = {"small": 7e9, "medium": 30e9, "large": 120e9}[tier]
        active = {"small": 7e9, "medium": 3e9, "large": 12e9}[tier]
        base = cls(
            name=f"typical-{tier}",
            total_params=typical,
            active_params=active,
            context_window={"small": 32_768, "medium": 65_536, "large": 131_072}[tier],
            tier=tier,
            prefill_tps=estimate_prefill_tps(active),
        )
        return replace(base, **overrides)

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> "ModelProfile":
        """Guess sizes from a model name such as ``Qwen3-Coder-30B-A3B-Instruct-4bit``."""
        base = name.rstrip("/").rsplit("/", 1)[-1]
        total = active = None
        sizes = re.findall(r"(?<![A-Za-z0-9.])([Aa])?(\d+(?:\.\d+)?)([BbMm])(?![A-Za-z])", base.replace("_", "-"))
        for is_active, number, unit in sizes:
            value = float(number) * (1e9 if unit in "Bb" else 1e6)
            if is_active:
                active = value
            elif total is None:
                total = value
        m = re.search(r"(\d+)[xX](\d+(?:\.\d+)?)B", base)
        if total is None and m:
            total = int(m.group(1)) * float(m.group(2)) * 1e9
        profile = cls(
            name=name,
            total_params=total,
            active_params=active or total,
            tier=tier_for(total),
            prefill_tps=estimate_prefill_tps(active or total),
        )
        return replace(profile, **overrides)

    @classmethod
    def from_model_dir(cls, path: str | Path, **overrides: Any) -> "ModelProfile":
        """Read ``config.json`` (and ``tokenizer.json`` when present) from a model directory."""
        path = Path(path)
        try:
            text = (path / "config.json").read_text()
        except OSError as exc:
            raise ModelError(f"cannot read {path / 'config.json'}: {exc.strerror}") from None
        try:
            config = json.loads(text)
        except ValueError as exc:
            raise ModelError(f"{path / 'config.json'} is not JSON: {exc}") from None
        total, active = count_parameters(config)
        text_config = config.get("text_config") or config
        context = (
            text_config.get("max_position_embeddings")
            or config.get("max_position_embeddings")
            or text_config.get("max_seq_len")
            or DEFAULT_CONTEXT_WINDOW
        )
        tokenizer = None
        if (path / "tokenizer.json").exists():
            from tokenizers import Tokenizer

            try:
                tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
            except Exception as exc:  # tokenizers raises a bare Exception
                raise ModelError(f"{path / 'tokenizer.json'}: {exc}") from None
        profile = cls(
            name=path.name,
            total_params=total,
            active_params=active,
            context_window=int(context),
            tier=tier_for(total),
            prefill_tps=estimate_prefill_tps(active),
            tokenizer=tokenizer,
        )
        return replace(profile, **overrides)


class RecentlyUsed:
    """A map bounded by the summed ``weigh`` of its keys; the least recently used go first.

    An entry heavier than the whole bound is not kept; putting a key again replaces its value.
    """

    def __init__(self, limit: int, weigh: Callable[[Any], int] = lambda key: 1):
        from collections import OrderedDict

        self.limit = limit
        self.weigh = weigh
        self.size = 0
        self._entries: "OrderedDict[Any, Any]" = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        weight = self.weigh(key)
        if weight > self.limit:
            return
        if key in self._entries:
            self.size -= weight
        self._entries[key] = value
        self._entries.move_to_end(key)
        self.size += weight
        while self.size > self.limit:
            old, _ = self._entries.popitem(last=False)
            self.size -= self.weigh(old)


class TokenCountCache(RecentlyUsed):
    """Exact token counts of texts, kept across requests, bounded by the characters they hold.

    An agent resends the same system prompt, tools and earlier turns every turn;
    tokenizing 88 KB costs over 100 ms, looking it up well under one. A long session
    is mostly short messages (a line saying what the next call is for, a short
    result), which come back every turn too, so all but the shortest texts are kept.
    Copies of a profile (``dataclasses.replace``) share one cache.
    """

    MIN_CHARS = 64

    def __init__(self, max_chars: int = 16_000_000):
        super().__init__(max_chars, len)

    @property
    def chars(self) -> int:
        return self.size


class RecentCuts(RecentlyUsed):
    """How many turns the budget stage dropped from recent conversations, by the conversation's opening.

    The budget decides its cuts from the request alone, and a cut forced by the context
    window stays put without help. A cut made for the prefill-time target depends on
    what the backend has cached, which the request does not say: a server keeps one of
    these (``ModelProfile.recent_cuts``) so the budget can try last time's cut first, and
    keep it while the backend's cache still holds that prompt. A wrong or stale entry
    costs one look at the cache, never a wrong answer.
    """

    def __init__(self, max_entries: int = 256):
        super().__init__(max_entries)


def count_parameters(config: dict[str, Any]) -> tuple[float, float]:
    """Total and active parameter counts of a decoder-only transformer from its config.

    Counts embeddings, attention projections, MLP or experts (MoE: routed experts in
    the total, ``num_experts_per_tok`` of them plus shared experts in the active
    count) and norms. Exact for llama-style dense models; within a few percent for
    others, which is all a size tier needs.
    """
    c = config.get("text_config") or config
    hidden = int(c.get("hidden_size") or c.get("d_model") or 0)
    layers = int(c.get("num_hidden_layers") or c.get("n_layers") or 0)
    vocab = int(c.get("vocab_size") or 0)
    heads = int(c.get("num_attention_heads") or 1)
    kv_heads = int(c.get("num_key_value_heads") or heads)
    head_dim = int(c.get("head_dim") or (hidden // heads if heads else 0))
    intermediate = int(c.get("intermediate_size") or 4 * hidden)

    embed = vocab * hidden * (1 if c.get("tie_word_embeddings", config.get("tie_word_embeddings")) else 2)
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
    norms = 2 * hidden
    final_norm = hidden

    experts = int(
        c.get("num_experts") or c.get("num_local_experts") or c.get("n_routed_experts") or 0
    )
    if experts:
        expert_size = 3 * hidden * int(c.get("moe_intermediate_size") or intermediate)
        per_token = int(c.get("num_experts_per_tok") or c.get("top_k") or 1)
        shared_n = int(c.get("n_shared_experts") or 0)
        shared = shared_n * expert_size
        if c.get("shared_expert_intermediate_size"):
            shared += 3 * hidden * int(c["shared_expert_intermediate_size"])
        router = hidden * experts
        dense_layers = int(c.get("first_k_dense_replace") or 0)
        moe_layers = layers - dense_layers
        dense_mlp = 3 * hidden * intermediate
        total = embed + final_norm + layers * (attention + norms) + dense_layers * dense_mlp + moe_layers * (
            experts * expert_size + shared + router
        )
        active = embed + final_norm + layers * (attention + norms) + dense_layers * dense_mlp + moe_layers * (
            per_token * expert_size + shared + router
        )
        return float(total), float(active)
    total = embed + final_norm + layers * (attention + norms + 3 * hidden * intermediate)
    return float(total), float(total)
