"""Fit a request into the model's context window and a prefill-time target.

Two limits, both in prompt tokens as :class:`trimkit.measure.Measure` counts them
(the figures the pipeline's report shows):

* the **target**: the context window less the output reserve, and no more than
  the model can prefill in ``target_prefill_seconds`` (tokens already in the
  backend's KV cache cost nothing and are added to that allowance);
* the **maximum**: the context window less the least output room we accept
  (``min_output_tokens``, or the request's own ``max_tokens`` when smaller).

A prompt within the target is left alone apart from ``max_tokens``. Otherwise it
is cut toward the target: first every ``tool_result`` over
``tool_result_max_tokens`` keeps its head and tail, then the oldest whole turns go,
in large steps. When the target cannot be reached even with everything droppable
gone (a latency goal, not a hard limit), the cut keeps as many turns as the
maximum allows. Only a prompt that exceeds the maximum at its smallest raises
:class:`~trimkit.stage.PromptTooLong`.

Prefix stability shapes every choice here:

* Shortening a tool result is a pure function of that result, so an earlier
  result reads the same in every later request. All results over the cap are
  shortened as soon as the prompt is over the target, not just enough of them.
* Turns are dropped in large steps whose boundaries are fixed by the oldest
  turns alone (every ``drop_step`` share of the target, counted from the start),
  so the cut stays at the same place turn after turn until the prompt outgrows
  it, then jumps a whole step. The step is measured against the target with
  nothing cached, so it does not move with ``cached_tokens`` either.
* The opening user message (usually the task itself) is kept until every later
  droppable turn is gone; the note saying what was omitted follows it, so the
  system prompt and the opening message stay a cached prefix across cuts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Callable, Iterable

import msgspec
from msgspec.structs import replace

from trimkit import BudgetResult, ModelProfile, PromptTooLong
from trimkit.measure import Measure
from trimkit.render import tool_names
from trimkit.wire import Message, MessagesRequest, TextBlock, ToolResultBlock, ToolUseBlock

Counter = Callable[[str], int]

MARKER_ROOM = 64
"""Characters set aside for the cut marker when sizing a shortened tool result."""


Tokens = Annotated[int, msgspec.Meta(ge=0)]
Share = Annotated[float, msgspec.Meta(gt=0, le=1)]


class BudgetOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The budget stage's options (``[stages.budget]``); 0 turns a limit off where noted."""

    enabled: bool = True
    target_prefill_seconds: Annotated[float, msgspec.Meta(ge=0)] | None = 8.0
    """Prefill time to aim for at the measured speed (0: no prefill target, only the window)."""
    min_output_tokens: Annotated[int, msgspec.Meta(ge=1)] = 1024
    """The least output room accepted before the prompt is too long."""
    max_output_tokens: Tokens | None = None
    """A cap on ``max_tokens`` (0: none)."""
    max_output_share: Share = 0.25
    """The output reserve is at most this share of the window (but at least ``min_output_tokens``)."""
    default_max_tokens: Annotated[int, msgspec.Meta(ge=1)] = 4096
    """Output wanted when the request names no ``max_tokens``."""
    tool_result_max_tokens: Tokens | None = 8000
    """A longer tool result keeps its head and tail when the prompt must shrink (0: never cut)."""
    keep_head_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.6
    """The share of a shortened tool result taken from its head."""
    drop_step: Share | Annotated[int, msgspec.Meta(ge=1)] = 0.25
    """Each drop step frees about this share of the (uncached) target; a whole number is a number of turns."""


@dataclass(frozen=True)
class Limits:
    target: int
    maximum: int
    uncached_target: int
    """The target with nothing cached: the measure of drop steps, which must not move with the cache."""
    output_wanted: int
    """``max_tokens`` as asked (or the default), under ``max_output_tokens``."""


