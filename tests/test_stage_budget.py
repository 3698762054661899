"""The budget stage: limits, shortened tool results, turns dropped in steps, the too-long error."""

from __future__ import annotations


import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures import claude_code as cc
from trimkit import BudgetResult, ModelProfile, Pipeline, PromptTooLong, TrimResult, decode_request, encode
from trimkit.plugins.budget.fitting import (
    BudgetOptions,
    Conversation,
    fit,
    limits_for,
    omitted_note,
    shorten,
    shorten_result,
    shorten_results,
)
from trimkit.measure import Measure
from trimkit.render import prompt_text
from trimkit.wire import ImageBlock, Message, MessagesRequest, TextBlock, ToolResultBlock, ToolUseBlock

PIPELINE = Pipeline(entry_points=False)
TINY = ModelProfile(name="tiny", context_window=2000, prefill_tps=1000.0)
NO_PREFILL = BudgetOptions(target_prefill_seconds=None)
count = TINY.count_tokens


# --------------------------------------------------------------------------- building and checking


def run_budget(req: MessagesRequest, profile: ModelProfile = TINY, cached_tokens: int = 0, **options) -> TrimResult:
    """The budget stage run alone, as the pipeline runs it, with ``options`` over its defaults."""
    return PIPELINE.run_stage("budget", req, profile, options=options, cached_tokens=cached_tokens)


def lines(tag: str, n: int) -> str:
    return "".join(f"{tag} line {k}: some output of the tool\n" for k in range(n))


