"""The budget stage: limits, shortened tool results, turns dropped in steps, the too-long error."""

from __future__ import annotations


from fractions import Fraction

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures import claude_code as cc
from tests.fixtures.long_session import agent_session, grown_from, read_session
from trimkit import BudgetResult, ModelProfile, Pipeline, PromptTooLong, TrimResult, decode_request, encode
from trimkit.measure import Measure
from trimkit.plugins.budget.conversation import Conversation, omitted_note
from trimkit.plugins.budget.cuts import step_drop, step_for
from trimkit.plugins.budget.fitting import Fitted, fit
from trimkit.plugins.budget.options import BudgetOptions, limits_for
from trimkit.plugins.budget.tool_results import shorten, shorten_result, shorten_results
from trimkit.profile import RecentCuts
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
    assert (limits.window, limits.maximum, limits.output_wanted) == (32768 - 8192, 32768 - 1024, 64000)


def test_reserve_follows_smaller_requests_and_options():
    assert limits_for(32768, None, None, BudgetOptions()).window == 32768 - 4096
    small = limits_for(32768, None, 100, BudgetOptions())
    assert (small.window, small.maximum) == (32768 - 100, 32768 - 100)
    capped = limits_for(32768, None, 64000, BudgetOptions(max_output_tokens=2000))
    assert (capped.window, capped.output_wanted) == (32768 - 2000, 2000)
    tight = limits_for(2000, None, 64000, BudgetOptions())
    assert (tight.window, tight.maximum) == (2000 - 1024, 2000 - 1024)


