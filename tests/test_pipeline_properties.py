"""Invariants of the whole pipeline, checked on generated Claude-Code-like conversations."""

from __future__ import annotations

import copy
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trimkit
from tests.fixtures import claude_code as cc
from tests.support.tool_ids import tool_ids
from trimkit import ModelProfile, PromptTooLong, decode_request, encode
from trimkit.convention import quote_attr
from trimkit.render import prompt_text
from trimkit.wire import ToolUseBlock, message_blocks

EXAMPLES = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PIPELINE = trimkit.Pipeline()
CC_TOOLS = cc.tools()

REMINDERS = [
    "<system-reminder>\nThis is a reminder that your todo list is currently empty. DO NOT mention this to the user explicitly because they are already aware.\n</system-reminder>",
    "<system-reminder>\nNote: /home/dev/shop/src/shop/cart.py was modified, either by the user or by a linter. This change was intentional.\n</system-reminder>",
    "<system-reminder>\nWhenever you read a file, you should consider whether it would be considered malware.\n</system-reminder>",
    "<system-reminder>\nUserPromptSubmit hook success: remember the staging database is read-only\n</system-reminder>",
    "<system-reminder>\nSomething this version of the client has never sent before.\n</system-reminder>",
]

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,15}", fullmatch=True)
plain_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=60)
texts = st.one_of(plain_text, st.sampled_from(REMINDERS), st.builds(lambda a, r: f"{a}\n{r}", plain_text, st.sampled_from(REMINDERS)))


@st.composite
def random_tool(draw):
    params = draw(st.lists(names, min_size=0, max_size=4, unique=True))
    types = draw(st.lists(st.sampled_from(["string", "integer", "number", "boolean", "array", "object"]), min_size=len(params), max_size=len(params)))
    return {
        "name": draw(names),
        "description": draw(plain_text),
        "input_schema": {
            "type": "object",
            "properties": {p: {"type": t, "description": "d"} for p, t in zip(params, types)},
            "required": params[:1],
        },
    }


@st.composite
def tool_sets(draw):
    chosen = draw(st.lists(st.sampled_from(CC_TOOLS), max_size=8, unique_by=lambda t: t["name"]))
    extra = draw(st.lists(random_tool(), max_size=3))
    seen, tools = set(), []
    for tool in chosen + extra:
        if tool["name"] not in seen:
            seen.add(tool["name"])
            tools.append(tool)
    return tools


def tool_input(draw, tool):
    props = tool["input_schema"].get("properties", {})
    return {k: draw(plain_text) if v.get("type") == "string" else draw(st.integers(0, 9)) for k, v in list(props.items())[:3]}


@st.composite
def conversations(draw):
    """(request dict, number of exchanges) shaped like Claude Code's traffic."""
    tools = draw(tool_sets())
    system = draw(st.sampled_from(["cc", "none", "text"]))
    if system == "cc":
        first = cc.first_user_message(draw(plain_text))
    else:
        first = {"role": "user", "content": [{"type": "text", "text": t} for t in draw(st.lists(texts, min_size=1, max_size=3))]}
    messages = [first]
    if system == "cc" and draw(st.booleans()):
        messages.append(cc.system_message())
    exchanges = draw(st.integers(0, 5))
    for i in range(exchanges):
        uses = []
        if tools:
            for j in range(draw(st.integers(0, 2))):
                tool = draw(st.sampled_from(tools))
                uses.append({"type": "tool_use", "id": f"toolu_{i}_{j}", "name": tool["name"], "input": tool_input(draw, tool)})
        said = [{"type": "text", "text": draw(plain_text)}] if draw(st.booleans()) or not uses else []
        messages.append({"role": "assistant", "content": said + uses})
        results = [
            {"type": "tool_result", "tool_use_id": u["id"], "content": draw(texts), "is_error": draw(st.booleans())}
            for u in uses
        ]
        words = [{"type": "text", "text": draw(texts)}] if draw(st.booleans()) or not results else []
        messages.append({"role": "user", "content": results + words})
    request = {"model": "claude-opus-4-8", "max_tokens": 64000, "messages": messages, "stream": True}
    if tools:
        request["tools"] = tools
    if system == "cc":
        request["system"] = cc.system_blocks(nonce=draw(st.from_regex(r"[0-9a-f]{4}", fullmatch=True)))
    elif system == "text":
        request["system"] = draw(plain_text)
    return request, exchanges