def exchange(i: int, result: str | list | None = None, say: str | None = None) -> list[dict]:
    """An assistant turn calling one tool, then the user turn carrying its result (or plain text)."""
    if result is None:
        return [
            {"role": "assistant", "content": say or f"answer {i}"},
            {"role": "user", "content": f"follow-up question {i}"},
        ]
    use = {"type": "tool_use", "id": f"toolu_{i}", "name": "Read", "input": {"file_path": f"/src/m{i}.py"}}
    return [
        {"role": "assistant", "content": [{"type": "text", "text": say or f"reading m{i}"}, use]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": result}]},
    ]


def request(*exchanges: list[dict], opening: str = "please fix the rounding bug", last: str | None = None,
            max_tokens: int | None = 64000, system: str = "You are a coding assistant.") -> MessagesRequest:
    messages = [{"role": "user", "content": opening}]
    for ex in exchanges:
        messages.extend(ex)
    if last is not None:
        messages.extend([{"role": "assistant", "content": "ok"}, {"role": "user", "content": last}])
    body = {"model": "m", "messages": messages, "system": system}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return decode_request(body)


def tokens_of(req: MessagesRequest, profile: ModelProfile = TINY) -> int:
    return Measure(profile).request(req)[1]


def tool_ids(messages: list[Message], kind: type) -> list[str]:
    key = "id" if kind is ToolUseBlock else "tool_use_id"
    return [
        getattr(b, key) for m in messages if isinstance(m.content, list) for b in m.content if isinstance(b, kind)
    ]


def assert_valid(messages: list[Message]) -> None:
    """Every call has its result and every result its call, in order; roles alternate from the user."""
    uses, results = tool_ids(messages, ToolUseBlock), tool_ids(messages, ToolResultBlock)
    assert sorted(uses) == sorted(results), "orphaned tool_use or tool_result"
    seen: set[str] = set()
    for m in messages:
        if isinstance(m.content, list):
            for b in m.content:
                if isinstance(b, ToolResultBlock):
                    assert b.tool_use_id in seen, "tool_result before its tool_use"
                elif isinstance(b, ToolUseBlock):
                    seen.add(b.id)
    roles = [m.role for m in messages if m.role != "system"]
    assert roles and roles[0] == "user"
    assert all(a != b for a, b in zip(roles, roles[1:])), f"roles do not alternate: {roles}"


def last_user(messages: list[Message]) -> Message:
    return [m for m in messages if m.role == "user"][-1]


def texts(message: Message) -> list[str]:
    if isinstance(message.content, str):
        return [message.content]
    return [b.text for b in message.content if isinstance(b, TextBlock)]


# --------------------------------------------------------------------------- limits


def test_reserve_is_capped_at_a_quarter_of_the_window():
    limits = limits_for(32768, None, 64000, BudgetOptions())
    assert (limits.target, limits.maximum, limits.output_wanted) == (32768 - 8192, 32768 - 1024, 64000)


def test_reserve_follows_smaller_requests_and_options():
    assert limits_for(32768, None, None, BudgetOptions()).target == 32768 - 4096
    small = limits_for(32768, None, 100, BudgetOptions())
    assert (small.target, small.maximum) == (32768 - 100, 32768 - 100)
    capped = limits_for(32768, None, 64000, BudgetOptions(max_output_tokens=2000))
    assert (capped.target, capped.output_wanted) == (32768 - 2000, 2000)
    tight = limits_for(2000, None, 64000, BudgetOptions())
    assert (tight.target, tight.maximum) == (2000 - 1024, 2000 - 1024)


def test_prefill_allowance_counts_only_uncached_tokens():
    limits = limits_for(100_000, 1000.0, 4096, BudgetOptions(), cached_tokens=5000)
    assert (limits.target, limits.uncached_target) == (8000 + 5000, 8000)
    assert limits.maximum == 100_000 - 1024
    assert limits_for(100_000, 1000.0, 4096, BudgetOptions(target_prefill_seconds=None)).target == 100_000 - 4096


# --------------------------------------------------------------------------- prompt fits


def test_fitting_prompt_only_gets_max_tokens_capped():
    req = request(exchange(1, lines("a", 5)), last="thanks")
    result = run_budget(req, TINY)
    tokens = tokens_of(req)
    assert encode(msgspec.structs.replace(result.request, max_tokens=64000)) == encode(req)
    assert result.request.max_tokens == 2000 - tokens
    assert result.carry.budget == BudgetResult(prompt_tokens=tokens, max_tokens=2000 - tokens, budget_tokens=2000 - 1024)
    assert result.report.stages[0].removed == {}


def test_small_max_tokens_is_kept_and_missing_one_gets_the_default():
    req = request(last="hi", max_tokens=50)
    assert run_budget(req, TINY).request.max_tokens == 50
    big = ModelProfile(name="big", context_window=100_000, prefill_tps=1e6)
    assert run_budget(request(last="hi", max_tokens=None), big).request.max_tokens == 4096
    assert run_budget(request(last="hi"), big, max_output_tokens=300).request.max_tokens == 300


def test_disabled_stage_changes_nothing():
    req = request(*(exchange(i, lines(str(i), 60)) for i in range(10)), last="go on")
    result = run_budget(req, enabled=False)
    assert encode(result.request) == encode(req)
    assert result.carry.budget is None


def test_tier_options_set_the_result_cap():
    caps = {tier: PIPELINE.options_for("budget", tier).tool_result_max_tokens for tier in ("small", "medium", "large")}
    assert caps == {"small": 4000, "medium": 8000, "large": 16000}


# --------------------------------------------------------------------------- tool results


def test_shorten_keeps_head_and_tail_around_a_marker():
    text = lines("x", 400)
    cut = shorten(text, 500, count, keep_head_ratio=0.6)
    head, marker, tail = cut.partition("[… ")
    marker, _, tail = ("[… " + tail).partition("\n")
    removed = int(marker.removeprefix("[… ").split(" ")[0].replace(",", ""))
    assert marker == f"[… {removed:,} characters cut by trimkit …]"
    assert text.startswith(head) and text.endswith(tail)
    assert len(head) + removed + len(tail) == len(text)
    assert head.endswith("\n") and (tail == "" or text[len(text) - len(tail) - 1] == "\n")
    assert 0.5 < len(head) / (len(head) + len(tail)) < 0.7
    assert 400 < count(cut) <= 500


def test_shorten_leaves_short_text_alone():
    text = lines("y", 10)
    assert shorten(text, 500, count) is text


def test_shorten_without_line_breaks_cuts_at_the_exact_points():
    text = "z" * 10_000
    cut = shorten(text, 1000, count, keep_head_ratio=0.5)
    head, _, rest = cut.partition("\n[… ")
    tail = rest.partition("\n")[2]
    assert set(head) == {"z"} and set(tail) == {"z"} and abs(len(head) - len(tail)) <= 1


def test_list_result_is_cut_as_one_text_and_keeps_other_blocks():
    image = ImageBlock(source={"type": "base64", "media_type": "image/png", "data": "AAAA"})
    block = ToolResultBlock(
        tool_use_id="t", content=[TextBlock(text=lines("p", 200)), image, TextBlock(text=lines("q", 200))]
    )
    short = shorten_result(block, 300, count, 0.6)
    assert isinstance(short.content[0], TextBlock) and short.content[1:] == [image]
    assert short.content[0].text.startswith("p line 0") and short.content[0].text.endswith("q line 199: some output of the tool\n")
    assert "characters cut by trimkit" in short.content[0].text
    assert shorten_result(block, 100_000, count, 0.6) is block


def test_a_result_is_cut_the_same_wherever_it_appears():
    big = lines("same", 300)
    early = request(exchange(1, big), exchange(2, "short"), last="next")
    late = request(*(exchange(i, "tiny") for i in range(5)), exchange(9, big), last="other")
    cut_early, n_early, _ = shorten_results(early, 400, count)
    cut_late, n_late, _ = shorten_results(late, 400, count)
    assert n_early == n_late == 1
    assert cut_early.messages[2].content[0].content == cut_late.messages[12].content[0].content


def test_long_results_are_cut_before_any_turn_is_dropped():
    req = request(exchange(1, lines("a", 30)), exchange(2, lines("big", 300)), exchange(3, "ok"), last="done?")
    result = run_budget(req, tool_result_max_tokens=400)
    budget = result.carry.budget
    assert budget.cut_results == 1 and budget.dropped_turns == 0
    assert budget.prompt_tokens == tokens_of(result.request) <= 2000 - 1024
    assert result.report.stages[0].removed["tool_results"] > 5000
    assert "turns" not in result.report.stages[0].removed
    assert len(result.request.messages) == len(req.messages)
    assert_valid(result.request.messages)


# --------------------------------------------------------------------------- dropping turns


def test_oldest_turns_go_in_steps_and_the_opening_stays():
    req = request(*(exchange(i, lines(str(i), 12)) for i in range(30)), last="what now?")
    fitted = fit(req, TINY, BudgetOptions(drop_step=5))
    out = fitted.request.messages
    assert fitted.dropped_turns % 5 == 0 and fitted.dropped_turns > 0
    assert fitted.prompt_tokens == tokens_of(fitted.request) <= 2000 - 1024
    assert texts(out[0]) == ["please fix the rounding bug", omitted_note(fitted.dropped_turns)]
    kept = tool_ids(out, ToolUseBlock)
    assert kept == [f"toolu_{i}" for i in range(fitted.dropped_turns, 30)]
    assert out[-1] == req.messages[-1]
    assert_valid(out)


def test_the_smallest_step_that_fits_is_taken():
    req = request(*(exchange(i, lines(str(i), 12)) for i in range(30)), last="what now?")
    fitted = fit(req, TINY, BudgetOptions(drop_step=5))
    back = fitted.dropped_turns - 5
    assert back > 0
    conversation = Conversation.of(req.messages)
    assert tokens_of(msgspec.structs.replace(req, messages=conversation.without(range(back)))) > 2000 - 1024


def test_opening_message_goes_last():
    req = request(*(exchange(i, lines(str(i), 12)) for i in range(8)), opening="word " * 1000, last="and now?")
    fitted = fit(req, TINY, NO_PREFILL)
    out = fitted.request.messages
    assert fitted.dropped_turns == 9
    assert out[0] == Message(role="user", content=[TextBlock(text=omitted_note(9))])
    assert [m.role for m in out] == ["user", "assistant", "user"]
    assert out[-1] == req.messages[-1]
    assert_valid(out)


def test_system_messages_before_the_first_turn_stay():
    req = request(*(exchange(i, lines(str(i), 12)) for i in range(20)), last="and now?")
    system = Message(role="system", content="skills and agents listing")
    req = msgspec.structs.replace(req, messages=[req.messages[0], system, *req.messages[1:]])
    out = fit(req, TINY, NO_PREFILL).request.messages
    assert out[1] == system
    assert texts(out[0])[-1].startswith("[Earlier conversation (")
    assert_valid(out)


def test_the_last_turn_and_its_results_are_never_dropped():
    req = request(*(exchange(i, lines(str(i), 12)) for i in range(10)), exchange(99, lines("last", 50)))
    out = fit(req, TINY, NO_PREFILL).request.messages
    assert out[-2:] == req.messages[-2:]
    assert tool_ids(out, ToolResultBlock)[-1] == "toolu_99"
    assert_valid(out)


def test_calls_answered_in_a_later_turn_go_with_that_turn():
    messages = request(*(exchange(i, lines(str(i), 12)) for i in range(12)), last="go").messages
    late_use = ToolUseBlock(id="toolu_late", name="Bash", input={"command": "make"})
    late_result = ToolResultBlock(tool_use_id="toolu_late", content="built")
    messages = list(messages)
    messages[1] = msgspec.structs.replace(messages[1], content=[*messages[1].content, late_use])
    messages[8] = msgspec.structs.replace(messages[8], content=[*messages[8].content, late_result])
    req = msgspec.structs.replace(request(), messages=messages)
    for step in (1, 2, 3):
        fitted = fit(req, TINY, BudgetOptions(drop_step=step, target_prefill_seconds=None))
        kept = fitted.request.messages
        assert ("toolu_late" in tool_ids(kept, ToolUseBlock)) == ("toolu_late" in tool_ids(kept, ToolResultBlock))
        assert sorted(tool_ids(kept, ToolUseBlock)) == sorted(tool_ids(kept, ToolResultBlock))


def test_a_call_answered_in_the_last_message_pins_its_turn():
    messages = list(request(*(exchange(i, lines(str(i), 12)) for i in range(12)), last="go").messages)
    messages[1] = msgspec.structs.replace(
        messages[1], content=[*messages[1].content, ToolUseBlock(id="toolu_pin", name="Bash", input={})]
    )
    messages[-1] = Message(role="user", content=[ToolResultBlock(tool_use_id="toolu_pin", content="done")])
    req = msgspec.structs.replace(request(), messages=messages)
    fitted = fit(req, TINY, NO_PREFILL)
    out = fitted.request.messages
    assert fitted.dropped_turns > 0 and out[1] == messages[1]
    assert out[2].content[:-1] == messages[2].content
    assert out[2].content[-1] == TextBlock(text=omitted_note(fitted.dropped_turns))
    assert sorted(tool_ids(out, ToolUseBlock)) == sorted(tool_ids(out, ToolResultBlock))


def test_cut_stays_put_as_the_conversation_grows():
    exchanges = [exchange(i, lines(str(i), 4 + i % 5)) for i in range(60)]
    profile = ModelProfile(name="tiny", context_window=6000, prefill_tps=1000.0)
    previous = None
    drops = []
    for n in range(1, 60):
        req = request(*exchanges[:n])
        fitted = fit(req, profile, NO_PREFILL)
        text = prompt_text(fitted.request)
        if previous is not None and fitted.dropped_turns == previous[0]:
            assert text.startswith(previous[1])
        drops.append(fitted.dropped_turns)
        previous = (fitted.dropped_turns, text)
    moves = [b - a for a, b in zip(drops, drops[1:]) if b != a]
    assert drops[-1] > 0 and all(move >= 5 for move in moves)
    assert len(moves) <= 6


# --------------------------------------------------------------------------- the too-long error


def test_too_long_last_message_raises_with_counts():
    req = request(exchange(1, "ok"), last="x " * 4000, max_tokens=512)
    with pytest.raises(PromptTooLong) as info:
        run_budget(req, TINY)
    tokens = tokens_of(req)
    assert (info.value.tokens, info.value.maximum) == (tokens, 2000 - 512)
    assert str(info.value) == f"prompt is too long: {tokens} tokens > {2000 - 512} maximum"


def test_unreachable_prefill_target_is_not_an_error():
    slow = ModelProfile(name="slow", context_window=20_000, prefill_tps=10.0)
    req = request(*(exchange(i, lines(str(i), 12)) for i in range(10)), last="y " * 1500)
    result = run_budget(req, slow)
    budget = result.carry.budget
    assert budget.budget_tokens == 20_000 - 1024 and budget.dropped_turns == 0
    assert encode(msgspec.structs.replace(result.request, max_tokens=64000)) == encode(req)


def test_cached_tokens_raise_the_prefill_allowance():
    profile = ModelProfile(name="tiny", context_window=100_000, prefill_tps=100.0)
    req = request(*(exchange(i, lines(str(i), 12)) for i in range(5)), last="go")
    assert 800 < tokens_of(req) < 1400
    cold = run_budget(req, profile)
    warm = run_budget(req, profile, cached_tokens=600)
    assert cold.carry.budget.dropped_turns > 0
    assert cold.carry.budget.prompt_tokens <= 800
    assert warm.carry.budget.dropped_turns == 0
    assert warm.carry.budget.budget_tokens == 1400


class Backend:
    """What a server offers the budget through the profile: exact counts and its cache."""

    def __init__(self, extra_tokens: int = 0, cached: int = 0):
        self.extra_tokens, self.cached = extra_tokens, cached
        self.counted: list[MessagesRequest] = []
        self.asked: list[MessagesRequest] = []

    def profile(self, **fields) -> ModelProfile:
        return ModelProfile(name="served", count_prompt=self.count_prompt, cached_prefix=self.cached_prefix, **fields)

    def count_prompt(self, req: MessagesRequest) -> int:
        self.counted.append(req)
        return tokens_of(req) + self.extra_tokens

    def cached_prefix(self, req: MessagesRequest) -> int:
        self.asked.append(req)
        return self.cached


def test_the_backends_count_of_the_final_prompt_sets_max_tokens():
    backend = Backend(extra_tokens=40)
    req = request(exchange(1, lines("a", 5)), last="thanks")
    result = run_budget(req, backend.profile(context_window=2000, prefill_tps=1000.0))
    assert [counted.messages for counted in backend.counted] == [result.request.messages]
    exact = tokens_of(req) + 40
    assert (result.carry.budget.prompt_tokens, result.carry.budget.max_tokens) == (exact, 2000 - exact)
    assert result.request.max_tokens == 2000 - exact
    assert backend.asked == []  # nothing had to be cut, so the cache was not asked


def test_a_prompt_the_backend_counts_beyond_the_window_is_too_long():
    backend = Backend(extra_tokens=2000)
    req = request(exchange(1, "ok"), last="hi", max_tokens=100)
    with pytest.raises(PromptTooLong) as info:
        run_budget(req, backend.profile(context_window=2000, prefill_tps=1000.0))
    assert (info.value.tokens, info.value.maximum) == (tokens_of(req) + 2000, 1999)


def test_when_it_must_cut_the_budget_asks_the_backend_what_it_has_cached_once():
    req = request(*(exchange(i, lines(str(i), 12)) for i in range(5)), last="go")
    fields = {"context_window": 100_000, "prefill_tps": 100.0}
    cold_backend, warm_backend = Backend(cached=0), Backend(cached=10**6)
    cold = run_budget(req, cold_backend.profile(**fields))
    warm = run_budget(req, warm_backend.profile(**fields))
    uncut = encode(msgspec.structs.replace(req, max_tokens=None))
    for backend in (cold_backend, warm_backend):
        (asked,) = backend.asked  # the window alone fits it: the whole prompt is the candidate
        assert encode(msgspec.structs.replace(asked, max_tokens=None)) == uncut
    assert cold.carry.budget.dropped_turns > 0 and cold.carry.budget.cached_tokens == 0
    assert warm.carry.budget.dropped_turns == 0 and warm.carry.budget.cached_tokens == 10**6
    assert encode(msgspec.structs.replace(warm.request, max_tokens=None)) == uncut


# --------------------------------------------------------------------------- determinism and purity


def test_same_input_same_bytes_and_input_untouched():
    req = request(*(exchange(i, lines(str(i), 20 + i)) for i in range(20)), last="again")
    before = encode(req)
    first = run_budget(req, TINY)
    second = run_budget(decode_request(before), TINY)
    assert encode(first.request) == encode(second.request)
    assert encode(req) == before
    assert first.carry.budget.dropped_turns > 0
    assert first.report.stages[0].removed["turns"] > 0


# --------------------------------------------------------------------------- property


def conversation_strategy():
    exchange_st = st.tuples(
        st.integers(0, 2),  # tool calls in the assistant turn
        st.integers(0, 1),  # result as string or text blocks
        st.integers(0, 120),  # result size in lines
        st.integers(0, 300),  # text size in words
    )
    return st.lists(exchange_st, max_size=12)


def build(spec, opening_words: int, last_words: int, with_system: bool, max_tokens, text_last: bool) -> MessagesRequest:
    messages: list[dict] = [{"role": "user", "content": "start " * (opening_words + 1)}]
    if with_system:
        messages.append({"role": "system", "content": "listing of skills"})
    for i, (calls, as_list, size, words) in enumerate(spec):
        uses = [
            {"type": "tool_use", "id": f"t{i}_{j}", "name": "Bash", "input": {"command": f"run {i} {j}"}}
            for j in range(calls)
        ]
        messages.append({"role": "assistant", "content": [{"type": "text", "text": "w " * (words + 1)}, *uses]})
        if calls:
            body = lines(f"r{i}", size)
            content = body if not as_list else [{"type": "text", "text": body}]
            results = [{"type": "tool_result", "tool_use_id": u["id"], "content": content} for u in uses]
            messages.append({"role": "user", "content": results})
        else:
            messages.append({"role": "user", "content": "q " * (words + 1)})
    if text_last or not spec:
        messages.append({"role": "assistant", "content": "ok"})
        messages.append({"role": "user", "content": "final question " * (last_words + 1)})
    body = {"model": "m", "messages": messages}
    if max_tokens:
        body["max_tokens"] = max_tokens
    return decode_request(body)


@given(
    spec=conversation_strategy(),
    opening_words=st.integers(0, 400),
    last_words=st.integers(0, 400),
    with_system=st.booleans(),
    text_last=st.booleans(),
    max_tokens=st.sampled_from([None, 64, 1000, 4096, 64000]),
    window=st.integers(300, 6000),
    tps=st.sampled_from([50.0, 500.0, 1e9]),
    cached=st.integers(0, 2000),
    result_cap=st.sampled_from([None, 60, 300, 2000]),
    drop_step=st.sampled_from([0.25, 0.5, 1.0, 1, 3]),
)
def test_output_fits_or_raises_and_stays_valid(
    spec, opening_words, last_words, with_system, text_last, max_tokens, window, tps, cached, result_cap, drop_step
):
    req = build(spec, opening_words, last_words, with_system, max_tokens, text_last)
    options = BudgetOptions(tool_result_max_tokens=result_cap, drop_step=drop_step)
    profile = ModelProfile(name="p", context_window=window, prefill_tps=tps)
    limits = limits_for(window, tps, max_tokens, options, cached)
    short = shorten_results(req, result_cap, count)[0] if result_cap else req
    tail = short.messages[-2:]
    if with_system:
        tail = [short.messages[1], *tail]
    smallest = tokens_of(msgspec.structs.replace(short, messages=tail)) + count(omitted_note(99)) + 4
    try:
        fitted = fit(req, profile, options, cached)
    except PromptTooLong as exc:
        assert exc.tokens == tokens_of(req) > exc.maximum == limits.maximum
        assert smallest > limits.maximum
        return
    out = fitted.request
    assert_valid(out.messages)
    assert out.messages[-1] in (req.messages[-1], short.messages[-1])
    assert fitted.prompt_tokens == tokens_of(out) <= limits.maximum
    assert fitted.budget_tokens in (limits.target, limits.maximum)
    assert fitted.prompt_tokens <= fitted.budget_tokens
    if fitted.prompt_tokens > limits.target:
        assert smallest > limits.target
    assert 1 <= out.max_tokens == fitted.max_tokens <= window - fitted.prompt_tokens
    assert encode(fit(req, profile, options, cached).request) == encode(out)
    if tokens_of(req) <= limits.target:
        assert encode(msgspec.structs.replace(out, max_tokens=req.max_tokens)) == encode(req)
        return
    originals = [encode(m) for m in short.messages]
    for message in out.messages:
        if encode(message) not in originals:
            assert message.role == "user" and texts(message)[-1].startswith("[Earlier conversation (")


# --------------------------------------------------------------------------- a Claude Code session


def without_tools(raw: dict) -> MessagesRequest:
    """A session request as the budget stage sees it once the tools stage has moved the tools."""
    return msgspec.structs.replace(decode_request(raw), tools=None)


def test_claude_code_session_is_cut_and_stays_valid():
    req = without_tools(cc.session(40))
    profile = ModelProfile.for_tier("small", context_window=16384)
    result = run_budget(req, profile)
    budget = result.carry.budget
    out = result.request.messages
    assert budget.dropped_turns > 0 and budget.cut_results >= 0
    assert budget.prompt_tokens == tokens_of(result.request, profile) <= budget.budget_tokens
    assert_valid(out)
    assert out[-1] == req.messages[-1]
    assert cc.SESSION_PROMPT in "".join(texts(out[0]))
    assert out[1] == req.messages[1] and out[1].role == "system"


def test_claude_code_session_prefix_holds_between_cuts():
    small = ModelProfile.for_tier("small", context_window=16384)
    options = BudgetOptions(tool_result_max_tokens=4000, target_prefill_seconds=None)
    previous = None
    cut_requests = moves = 0
    for raw in cc.session_prefixes(40):
        fitted = fit(without_tools(raw), small, options)
        text = prompt_text(fitted.request)
        state = (fitted.dropped_turns, fitted.cut_results > 0)
        cut_requests += state != (0, False)
        if previous is not None:
            if state[0] == previous[0][0] and (previous[0][1] or not state[1]):
                assert text.startswith(previous[1])
            else:
                moves += 1
        previous = (state, text)
    assert cut_requests > 20 and 0 < moves < cut_requests / 2


def test_fitting_session_reuses_the_pipelines_measurements(monkeypatch):
    import trimkit.plugins.budget.fitting as budget_module

    req = decode_request(cc.session(40))
    profile = ModelProfile(name="big", context_window=1_000_000, prefill_tps=1e9)
    monkeypatch.setattr(budget_module, "Measure", lambda *a, **k: pytest.fail("the budget stage measured on its own"))
    result = run_budget(req, profile)
    assert result.carry.budget.dropped_turns == 0
    assert result.report.stages[-1].tokens_after == result.carry.budget.prompt_tokens