@dataclass
class Fitted:
    """What :func:`fit` made of a request."""

    request: MessagesRequest
    prompt_tokens: int
    limits: Limits
    budget_tokens: int
    """The limit the prompt was fitted to: the target, or the maximum when the target is out of reach."""
    max_tokens: int = 0
    dropped_turns: int = 0
    cut_results: int = 0
    result_chars_cut: int = 0
    turn_chars_dropped: int = 0
    cached_tokens: int = 0
    """The cached prefix the limits counted: as given, or as the profile's ``cached_prefix`` said."""

    def result(self) -> BudgetResult:
        """The decision the server reads (``state.carry.budget``): the fields named alike."""
        return BudgetResult(**{name: getattr(self, name) for name in BudgetResult.__struct_fields__})


def limits_for(
    context_window: int,
    prefill_tps: float | None,
    max_tokens: int | None,
    options: BudgetOptions,
    cached_tokens: int = 0,
) -> Limits:
    """The target and maximum prompt sizes for one request.

    A client asking for 64,000 output tokens from a 32k-context model must not
    make every prompt impossible: the reserve is capped at ``max_output_share``
    of the window, and ``max_tokens`` is lowered afterwards to what is left.
    """
    wanted = max_tokens or options.default_max_tokens
    if options.max_output_tokens:
        wanted = min(wanted, options.max_output_tokens)
    wanted = max(1, wanted)
    reserve = min(wanted, max(options.min_output_tokens, int(context_window * options.max_output_share)))
    least = max(1, min(wanted, options.min_output_tokens))
    uncached = cached = context_window - reserve
    if options.target_prefill_seconds and prefill_tps:
        allowance = int(prefill_tps * options.target_prefill_seconds)
        uncached = min(uncached, allowance)
        cached = min(cached, allowance + max(0, cached_tokens))
    return Limits(
        target=max(0, cached),
        maximum=max(0, context_window - least),
        uncached_target=max(0, uncached),
        output_wanted=wanted,
    )


# --------------------------------------------------------------------------- tool results