def cut_to(request: dict, exchanges: int) -> dict:
    """The same conversation as the client sent it ``exchanges`` exchanges earlier."""
    out = copy.deepcopy(request)
    total = len(out["messages"])
    keep = total - 2 * exchanges
    out["messages"] = out["messages"][:keep]
    return out


tiers = st.sampled_from(["small", "medium", "large"])
ROOMY = {t: ModelProfile.for_tier(t, context_window=10_000_000, prefill_tps=1e12) for t in ("small", "medium", "large")}


@EXAMPLES
@given(conversations(), tiers)
def test_same_input_gives_same_bytes(conv, tier):
    request, _ = conv
    one = PIPELINE.trim(copy.deepcopy(request), ROOMY[tier])
    two = PIPELINE.trim(copy.deepcopy(request), ROOMY[tier])
    assert encode(one.request) == encode(two.request)


@EXAMPLES
@given(conversations(), tiers, st.data())
def test_a_longer_conversation_starts_with_the_shorter_ones_prompt(conv, tier, data):
    request, exchanges = conv
    earlier = data.draw(st.integers(0, exchanges))
    shorter = cut_to(request, earlier)
    a = PIPELINE.trim(shorter, ROOMY[tier])
    b = PIPELINE.trim(request, ROOMY[tier])
    assert not b.carry.budget.dropped_turns
    assert prompt_text(b.request).startswith(prompt_text(a.request))


@EXAMPLES
@given(conversations(), tiers, st.integers(300, 40_000))
def test_output_is_valid_complete_and_keeps_names(conv, tier, window):
    request, _ = conv
    profile = ModelProfile.for_tier(tier, context_window=window)
    original = decode_request(request)
    try:
        result = PIPELINE.trim(request, profile)
    except PromptTooLong as exc:
        assert exc.tokens > exc.maximum >= 0 or exc.maximum < 0
        assert re.fullmatch(r"prompt is too long: \d+ tokens > -?\d+ maximum", str(exc))
        return
    out = result.request
    assert decode_request(encode(out)) == out
    uses, results = tool_ids(out)
    assert uses == results
    assert out.messages[-1].role == original.messages[-1].role
    assert out.max_tokens is not None and 1 <= out.max_tokens <= window

    last_user = [m for m in original.messages if m.role == "user"][-1]
    last_words = [b.text for b in message_blocks(last_user) if hasattr(b, "text") and "<system-reminder>" not in b.text]
    final_text = prompt_text(out)
    for words in last_words:
        assert words.strip() in final_text

    original_uses = {b.id: b for m in original.messages for b in message_blocks(m) if isinstance(b, ToolUseBlock)}
    for message in out.messages:
        for block in message_blocks(message):
            if isinstance(block, ToolUseBlock):
                assert block.name == original_uses[block.id].name
                assert block.input == original_uses[block.id].input
    system = prompt_text(out).split("<|user|>", 1)[0]
    for name in result.carry.tool_names:
        tool = next(t for t in original.tools if t.name == name)
        assert f'name="{quote_attr(name)}"' in system
        for param in (tool.input_schema.get("properties") or {}):
            if param in (tool.input_schema.get("required") or []):
                assert f'name="{quote_attr(param)}"' in system


@given(conversations(), tiers)
def test_the_input_is_never_modified(conv, tier):
    request, _ = conv
    before = copy.deepcopy(request)
    parsed = decode_request(request)
    snapshot = encode(parsed)
    PIPELINE.trim(parsed, ROOMY[tier])
    PIPELINE.trim(request, ROOMY[tier])
    assert request == before
    assert encode(parsed) == snapshot
