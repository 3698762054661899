"""Fit a request into the model's context window and, softly, a prefill-time target.

Sizes are tokens as :class:`trimkit.measure.Measure` counts them with the profile's
tokenizer (memoized by text, so a turn costs only its new messages); when the
profile can count the rendered prompt as the backend does (``count_prompt``, set by
a server), the whole conversation is counted that way too and the larger figure
used, and the final prompt is counted that way for ``max_tokens``.

In order:

1. Once the prompt outgrows the least limit a cut may be made to
   (:attr:`.options.Limits.shorten_above`), every ``tool_result`` over
   ``tool_result_max_tokens`` keeps its head and tail (:mod:`.tool_results`); that
   is a pure function of each result and the limit does not depend on the cache,
   so it happens once in a conversation and every later request agrees.
2. The window's cut (:func:`.cuts.window_cut`): the oldest whole turns go, a whole
   number of fixed steps of tokens, so the cut stays put from request to request
   and then moves in one big step.
3. The prefill target: when more than the target's worth of the prompt is not in
   the backend's cache, more turns may go, as if the window were smaller (never
   smaller than a floor).
   A server lets the budget ask what the backend holds (``cached_prefix``) for the
   window's cut and for the cut it made last time in this conversation
   (``recent_cuts``), so a cut made for the prefill target stays put while cached.
4. ``max_tokens``: what the window leaves after the prompt, up to what was asked.

A prompt whose smallest form exceeds the window less the least output accepted
raises :class:`~trimkit.stage.PromptTooLong`. The opening user message (usually the
task itself) goes only after every later droppable turn; the note saying what was
omitted follows it, so the system prompt and the opening stay a cached prefix
across cuts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import msgspec
from msgspec.structs import replace

from trimkit import BudgetResult, ModelProfile, PromptTooLong
from trimkit.measure import Measure
from trimkit.render import tool_names
from trimkit.wire import MessagesRequest

from .conversation import Conversation, omitted_note
from .cuts import Sizes, window_cut
from .options import BudgetOptions, Limits, limits_for
from .tool_results import shorten_results

NOTE_COUNT_ROOM = 999_999
"""The largest turn count the note is sized for, so its room is one constant."""


@dataclass
class Fitted:
    """What :func:`fit` made of a request."""

    request: MessagesRequest
    prompt_tokens: int
    limits: Limits
    budget_tokens: int
    """The limit the prompt was fitted to: the window's, or the prefill target's when that cut further."""
    max_tokens: int = 0
    dropped_turns: int = 0
    cut_results: int = 0
    result_chars_cut: int = 0
    turn_chars_dropped: int = 0
    cached_tokens: int = 0
    """The leading tokens counted as cached: as given, or as the profile's ``cached_prefix`` said."""

    def result(self) -> BudgetResult:
        """The decision the server reads (``state.carry.budget``): the fields named alike."""
        return BudgetResult(**{name: getattr(self, name) for name in BudgetResult.__struct_fields__})