def test_the_prefill_allowance_is_the_speed_times_the_target_and_the_floor_half_the_window():
    limits = limits_for(100_000, 1000.0, 4096, BudgetOptions())
    assert (limits.prefill, limits.window, limits.floor) == (8000, 100_000 - 4096, (100_000 - 4096) // 2)
    assert limits_for(100_000, 1000.0, 4096, BudgetOptions(target_prefill_seconds=None)).prefill is None
    assert limits_for(100_000, 1000.0, 4096, BudgetOptions(target_prefill_seconds=0)).prefill is None
    assert limits_for(100_000, 1000.0, 4096, BudgetOptions(prefill_floor=0.25)).floor == 23_976


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


def marker_of(cut: str) -> tuple[str, str, str]:
    """(head, marker line, tail) of a shortened text."""
    head, found, rest = cut.partition("[… ")
    assert found, cut
    marker, _, tail = ("[… " + rest).partition("\n")
    return head, marker, tail


def test_shorten_keeps_head_and_tail_around_a_line_counting_the_lines_left_out():
    text = lines("x", 400)
    cut = shorten(text, 500, count, keep_head_ratio=0.6)
    head, marker, tail = marker_of(cut)
    assert text.startswith(head) and text.endswith(tail)
    assert head.endswith("\n") and text[len(text) - len(tail) - 1] == "\n"
    left_out = text[len(head): len(text) - len(tail)]
    assert marker == f"[… {left_out.count(chr(10))} lines left out by trimkit …]"
    assert left_out.count("\n") == 400 - head.count("\n") - tail.count("\n") > 300
    assert 0.5 < len(head) / (len(head) + len(tail)) < 0.7
    assert 400 < count(cut) <= 500


def test_shorten_leaves_short_text_alone():
    text = lines("y", 10)
    assert shorten(text, 500, count) is text


def test_shorten_without_line_breaks_cuts_at_the_exact_points_and_counts_characters():
    text = "z" * 10_000
    cut = shorten(text, 1000, count, keep_head_ratio=0.5)
    head, marker, tail = marker_of(cut)
    head = head.removesuffix("\n")
    assert set(head) == {"z"} and set(tail) == {"z"} and abs(len(head) - len(tail)) <= 1
    assert marker == f"[… {10_000 - len(head) - len(tail):,} characters left out by trimkit …]"


def test_list_result_is_cut_as_one_text_and_keeps_other_blocks():
    image = ImageBlock(source={"type": "base64", "media_type": "image/png", "data": "AAAA"})
    block = ToolResultBlock(
        tool_use_id="t", content=[TextBlock(text=lines("p", 200)), image, TextBlock(text=lines("q", 200))]
    )
    short = shorten_result(block, 300, count, 0.6)
    assert isinstance(short.content[0], TextBlock) and short.content[1:] == [image]
    assert short.content[0].text.startswith("p line 0") and short.content[0].text.endswith("q line 199: some output of the tool\n")
    assert "lines left out by trimkit" in short.content[0].text
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


def test_long_results_are_left_whole_while_the_window_holds_them():
    roomy = ModelProfile(name="roomy", context_window=100_000, prefill_tps=1.0)  # a prefill target far out of reach
    req = request(exchange(1, lines("big", 300)), last="done?")
    result = run_budget(req, roomy, tool_result_max_tokens=400)
    assert result.carry.budget.cut_results == 0
    assert result.request.messages[2] == req.messages[2]


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


def session_of(requests, profile: ModelProfile, options: BudgetOptions = BudgetOptions(), cached=lambda k: 0,
               pipeline: Pipeline | None = None) -> list[tuple[BudgetResult, MessagesRequest]]:
    """Each request of a session trimmed (by the whole pipeline when one is given, else the budget alone)."""
    out = []
    for k, raw in enumerate(requests):
        req = raw if isinstance(raw, MessagesRequest) else decode_request(raw)
        if pipeline is not None:
            result = pipeline.trim(req, profile, cached_tokens=cached(k))
            out.append((result.carry.budget, result.request))
        else:
            fitted = fit(req, profile, options, cached(k))
            out.append((fitted.result(), fitted.request))
    return out


def cut_state(budget: BudgetResult, req: MessagesRequest) -> tuple[int, bool, bool]:
    """Turns dropped, tool results shortened, and whether the opening message went too (the last resort)."""
    opening = next(m for m in req.messages if m.role != "system")
    return budget.dropped_turns, budget.cut_results > 0, texts(opening)[0].startswith("[Earlier conversation")


def cut_events(trimmed) -> list[int]:
    """The requests whose cut differs from the one before."""
    states = [cut_state(*t) for t in trimmed]
    return [k for k in range(1, len(states)) if states[k] != states[k - 1]]


def assert_sticky(trimmed) -> None:
    """The cut never moves back, and between moves each prompt starts with the one before."""
    for k in range(1, len(trimmed)):
        (before, a), (after, b) = trimmed[k - 1], trimmed[k]
        assert after.dropped_turns >= before.dropped_turns or after.cut_results > before.cut_results, k
        if cut_state(after, b) == cut_state(before, a):
            assert prompt_text(b).startswith(prompt_text(a)), k


def test_cut_stays_put_as_the_conversation_grows_and_moves_half_the_limit_at_a_time():
    exchanges = [exchange(i, lines(str(i), 4 + i % 5)) for i in range(60)]
    profile = ModelProfile(name="tiny", context_window=6000, prefill_tps=1000.0)
    limit = limits_for(6000, None, 64000, NO_PREFILL).window
    trimmed = session_of([request(*exchanges[:n]) for n in range(1, 60)], profile, NO_PREFILL)
    assert_sticky(trimmed)
    events = cut_events(trimmed)
    assert trimmed[-1][0].dropped_turns > 0 and 2 <= len(events) <= 6
    for k in events[1:]:
        assert trimmed[k][0].prompt_tokens < limit * 0.6  # down to about half the limit


def test_a_long_agent_session_is_cut_rarely_and_keeps_its_prefix_between_cuts():
    profile = ModelProfile.for_tier("small", context_window=16384, prefill_tps=1e9)  # the window alone binds
    trimmed = session_of(agent_session(100), profile, pipeline=PIPELINE)
    assert_sticky(trimmed)
    events = cut_events(trimmed)
    assert 4 <= len(events) <= 12
    assert min(b - a for a, b in zip(events, events[1:])) >= 5
    for budget, req in trimmed:
        assert_valid(req.messages)
        assert budget.prompt_tokens <= 16384 - 4096


def recorded_claude_code_turns() -> list:
    """A request of each recorded Claude Code version that ends with a tool result (none when nothing is recorded)."""
    from trimkit.request_kind import RequestKind
    from trimkit.testing.recorder import load_recordings

    found = {}
    for recording in load_recordings():
        body = recording.body
        if (recording.client == "claude-code" and recording.is_messages and recording.kind is RequestKind.MAIN
                and body.get("tools") and body["messages"][-1]["role"] == "user"
                and any(b.get("type") == "tool_result" for b in body["messages"][-1]["content"])):
            found.setdefault(recording.version, recording)
    return list(found.values())


def test_a_long_session_grown_from_a_recorded_claude_code_request_keeps_its_cut_between_moves():
    recordings = recorded_claude_code_turns()
    if not recordings:
        pytest.skip("no Claude Code recordings in the cache (python -m trimkit.testing.recorder makes them)")
    profile = ModelProfile.for_tier("small", context_window=16384, prefill_tps=1e9)
    for recording in recordings:
        trimmed = session_of(grown_from(recording.body, 80), profile, pipeline=PIPELINE)
        assert_sticky(trimmed)
        events = cut_events(trimmed)
        assert 3 <= len(events) <= 12, recording.id
        for budget, req in trimmed:
            assert_valid(req.messages)
            assert budget.prompt_tokens <= 16384 - 4096
            assert recording.facts["user_words"] in "".join(texts(next(m for m in req.messages if m.role == "user")))


def test_the_note_says_how_many_turns_went_and_to_read_files_again():
    req = request(*(exchange(i, lines(str(i), 12)) for i in range(30)), last="what now?")
    fitted = fit(req, TINY, NO_PREFILL)
    note = texts(fitted.request.messages[0])[-1]
    assert note == omitted_note(fitted.dropped_turns) and str(fitted.dropped_turns) in note
    assert "read files again" in note and "\n" not in note


# --------------------------------------------------------------------------- steps


def test_the_step_is_half_the_limit_for_a_power_of_two_window_less_a_quarter():
    share = Fraction(1, 2)
    for window in (16384, 32768, 65536, 131072, 262144):
        limit = window * 3 // 4
        assert step_for(limit, share) == limit // 2
    assert step_for(8192, share) == 6144 and step_for(30720, share) == 24576  # otherwise within 0.4–0.8 of it


def test_a_step_drop_is_a_whole_number_of_steps_that_never_grows_with_the_limit():
    for total in range(1, 1500, 7):
        previous = None
        for limit in range(1, 1500):
            drop = step_drop(total, limit, 0.5)
            assert total - drop <= limit and (drop == 0) == (total <= limit)
            assert previous is None or drop <= previous, (total, limit)
            previous = drop


@given(st.integers(1, 10**7), st.integers(1, 10**7), st.integers(1, 10**7), st.sampled_from([0.5, 0.25, 0.3, 1.0]))
def test_step_drop_never_grows_with_the_limit(total, limit, more, share):
    small, large = step_drop(total, limit, share), step_drop(total, limit + more, share)
    assert large <= small and total - small <= limit


# --------------------------------------------------------------------------- the too-long error


def test_too_long_last_message_raises_with_counts():
    req = request(exchange(1, "ok"), last="x " * 4000, max_tokens=512)
    with pytest.raises(PromptTooLong) as info:
        run_budget(req, TINY)
    tokens = tokens_of(req)
    assert (info.value.tokens, info.value.maximum) == (tokens, 2000 - 512)
    assert str(info.value) == f"prompt is too long: {tokens} tokens > {2000 - 512} maximum"


def test_the_prefill_target_cuts_like_a_smaller_window_but_never_below_its_floor():
    slow = ModelProfile(name="slow", context_window=20_000, prefill_tps=10.0)  # 80 tokens in 8 seconds
    limits = limits_for(20_000, 10.0, 64000, BudgetOptions())
    req = request(*(exchange(i, lines(str(i), 20)) for i in range(40)), last="y " * 300)
    assert tokens_of(req) > limits.floor
    budget = run_budget(req, slow).carry.budget
    assert budget.budget_tokens == limits.floor
    assert 0.6 * limits.floor < budget.prompt_tokens <= limits.floor
    assert budget.dropped_turns > 0


def test_a_prefill_target_out_of_reach_leaves_a_short_conversation_alone():
    slow = ModelProfile(name="slow", context_window=20_000, prefill_tps=10.0)
    req = request(*(exchange(i, lines(str(i), 12)) for i in range(10)), last="y " * 1500)
    result = run_budget(req, slow)
    assert result.carry.budget.dropped_turns == 0
    assert encode(msgspec.structs.replace(result.request, max_tokens=64000)) == encode(req)


def test_more_cached_tokens_keep_more_and_never_less():
    profile = ModelProfile(name="tiny", context_window=40_000, prefill_tps=100.0)  # 800 tokens in 8 seconds
    req = request(*(exchange(i, lines(str(i), 12)) for i in range(120)), last="go")
    kept = [run_budget(req, profile, cached_tokens=c).carry.budget for c in range(0, 40_000, 1_000)]
    assert kept[0].dropped_turns > 0 and kept[-1].dropped_turns == 0
    assert all(a.dropped_turns >= b.dropped_turns for a, b in zip(kept, kept[1:]))
    assert all(b.cached_tokens <= 100_000 for b in kept)


def test_the_issues_session_keeps_a_working_conversation_at_a_slow_prefill():
    """Issue 13: at 500 tokens/s in a 32,768 window, request 14 kept 31,415 tokens and request 15
    kept 1,767; more cached tokens kept less. Now the prefill target acts as a window half as
    large: no request keeps almost nothing, and 5,000 cached tokens never keep less."""
    profile = ModelProfile.for_tier("small", context_window=32768, prefill_tps=500.0)
    limits = limits_for(32768, 500.0, 32000, BudgetOptions())
    cold = session_of(cc.session_prefixes(45), profile, pipeline=PIPELINE)
    warm = session_of(cc.session_prefixes(45), profile, pipeline=PIPELINE, cached=lambda k: 5000)
    assert any(c.dropped_turns for c, _ in cold)
    for (c, _), (w, _) in zip(cold, warm):
        assert w.dropped_turns <= c.dropped_turns
        if c.dropped_turns:
            assert c.prompt_tokens > 0.6 * limits.floor


class Backend:
    """What a server offers the budget through the profile: exact counts, its cache, a memory of cuts.

    ``per_message`` tokens are added to each message's count, as a chat template's markers
    add them. The cache holds the prompt the last answered request was trimmed to, as
    plain text; ``cached_prefix`` counts the characters a candidate shares with it.
    """

    def __init__(self, extra_tokens: int = 0, cached: int | None = 0, per_message: int = 0,
                 remember: bool = False):
        self.extra_tokens, self.cached, self.per_message = extra_tokens, cached, per_message
        self.recent_cuts = RecentCuts() if remember else None
        self.counted: list[MessagesRequest] = []
        self.asked: list[MessagesRequest] = []
        self.held = ""

    def profile(self, **fields) -> ModelProfile:
        return ModelProfile(name="served", count_prompt=self.count_prompt, cached_prefix=self.cached_prefix,
                            recent_cuts=self.recent_cuts, **fields)

    def count_prompt(self, req: MessagesRequest) -> int:
        self.counted.append(req)
        return tokens_of(req) + self.extra_tokens + self.per_message * len(req.messages)

    def cached_prefix(self, req: MessagesRequest) -> int:
        self.asked.append(req)
        if self.cached is not None:
            return self.cached
        text = prompt_text(req)
        shared = next((i for i, (a, b) in enumerate(zip(text, self.held)) if a != b), min(len(text), len(self.held)))
        return count(text[:shared])

    def answer(self, req: MessagesRequest) -> None:
        """Generate for ``req``: the cache now holds its prompt."""
        self.held = prompt_text(req)


def test_the_backends_count_of_the_final_prompt_sets_max_tokens():
    backend = Backend(extra_tokens=40)
    req = request(exchange(1, lines("a", 5)), last="thanks")
    result = run_budget(req, backend.profile(context_window=2000, prefill_tps=1000.0))
    assert [counted.messages for counted in backend.counted] == [result.request.messages]
    exact = tokens_of(req) + 40
    assert (result.carry.budget.prompt_tokens, result.carry.budget.max_tokens) == (exact, 2000 - exact)
    assert result.request.max_tokens == 2000 - exact
    assert backend.asked == []  # the prefill target was met, so the cache was not asked


def test_a_prompt_the_backend_counts_beyond_the_window_is_too_long():
    backend = Backend(extra_tokens=2000)
    req = request(exchange(1, "ok"), last="hi", max_tokens=100)
    with pytest.raises(PromptTooLong) as info:
        run_budget(req, backend.profile(context_window=2000, prefill_tps=1000.0))
    smallest = backend.counted[-1]  # every droppable turn dropped first
    assert smallest.messages[-1] == req.messages[-1] and len(smallest.messages) < len(req.messages)
    assert (info.value.tokens, info.value.maximum) == (tokens_of(smallest) + 2000, 1999)


def test_what_a_chat_template_adds_to_each_message_is_cut_for_not_refused():
    """Thousands of short turns: the measure misses the template's markers, the backend's count does not."""
    req = request(*(exchange(i) for i in range(1500)), last="and now?", max_tokens=4096)
    window = 40_000
    assert tokens_of(req) < window - 4096 < tokens_of(req) + 8 * len(req.messages)
    backend = Backend(per_message=8)
    budget = run_budget(req, backend.profile(context_window=window, prefill_tps=1e9)).carry.budget
    assert budget.dropped_turns > 0 and budget.prompt_tokens <= window - 1024
    assert budget.max_tokens == min(4096, window - budget.prompt_tokens)


def test_the_cache_is_asked_only_when_the_prefill_target_may_bind_and_once():
    req = request(*(exchange(i, lines(str(i), 12)) for i in range(5)), last="go")
    fields = {"context_window": 100_000, "prefill_tps": 20.0}  # 160 tokens in 8 seconds
    cold_backend, warm_backend = Backend(cached=0), Backend(cached=10**6)
    cold = run_budget(req, cold_backend.profile(**fields))
    warm = run_budget(req, warm_backend.profile(**fields))
    uncut = encode(msgspec.structs.replace(req, max_tokens=None))
    for backend in (cold_backend, warm_backend):
        (asked,) = backend.asked  # the window alone keeps everything: the whole prompt is the candidate
        assert encode(msgspec.structs.replace(asked, max_tokens=None)) == uncut
    assert cold.carry.budget.cached_tokens == 0 and warm.carry.budget.cached_tokens == 10**6
    assert warm.carry.budget.dropped_turns == 0
    assert encode(msgspec.structs.replace(warm.request, max_tokens=None)) == uncut
    fast = Backend(cached=0)
    run_budget(req, fast.profile(context_window=100_000, prefill_tps=1e9))
    assert fast.asked == []


def test_a_cut_made_for_the_prefill_target_stays_where_the_backend_cached_it():
    """A slow model: after a cold start the prefill target cuts deep; turn after turn the
    backend holds that prompt, and with the cut remembered the budget keeps it there."""
    requests = [decode_request(r) for r in read_session(90, result_chars=900)[30:]]  # the backend starts cold
    fields = {"context_window": 16384, "prefill_tps": 100.0}  # 800 tokens in 8 seconds
    moves = {}
    for remember in (False, True):
        backend = Backend(cached=None, remember=remember)
        profile = backend.profile(**fields)
        trimmed = []
        for req in requests:
            fitted = fit(req, profile, BudgetOptions())
            backend.answer(fitted.request)
            trimmed.append((fitted.result(), fitted.request))
        assert_sticky(trimmed)
        moves[remember] = len(cut_events(trimmed))
    assert moves[True] < moves[False]


def test_a_prefill_cut_is_not_taken_back_when_the_next_turn_measures_a_faster_prefill():
    """At the window's first cut event the prefill speed measured last is slow (a busy machine), so
    the target cuts deeper; the next turn measures fast (the deep cut's own long prefill, the
    machine quiet again). The cut stays where the backend holds the prompt until the window
    overtakes it: one event, not a pair of them a turn apart that breaks the prompt's front twice."""
    requests = [decode_request(r) for r in read_session(60, result_chars=900)]
    window_only = [fit(r, ModelProfile(name="w", context_window=16384), NO_PREFILL).dropped_turns for r in requests]
    first = next(k for k, dropped in enumerate(window_only) if dropped)
    backend = Backend(cached=None, remember=True)
    trimmed = []
    for k, req in enumerate(requests):
        measured = 100.0 if k == first else 1e9  # tokens/s: 800 in 8 seconds at the event, no limit after
        fitted = fit(req, backend.profile(context_window=16384, prefill_tps=measured), BudgetOptions())
        backend.answer(fitted.request)
        trimmed.append((fitted.result(), fitted.request))
    dropped = [budget.dropped_turns for budget, _ in trimmed]
    assert dropped[first] > window_only[first]
    overtaken = next(k for k in range(first, len(requests)) if window_only[k] >= dropped[first])
    assert overtaken > first + 1
    assert dropped[first:overtaken] == [dropped[first]] * (overtaken - first)
    assert dropped[overtaken:] == window_only[overtaken:]
    assert_sticky(trimmed)


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
    limits = limits_for(window, tps, max_tokens, options)
    short = shorten_results(req, result_cap, count)[0] if result_cap and tokens_of(req) > limits.shorten_above else req
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
    assert out.messages[-1] in (req.messages[-1], short.messages[-1])  # the last user turn is never dropped
    assert fitted.prompt_tokens == tokens_of(out) <= limits.maximum
    assert fitted.budget_tokens <= limits.window
    if fitted.prompt_tokens > limits.window:  # only with every droppable turn gone
        assert fitted.dropped_turns == len(Conversation.of(short.messages).units)
    assert 1 <= out.max_tokens == fitted.max_tokens <= window - fitted.prompt_tokens
    assert encode(fit(req, profile, options, cached).request) == encode(out)  # deterministic
    prefill_met = limits.prefill is None or tokens_of(req) <= limits.prefill + cached
    if tokens_of(req) <= limits.window and prefill_met:
        assert encode(msgspec.structs.replace(out, max_tokens=req.max_tokens)) == encode(req)
        return
    originals = [encode(m) for m in short.messages]
    for message in out.messages:
        if encode(message) not in originals:
            assert message.role == "user" and texts(message)[-1].startswith("[Earlier conversation (")


def fits(req: MessagesRequest, profile: ModelProfile, options: BudgetOptions, cached: int = 0) -> Fitted | None:
    try:
        return fit(req, profile, options, cached)
    except PromptTooLong:
        return None


@given(
    spec=conversation_strategy(),
    windows=st.tuples(st.integers(300, 8000), st.integers(0, 8000)),
    tps=st.sampled_from([20.0, 100.0, 1e9]),
    cached=st.integers(0, 4000),
    drop_step=st.sampled_from([0.5, 0.25, 1.0, 2]),
    max_tokens=st.sampled_from([None, 1000, 64000]),
)
def test_a_larger_window_never_keeps_less(spec, windows, tps, cached, drop_step, max_tokens):
    req = build(spec, 20, 20, False, max_tokens, True)
    options = BudgetOptions(drop_step=drop_step, tool_result_max_tokens=300)
    small, large = windows[0], windows[0] + windows[1]
    smaller = fits(req, ModelProfile(name="p", context_window=small, prefill_tps=tps), options, cached)
    larger = fits(req, ModelProfile(name="p", context_window=large, prefill_tps=tps), options, cached)
    if smaller is not None:
        assert larger is not None and larger.dropped_turns <= smaller.dropped_turns


@given(
    spec=conversation_strategy(),
    window=st.integers(300, 8000),
    tps=st.sampled_from([10.0, 50.0, 200.0]),
    cached=st.tuples(st.integers(0, 5000), st.integers(0, 5000)),
    drop_step=st.sampled_from([0.5, 0.25, 2]),
    floor=st.sampled_from([0.5, 0.1, 1.0]),
)
def test_more_cached_tokens_never_keep_less(spec, window, tps, cached, drop_step, floor):
    req = build(spec, 20, 20, False, 4096, True)
    options = BudgetOptions(drop_step=drop_step, prefill_floor=floor, tool_result_max_tokens=300)
    profile = ModelProfile(name="p", context_window=window, prefill_tps=tps)
    fewer = fits(req, profile, options, cached[0])
    more = fits(req, profile, options, cached[0] + cached[1])
    assert (fewer is None) == (more is None)
    if fewer is not None:
        assert more.dropped_turns <= fewer.dropped_turns


@given(
    spec=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(0, 60), st.integers(0, 120)),
                  min_size=2, max_size=40),
    window=st.integers(1500, 8000),
    drop_step=st.sampled_from([0.5, 0.25, 3]),
    prefill=st.sampled_from([None, (300.0, 0), (300.0, 3000)]),
)
def test_a_growing_conversation_keeps_its_cut_until_the_window_moves_it_a_whole_step(spec, window, drop_step, prefill):
    options = BudgetOptions(drop_step=drop_step, tool_result_max_tokens=400,
                            target_prefill_seconds=8.0 if prefill else None)
    tps, cached = prefill or (None, 0)
    profile = ModelProfile(name="p", context_window=window, prefill_tps=tps)
    requests = [build(spec[:n], 20, 20, False, 4096, False) for n in range(1, len(spec) + 1)]
    trimmed = []
    for req in requests:
        fitted = fits(req, profile, options, cached)
        if fitted is None:  # one turn alone too long for the window: the session starts again after it
            trimmed = []
            continue
        trimmed.append((fitted.result(), fitted.request))
    assert_sticky(trimmed)
    if isinstance(drop_step, float):
        limit = limits_for(window, tps, 4096, options).window
        step = step_for(limit, Fraction(drop_step if not prefill else drop_step / 2))
        biggest = max((tokens_of(msgspec.structs.replace(r, messages=r.messages[-2:])) for r in requests), default=0)
        for k in cut_events(trimmed):
            (before, a), (after, b) = trimmed[k - 1], trimmed[k]
            if after.cut_results == before.cut_results and after.dropped_turns > before.dropped_turns:
                freed = tokens_of(a) - (tokens_of(b) - (tokens_of(msgspec.structs.replace(b, messages=b.messages[-2:]))))
                assert freed >= step // 2 - biggest - count(omitted_note(99)) - 8


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
    assert budget.dropped_turns > 0
    assert budget.prompt_tokens == tokens_of(result.request, profile) <= budget.budget_tokens
    assert_valid(out)
    assert out[-1] == req.messages[-1]
    assert cc.SESSION_PROMPT in "".join(texts(out[0]))
    assert out[1] == req.messages[1] and out[1].role == "system"


def test_claude_code_session_prefix_holds_between_cuts():
    small = ModelProfile.for_tier("small", context_window=16384)
    options = BudgetOptions(tool_result_max_tokens=4000, target_prefill_seconds=None)
    trimmed = session_of([without_tools(raw) for raw in cc.session_prefixes(40)], small, options)
    assert_sticky(trimmed)
    cut = [k for k, t in enumerate(trimmed) if cut_state(*t) != (0, False, False)]
    assert len(cut) > 20 and 0 < len(cut_events(trimmed)) < len(cut) / 2


def test_fitting_session_reuses_the_pipelines_measurements(monkeypatch):
    import trimkit.plugins.budget.fitting as budget_module

    req = decode_request(cc.session(40))
    profile = ModelProfile(name="big", context_window=1_000_000, prefill_tps=1e9)
    monkeypatch.setattr(budget_module, "Measure", lambda *a, **k: pytest.fail("the budget stage measured on its own"))
    result = run_budget(req, profile)
    assert result.carry.budget.dropped_turns == 0
    assert result.report.stages[-1].tokens_after == result.carry.budget.prompt_tokens