def shorten(text: str, max_tokens: int, count: Counter, keep_head_ratio: float = 0.6) -> str:
    """``text`` cut to about ``max_tokens``: its head and tail around a marker line.

    The cut snaps to line breaks near the chosen points, so the marker stands
    on a line of its own and no line is split when one ends close by.
    """
    if len(text) * 4 <= max_tokens:  # a token takes at least one UTF-8 byte, a character at most four
        return text
    tokens = count(text)
    if tokens <= max_tokens:
        return text
    keep = max(0, len(text) * max_tokens // tokens - MARKER_ROOM)
    head_len = int(keep * min(1.0, max(0.0, keep_head_ratio)))
    head_end = _line_start_before(text, head_len)
    tail_start = _line_start_after(text, len(text) - (keep - head_len))
    head, tail = text[:head_end], text[tail_start:]
    marker = f"[… {tail_start - head_end:,} characters cut by trimkit …]"
    before = "\n" if head and not head.endswith("\n") else ""
    after = "\n" if tail else ""
    return f"{head}{before}{marker}{after}{tail}"


def _line_start_before(text: str, at: int) -> int:
    """The start of a line at or shortly before ``at`` (``at`` itself when none is near)."""
    found = text.rfind("\n", at - at // 4, at)
    return found + 1 if found >= 0 else at


def _line_start_after(text: str, at: int) -> int:
    """The start of a line at or shortly after ``at`` (``at`` itself when none is near)."""
    found = text.find("\n", at, at + (len(text) - at) // 4)
    return found + 1 if found >= 0 else at


def shorten_result(block: ToolResultBlock, max_tokens: int, count: Counter, keep_head_ratio: float) -> ToolResultBlock:
    """The block with its text shortened; the same block when it is within ``max_tokens``.

    List content has its text blocks joined (as the renderer joins them) and cut
    as one text, which takes the first text block's place; other blocks follow.
    """
    content = block.content
    if isinstance(content, str):
        cut = shorten(content, max_tokens, count, keep_head_ratio)
        return block if cut is content else replace(block, content=cut)
    if not content:
        return block
    texts = [b for b in content if isinstance(b, TextBlock)]
    if not texts:
        return block
    joined = "\n".join(b.text for b in texts)
    cut = shorten(joined, max_tokens, count, keep_head_ratio)
    if cut is joined:
        return block
    others = [b for b in content if not isinstance(b, TextBlock)]
    return replace(block, content=[replace(texts[0], text=cut), *others])


def _result_chars(block: ToolResultBlock) -> int:
    if isinstance(block.content, str):
        return len(block.content)
    return sum(len(b.text) for b in block.content or () if isinstance(b, TextBlock))


def shorten_results(
    request: MessagesRequest, max_tokens: int, count: Counter, keep_head_ratio: float = 0.6
) -> tuple[MessagesRequest, int, int]:
    """Every ``tool_result`` over ``max_tokens`` shortened: (request, results cut, characters cut)."""
    messages: list[Message] = []
    cut = chars = 0
    for message in request.messages:
        if isinstance(message.content, str):
            messages.append(message)
            continue
        blocks = []
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                short = shorten_result(block, max_tokens, count, keep_head_ratio)
                if short is not block:
                    cut += 1
                    chars += _result_chars(block) - _result_chars(short)
                    block = short
            blocks.append(block)
        changed = any(a is not b for a, b in zip(blocks, message.content))
        messages.append(replace(message, content=blocks) if changed else message)
    if not cut:
        return request, 0, 0
    return replace(request, messages=messages), cut, chars


# --------------------------------------------------------------------------- turns


def omitted_note(turns: int) -> str:
    noun = "turn" if turns == 1 else "turns"
    return f"[Earlier conversation ({turns} {noun}) omitted to fit the context window.]"


@dataclass
class Conversation:
    """A request's messages grouped into the units that may be dropped together.

    A *turn* is an assistant message and the messages up to the next assistant
    message (the user's answer, its ``tool_result`` blocks included). The turn
    holding the last user message, and everything after it, is never dropped;
    neither are ``role: "system"`` messages before the first assistant message.
    The *opening* unit (the user messages before the first assistant message)
    goes last. Units linked by a ``tool_use`` id go together, so no call is ever
    kept without its result or the other way round.
    """

    messages: list[Message]
    units: list[list[int]] = field(default_factory=list)
    """Droppable units as message indices, in the order they are dropped."""
    middle: int = 0
    """How many of ``units`` are turns after the opening one."""
    partners: list[list[int]] = field(default_factory=list)
    """For each unit, the units (itself included) linked to it by tool-use ids."""

    @classmethod
    def of(cls, messages: list[Message]) -> "Conversation":
        conversation = cls(messages)
        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        starts = [i for i, m in enumerate(messages) if m.role == "assistant" and i < last_user]
        if not starts:
            return conversation
        turns = [list(range(a, b)) for a, b in zip(starts, starts[1:])]
        opening = [i for i in range(starts[0]) if messages[i].role != "system"]
        units = turns + ([opening] if opening else [])
        pinned = len(units)
        unit_of = {i: u for u, members in enumerate(units) for i in members}
        root = _link_by_tool_ids(messages, lambda i: unit_of.get(i, pinned), pinned + 1)
        droppable = [u for u in range(pinned) if root[u] != root[pinned]]
        position = {u: p for p, u in enumerate(droppable)}
        linked: dict[int, list[int]] = {}
        for u in droppable:
            linked.setdefault(root[u], []).append(position[u])
        conversation.units = [units[u] for u in droppable]
        conversation.middle = sum(1 for u in droppable if u < len(turns))
        conversation.partners = [linked[root[u]] for u in droppable]
        return conversation

    def steps(self, drop_step: float | int, tokens: list[int], basis: int) -> list[int]:
        """How many units to drop at each step, fewest first (0: drop nothing).

        A whole ``drop_step`` is a number of turns. A fraction makes each step free
        about that share of ``basis`` tokens: the boundaries sit where the running
        total of the oldest turns crosses a multiple of it, so they stay put as the
        conversation grows and a cut moves only when the prompt outgrows it.
        """
        m = self.middle
        if isinstance(drop_step, int):
            counts = list(range(0, m, max(1, drop_step)))
        else:
            chunk = max(1, int(drop_step * basis))
            counts, running = [0], 0
            for unit in range(m):
                before, running = running, running + tokens[unit]
                if running // chunk > before // chunk and unit + 1 < m:
                    counts.append(unit + 1)
        counts.append(m)
        if len(self.units) > m:
            counts.append(len(self.units))
        return list(dict.fromkeys(counts))

    def dropped(self, count: int) -> list[int]:
        """The units that go when the first ``count`` go (with everything linked to them)."""
        chosen: set[int] = set()
        for unit in range(count):
            chosen.update(self.partners[unit])
        return sorted(chosen)

    def without(self, units: Iterable[int]) -> list[Message]:
        """The messages without ``units``, with a note where the first gap is.

        The note joins the user message before the gap (``role: "system"``
        messages between them aside), or becomes a user message of its own, so
        the conversation still opens with the user and alternates.
        """
        units = list(units)
        gone = {i for u in units for i in self.units[u]}
        first_gap = min(gone)
        out = [m for i, m in enumerate(self.messages) if i < first_gap]
        note = TextBlock(text=omitted_note(len(units)))
        before = next((j for j in range(len(out) - 1, -1, -1) if out[j].role != "system"), None)
        if before is not None and out[before].role == "user":
            out[before] = _with_block(out[before], note)
        else:
            out.append(Message(role="user", content=[note]))
        out.extend(m for i, m in enumerate(self.messages) if i > first_gap and i not in gone)
        return out


def _with_block(message: Message, block: TextBlock) -> Message:
    content = [TextBlock(text=message.content)] if isinstance(message.content, str) else list(message.content)
    return replace(message, content=[*content, block])


def _link_by_tool_ids(messages: list[Message], unit_of: Callable[[int], int], size: int) -> list[int]:
    """Union-find over units: units holding the same tool-use id end with the same root."""
    parent = list(range(size))

    def root(u: int) -> int:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    seen: dict[str, int] = {}
    for i, message in enumerate(messages):
        if isinstance(message.content, str):
            continue
        for block in message.content:
            if isinstance(block, ToolUseBlock):
                key = block.id
            elif isinstance(block, ToolResultBlock):
                key = block.tool_use_id
            else:
                continue
            unit = unit_of(i)
            if key in seen:
                parent[root(unit)] = root(seen[key])
            else:
                seen[key] = unit
    return [root(u) for u in range(size)]


# --------------------------------------------------------------------------- fitting


def fit(
    request: MessagesRequest,
    profile: ModelProfile,
    options: BudgetOptions = BudgetOptions(),
    cached_tokens: int = 0,
    measure: Measure | None = None,
) -> Fitted:
    """``request`` within its limits, with ``max_tokens`` set to what is wanted and fits.

    Sizes are taken with ``measure`` (the pipeline passes its own, so the budget
    and the report agree and unchanged messages are not measured twice).

    When the prompt must be cut and the profile can say what the backend has
    cached (``profile.cached_prefix``), the cut is weighed against that: the
    request is fitted to the window alone, the backend is asked how much of that
    prompt it already holds, and the request is fitted again counting those
    tokens as free, so a long conversation whose earlier turns are cached is not
    cut for prefill time it will not spend.

    The final prompt is counted with ``profile.count_prompt`` when there is one
    (the backend's own tokens), and ``max_tokens`` is what the window leaves.
    Raises :class:`PromptTooLong` when even the smallest form exceeds the maximum,
    or when the counted prompt fills the window.
    """
    measure = measure or Measure(profile)
    tokens = measure.request(request)[1]
    fitted = _fit(request, tokens, profile, options, cached_tokens, measure)
    if profile.cached_prefix is not None and (fitted.dropped_turns or fitted.cut_results):
        window_only = _fit(request, tokens, profile, options, profile.context_window, measure)
        cached = profile.cached_prefix(window_only.request)
        if cached > cached_tokens:
            fitted = _fit(request, tokens, profile, options, cached, measure)
    return _with_max_tokens(fitted, profile)


def _fit(
    request: MessagesRequest, tokens: int, profile: ModelProfile, options: BudgetOptions, cached_tokens: int,
    measure: Measure,
) -> Fitted:
    limits = limits_for(profile.context_window, profile.prefill_tps, request.max_tokens, options, cached_tokens)
    fitted = Fitted(request, tokens, limits, limits.target)
    if tokens > limits.target:
        fitted = _cut(request, tokens, profile.count_tokens, measure, limits, options)
    fitted.cached_tokens = cached_tokens
    return fitted


def _with_max_tokens(fitted: Fitted, profile: ModelProfile) -> Fitted:
    """``fitted`` with its prompt counted as the backend counts it and ``max_tokens`` set."""
    window = profile.context_window
    if profile.count_prompt is not None:
        fitted.prompt_tokens = profile.count_prompt(fitted.request)
        if fitted.prompt_tokens >= window:
            raise PromptTooLong(fitted.prompt_tokens, window - 1)
    fitted.max_tokens = max(1, min(fitted.limits.output_wanted, window - fitted.prompt_tokens))
    if fitted.request.max_tokens != fitted.max_tokens:
        fitted.request = replace(fitted.request, max_tokens=fitted.max_tokens)
    return fitted


def _cut(
    request: MessagesRequest, tokens: int, count: Counter, measure: Measure, limits: Limits, options: BudgetOptions
) -> Fitted:
    shortened, cut, cut_chars = request, 0, 0
    if options.tool_result_max_tokens:
        shortened, cut, cut_chars = shorten_results(
            request, options.tool_result_max_tokens, count, options.keep_head_ratio
        )
    total = measure.request(shortened)[1] if cut else tokens
    fitted = Fitted(shortened, total, limits, limits.target, cut_results=cut, result_chars_cut=cut_chars)
    if total <= limits.target:
        return fitted
    conversation = Conversation.of(shortened.messages)
    sizes = _unit_sizes(conversation, measure)
    steps = conversation.steps(options.drop_step, [tokens for _, tokens in sizes], limits.uncached_target)
    for limit in dict.fromkeys((limits.target, limits.maximum)):
        for step in steps:
            units = conversation.dropped(step)
            predicted = total - sum(sizes[u][1] for u in units)
            if units:
                predicted += count(omitted_note(len(units)))
            if predicted > limit and step != steps[-1]:
                continue
            candidate = replace(shortened, messages=conversation.without(units)) if units else shortened
            measured = measure.request(candidate)[1] if units else total
            if measured <= limit:
                fitted.request, fitted.prompt_tokens, fitted.budget_tokens = candidate, measured, limit
                fitted.dropped_turns = len(units)
                fitted.turn_chars_dropped = sum(sizes[u][0] for u in units)
                return fitted
    raise PromptTooLong(tokens, limits.maximum)


def _unit_sizes(conversation: Conversation, measure: Measure) -> list[tuple[int, int]]:
    """(characters, tokens) of each droppable unit, as ``measure`` counts them."""
    names = tool_names(conversation.messages)
    sizes = []
    for unit in conversation.units:
        chars = tokens = 0
        for i in unit:
            c, t = measure.message(conversation.messages[i], names)
            chars, tokens = chars + c, tokens + t
        sizes.append((chars, tokens))
    return sizes