@dataclass
class Plan:
    """One request, its tool results shortened if need be, sized unit by unit: the cuts it allows."""

    request: MessagesRequest
    conversation: Conversation
    unit_chars: list[int]
    sizes: Sizes
    exact_total: int | None
    """The backend's count of the uncut prompt, when the profile can ask for it."""
    cut_results: int = 0
    result_chars_cut: int = 0

    @classmethod
    def of(cls, request: MessagesRequest, tokens: int, profile: ModelProfile, options: BudgetOptions,
           limits: Limits, measure: Measure) -> "Plan":
        cut = chars = 0
        if tokens > limits.shorten_above and options.tool_result_max_tokens:
            request, cut, chars = shorten_results(
                request, options.tool_result_max_tokens, profile.count_tokens, options.keep_head_ratio
            )
            if cut:
                tokens = measure.request(request)[1]
        exact = profile.count_prompt(request) if profile.count_prompt is not None else None
        conversation = Conversation.of(request.messages)
        names = tool_names(conversation.messages)
        unit_chars, unit_tokens = [], []
        for unit in conversation.units:
            sizes = [measure.message(conversation.messages[i], names) for i in unit]
            unit_chars.append(sum(c for c, _ in sizes))
            unit_tokens.append(sum(t for _, t in sizes))
        note = profile.count_tokens(omitted_note(NOTE_COUNT_ROOM)) + profile.message_tokens
        sizes = Sizes(
            total=max(tokens, exact or 0),
            dropped=conversation.dropped_totals(unit_tokens),
            middle=conversation.middle,
            note=note,
        )
        return cls(request, conversation, unit_chars, sizes, exact, cut, chars)

    def candidate(self, count: int) -> MessagesRequest:
        """The request with the first ``count`` units dropped (and their linked units)."""
        if not count:
            return self.request
        return replace(self.request, messages=self.conversation.without(self.conversation.dropped(count)))

    @cached_property
    def key(self) -> str:
        """What identifies the conversation: its system prompt and opening messages, hashed
        (once: a request may look its cut up, then record it)."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(msgspec.json.encode(self.request.system))
        digest.update(msgspec.json.encode(self.conversation.opening()))
        return digest.hexdigest()


def fit(
    request: MessagesRequest,
    profile: ModelProfile,
    options: BudgetOptions = BudgetOptions(),
    cached_tokens: int = 0,
    measure: Measure | None = None,
) -> Fitted:
    """``request`` within its limits, with ``max_tokens`` set to what is wanted and fits.

    ``measure`` is the pipeline's, reused when it counts exactly, so unchanged
    messages are not counted twice. ``cached_tokens`` leading tokens of the prompt
    count as already in the backend's cache (the profile's ``cached_prefix`` may say
    more). Raises :class:`PromptTooLong` when even the smallest form exceeds the
    maximum, or when the counted prompt fills the window.
    """
    measure = measure if measure is not None and measure.exact else Measure(profile)
    limits = limits_for(profile.context_window, profile.prefill_tps, request.max_tokens, options)
    tokens = measure.request(request)[1]
    plan = Plan.of(request, tokens, profile, options, limits, measure)
    count = window_cut(plan.sizes, limits.window, options.drop_step)
    budget, cached = limits.window, max(0, cached_tokens)
    if limits.prefill is not None and (plan.sizes.kept(count) > limits.prefill + cached or (
            profile.cached_prefix is not None and _remembered(plan, count, profile) is not None)):
        count, budget, cached = _prefill(plan, count, limits, cached, options, profile)
    if profile.recent_cuts is not None:
        profile.recent_cuts.put(plan.key, count)
    return _counted(plan, count, tokens, limits, budget, cached, profile, measure)


def _prefill(plan: Plan, start: int, limits: Limits, cached: int, options: BudgetOptions,
             profile: ModelProfile) -> tuple[int, int, int]:
    """(units to drop, the limit that set it, tokens counted as cached) under the prefill target.

    The target is a smaller window: the uncached allowance plus what is cached, never
    below the floor, cut in steps as the window's cut is, so that it stays put too; the
    steps are half as long, so that the prompt keeps more than 60 % of that limit. A
    server says what its backend caches and remembers the last cut of a conversation:
    while the backend still holds that cut's prompt, the cut stays there, as a window's
    cut would, unless the window's own cut costs no more to prefill. It is tried before
    the window's cut, not after: a prefill measured faster on the next turn (the deep
    cut's own long prefill, or a machine less busy) would otherwise take the cut back
    at once and break the prompt's front twice in two turns.
    """
    allowance, sizes, ask = limits.prefill or 0, plan.sizes, profile.cached_prefix
    if ask is not None:
        cached = max(cached, ask(plan.candidate(start)))
        uncached = max(0, sizes.kept(start) - cached)
        earlier = _remembered(plan, start, profile)
        if uncached and earlier is not None:
            held = ask(plan.candidate(earlier))
            if max(0, sizes.kept(earlier) - held) < min(uncached, allowance + 1):  # still cached: it stays
                return earlier, min(limits.window, allowance + held), held
        if uncached <= allowance:
            return start, limits.window, cached
    limit = min(limits.window, max(limits.floor, allowance + cached))
    step = options.drop_step / 2 if isinstance(options.drop_step, float) else options.drop_step
    return max(start, window_cut(sizes, limit, step)), limit, cached


def _remembered(plan: Plan, start: int, profile: ModelProfile) -> int | None:
    """The cut the server remembers for this conversation, when it went beyond ``start`` and
    the window has not overtaken it: one the prefill target made."""
    earlier = profile.recent_cuts.get(plan.key) if profile.recent_cuts is not None else None
    return earlier if earlier is not None and start < earlier <= plan.sizes.units else None


def _counted(plan: Plan, count: int, tokens: int, limits: Limits, budget: int, cached: int,
             profile: ModelProfile, measure: Measure) -> Fitted:
    """The request with ``count`` units dropped, counted, one more unit at a time while it does not fit.

    The measured prompt must fit the window's limit (the note's real size can differ
    from its room), and the backend's count must leave the least output room.
    """
    units, window = plan.sizes.units, profile.context_window
    while True:
        candidate = plan.candidate(count)
        measured = measure.request(candidate)[1]
        if measured > limits.window and count < units:
            count += 1
            continue
        if profile.count_prompt is None:
            prompt = measured
        else:
            prompt = plan.exact_total if count == 0 and plan.exact_total is not None else profile.count_prompt(candidate)
        if prompt > limits.maximum and count < units:
            count += 1
            continue
        break
    if measured > limits.maximum:
        raise PromptTooLong(tokens, limits.maximum)
    if prompt >= window:
        raise PromptTooLong(prompt, window - 1)
    dropped = plan.conversation.dropped(count)
    max_tokens = max(1, min(limits.output_wanted, window - prompt))
    return Fitted(
        request=candidate if candidate.max_tokens == max_tokens else replace(candidate, max_tokens=max_tokens),
        prompt_tokens=prompt,
        limits=limits,
        budget_tokens=budget,
        max_tokens=max_tokens,
        dropped_turns=len(dropped),
        cut_results=plan.cut_results,
        result_chars_cut=plan.result_chars_cut,
        turn_chars_dropped=sum(plan.unit_chars[u] for u in dropped),
        cached_tokens=cached,
    )
