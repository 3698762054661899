"""The client_noise stage: billing header, <total_tokens> markers and cache_control go."""

from __future__ import annotations

import copy

import msgspec
import pytest

from tests.fixtures import claude_code as cc
from trimkit import ModelProfile, Pipeline, decode_request, encode
from trimkit.stage import TrimResult
from trimkit.wire import TextBlock, ToolResultBlock, UnknownBlock, system_text

PIPELINE = Pipeline(entry_points=False)

EPHEMERAL = {"type": "ephemeral"}


def billing(nonce: str) -> str:
    return f"x-anthropic-billing-header: cc_version=2.1.40.f3a; cc_entrypoint=cli; cch={nonce};"


def request(*messages: dict, system: object = None, tools: list | None = None) -> dict:
    body: dict = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": list(messages)}
    if system is not None:
        body["system"] = system
    if tools is not None:
        body["tools"] = tools
    return body


def run(body: dict | bytes | msgspec.Struct) -> TrimResult:
    return PIPELINE.run_stage("client_noise", body, ModelProfile.for_tier("small"))


def test_billing_header_block_is_dropped_and_recorded():
    system = [
        {"type": "text", "text": billing("8c1d2")},
        {"type": "text", "text": "You are a coding assistant.", "cache_control": EPHEMERAL},
    ]
    result = run(request({"role": "user", "content": "hi"}, system=system))
    assert system_text(result.request) == "You are a coding assistant."
    assert result.report.removed["billing_header"] == len(billing("8c1d2"))


def test_billing_header_line_of_a_string_system_prompt_is_dropped():
    result = run(request({"role": "user", "content": "hi"}, system=billing("77") + "\nBe brief."))
    assert result.request.system == "Be brief."


def test_nonce_variation_gives_identical_bytes():
    outputs = {encode(run(cc.first_request(nonce=nonce)).request) for nonce in ("0001", "9f3e", "a7b2c")}
    assert len(outputs) == 1
    assert b"x-anthropic-billing-header" not in outputs.pop()


@pytest.mark.parametrize(
    "marker",
    ["<total_tokens>1000000 tokens left</total_tokens>", "<total_tokens>183,214 tokens left</total_tokens>"],
)
def test_total_tokens_markers_go_from_every_kind_of_text(marker):
    body = request(
        {"role": "user", "content": f"fix the bug\n{marker}"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": f"line one\n{marker}\nline two"},
                {"type": "text", "text": f"<system-reminder>\n{marker}\n</system-reminder>\nthanks"},
            ],
        },
        system=[{"type": "text", "text": f"Be brief.\n{marker}"}],
    )
    result = run(body)
    out = encode(result.request)
    assert b"total_tokens" not in out and b"tokens left" not in out
    messages = result.request.messages
    assert messages[0].content == "fix the bug\n"
    assert messages[2].content[0].content == "line one\nline two"
    assert messages[2].content[1].text == "thanks"  # the reminder that only held the marker went too
    assert system_text(result.request) == "Be brief.\n"
    assert result.report.removed["total_tokens"] > 4 * len(marker)


def test_text_emptied_by_markers_never_leaves_an_empty_message_or_block():
    marker = "<total_tokens>5000 tokens left</total_tokens>"
    body = request(
        {"role": "user", "content": [{"type": "text", "text": marker}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": marker}]}]},
    )
    messages = run(body).request.messages
    assert messages[0].content == [TextBlock(text="(no content)")]
    assert messages[2].content == [ToolResultBlock(tool_use_id="t1", content="")]


def test_cache_control_is_stripped_everywhere():
    body = request(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look", "cache_control": EPHEMERAL},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}, "cache_control": EPHEMERAL},
                {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}, "cache_control": EPHEMERAL},
            ],
        },
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}, "cache_control": EPHEMERAL}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "data", "cache_control": EPHEMERAL}],
                    "cache_control": EPHEMERAL,
                }
            ],
        },
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        tools=[{"name": "Read", "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}],
    )
    result = run(body)
    assert b"cache_control" not in encode(result.request)
    assert isinstance(result.request.messages[0].content[2], UnknownBlock)
    assert result.request.messages[0].content[2].data["name"] == "web_search"
    assert result.report.removed["cache_control"] == 8 * len('"cache_control":{"type":"ephemeral"}') + len(',"ttl":"1h"')


def test_moving_cache_marker_leaves_earlier_turns_byte_identical():
    """cache_control moves to the newest block each turn; without it a turn's bytes never change."""
    prefixes = cc.session_prefixes(turns=6)
    trimmed = [run(body).request for body in prefixes]
    for shorter, longer in zip(trimmed, trimmed[1:]):
        n = len(shorter.messages)
        assert encode(longer.messages[:n]) == encode(shorter.messages)
        assert encode(longer.system) == encode(shorter.system)


def test_fixture_session_keeps_everything_but_the_noise():
    body = cc.session(turns=12)
    original = decode_request(body)
    result = run(body)
    assert b"cache_control" not in encode(result.request)
    assert len(result.request.messages) == len(original.messages)
    assert [t.name for t in result.request.tools] == [t.name for t in original.tools]
    assert system_text(result.request) == system_text(original).split("\n\n", 1)[1]
    assert set(result.report.removed) == {"billing_header", "cache_control"}


def test_the_request_handed_in_is_not_modified():
    body = cc.session(turns=4)
    before_dict = copy.deepcopy(body)
    original = decode_request(body)
    before = encode(original)
    result = run(original)
    assert result.request is not original
    assert encode(original) == before
    assert body == before_dict


def test_a_clean_request_comes_back_as_the_same_object():
    original = decode_request(request({"role": "user", "content": "hi"}, system="Be brief."))
    result = run(original)
    assert result.request is original and result.report.removed == {}


def test_runs_first_in_the_default_pipeline_and_reports_removals():
    pipeline = Pipeline(entry_points=False)
    assert pipeline.stages[0].name == "client_noise" and pipeline.stages[0].order == 100
    result = pipeline.trim(cc.first_request(), ModelProfile.for_tier("large"))
    report = next(s for s in result.report.stages if s.name == "client_noise")
    assert report.removed["billing_header"] == len(cc.billing_header("0001"))
    assert report.chars_after < report.chars_before
    assert msgspec.json.decode(encode(result.request))["model"] == "claude-opus-4-8"
