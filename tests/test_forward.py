"""trimkit.forward: the trimmed request as another proxy sends it on, and which requests to trim."""

from __future__ import annotations

import json

import pytest

import trimkit
from tests.fixtures import claude_code as cc
from trimkit.errors import ConfigError, PromptTooLong, RequestDecodeError
from trimkit.forward import Forwarder, ModelOptions, anthropic_body, openai_chat

SMALL = {"claude-*": {"tier": "small", "context_window": 32_768}}


def trimmed(request, convention="xml", tier="small"):
    profile = ModelOptions(tier=tier, convention=convention).profile()
    return trimkit.trim(request, profile)


def test_the_xml_body_teaches_the_tools_in_one_system_string_and_gives_no_tool_fields():
    body = anthropic_body(trimmed(cc.first_request(cc.EXAMPLE_PROMPT)))
    assert "tools" not in body and "tool_choice" not in body
    assert isinstance(body["system"], str) and '<tool name="Read">' in body["system"]
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert all(isinstance(m["content"], str) for m in body["messages"])
    assert cc.EXAMPLE_PROMPT in body["messages"][0]["content"]
    assert len(json.dumps(body)) < len(json.dumps(cc.first_request(cc.EXAMPLE_PROMPT))) / 10


def test_the_xml_body_writes_earlier_calls_and_results_in_the_convention_the_model_was_taught():
    request = cc.session_prefixes(2)[2]
    body = anthropic_body(trimmed(request))
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert '<invoke name="' in body["messages"][1]["content"]
    assert "<function_results>" in body["messages"][2]["content"]
    assert all(isinstance(m["content"], str) for m in body["messages"])


def test_the_native_body_keeps_the_compacted_tools_and_the_tool_blocks():
    request = cc.session_prefixes(1)[1]
    body = anthropic_body(trimmed(request, "native"))
    assert sorted(t["name"] for t in body["tools"]) == ["Bash", "Edit", "Glob", "Grep", "Read", "Write"]
    blocks = [b["type"] for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
    assert "tool_use" in blocks and "tool_result" in blocks
    assert len(json.dumps(body["tools"])) < len(json.dumps(request["tools"])) / 5


def test_fields_trimkit_does_not_model_are_carried_over_and_its_own_are_the_trimmed_requests():
    request = {**cc.first_request(), "x_vendor_flag": {"keep": True}}
    result = trimmed(request)
    body = anthropic_body(result, request)
    assert body["x_vendor_flag"] == {"keep": True}
    assert body["metadata"] == request["metadata"] and body["model"] == request["model"]
    assert "tools" not in body and body["system"] != request["system"]


def test_each_turns_body_starts_with_the_previous_turns_so_an_engines_prefix_cache_holds():
    roomy = ModelOptions(tier="large", context_window=262_144).profile()  # no budget cut, nor a prefill-time one
    bodies = [anthropic_body(trimkit.trim(r, roomy)) for r in cc.session_prefixes(6)]
    for before, after in zip(bodies, bodies[1:]):
        assert after["system"] == before["system"]
        assert after["messages"][: len(before["messages"])] == before["messages"]


def test_openai_chat_gives_messages_and_in_the_native_convention_functions_with_json_arguments():
    request = cc.session_prefixes(1)[1]
    result = trimmed(request)
    xml = openai_chat(result)
    assert "tools" not in xml and xml["messages"][0]["role"] == "system"
    assert xml["max_tokens"] == result.request.max_tokens < 32_768  # the budget left room in the window
    native = openai_chat(trimmed(request, "native"))
    assert {t["function"]["name"] for t in native["tools"]} == {"Bash", "Edit", "Glob", "Grep", "Read", "Write"}
    calls = [c for m in native["messages"] for c in m.get("tool_calls") or []]
    assert calls and all(isinstance(json.loads(c["function"]["arguments"]), dict) for c in calls)
    assert any(m["role"] == "tool" for m in native["messages"])


def test_the_forwarder_trims_configured_models_exact_names_before_patterns():
    forwarder = Forwarder({"claude-haiku-*": {"tier": "large"}, "claude-opus-4-8": {"tier": "small"},
                           "claude-*": {"tier": "medium"}})
    assert forwarder.options_for("claude-opus-4-8")[0] == "claude-opus-4-8"
    assert forwarder.options_for("claude-haiku-4-5")[0] == "claude-haiku-*"
    assert forwarder.options_for("claude-sonnet-4-5")[0] == "claude-*"
    assert forwarder.options_for("gpt-5") is None
    forwarded = forwarder.trim(cc.first_request())
    assert forwarded.result.report.tier == "small"
    assert forwarded.result.report.after.chars < forwarded.result.report.before.chars / 10
    assert [t.name for t in forwarded.tools] == [t["name"] for t in cc.first_request()["tools"]]
    assert forwarded.thinking is True


def test_a_model_that_is_not_configured_is_not_trimmed():
    assert Forwarder({"claude-haiku-*": {}}).trim(cc.first_request()) is None


def test_the_forwarder_takes_bytes_and_text_as_well_as_dicts():
    forwarder = Forwarder(SMALL)
    raw = json.dumps(cc.first_request()).encode()
    assert forwarder.trim(raw).body == forwarder.trim(raw.decode()).body == forwarder.trim(json.loads(raw)).body


def test_sizes_are_guessed_from_the_served_models_name_and_overridden_by_the_options():
    guessed = ModelOptions(model="Qwen3-Coder-30B-A3B-Instruct-4bit").profile()
    assert guessed.tier == "medium" and guessed.active_params == 3e9
    assert ModelOptions(model="Qwen3-Coder-30B-A3B-Instruct-4bit", tier="small").profile().tier == "small"
    assert ModelOptions(convention="native").profile().native_tools is True


@pytest.mark.parametrize(("models", "key", "wording"), [
    ({"claude-*": {"tier": "tiny"}}, "models.claude-*", "tier"),
    ({"claude-*": {"context_window": 0}}, "models.claude-*", "context_window"),
    ({"claude-*": {"convention": "json"}}, "models.claude-*", "convention"),
    ({"claude-*": {"windw": 4096}}, "models.claude-*", "windw"),
    (["claude-*"], "models", "table"),
])
def test_a_bad_model_option_is_a_config_error_naming_its_key(models, key, wording):
    with pytest.raises(ConfigError) as caught:
        Forwarder(models)
    assert caught.value.key == key and wording in str(caught.value)


def test_a_bad_stages_table_is_a_config_error_when_the_forwarder_is_built():
    with pytest.raises(ConfigError):
        Forwarder(SMALL, stages={"no_such_stage": {}})


def test_a_request_that_cannot_fit_even_trimmed_raises_prompt_too_long():
    forwarder = Forwarder({"claude-*": {"tier": "small", "context_window": 600}})
    with pytest.raises(PromptTooLong) as caught:
        forwarder.trim(cc.first_request())
    assert str(caught.value).startswith("prompt is too long: ")


def test_a_body_that_is_not_a_messages_request_raises_request_decode_error():
    with pytest.raises(RequestDecodeError):
        Forwarder(SMALL).trim({"model": "claude-x", "messages": "hello"})


def test_the_report_summary_is_the_inspect_total_line():
    report = trimmed(cc.first_request()).report
    line = report.summary()
    assert line.startswith(f"{report.before.chars:,} → {report.after.chars:,} chars (")
    assert line.endswith("tier small") and "tokens (estimated)" in line
