"""The model's own convention: probing a template, shaping the chat for it, and the native chat itself."""

from __future__ import annotations

import json
import re

import pytest

from trimkit.chat_template import ChatTemplate, TemplateTraits, probe, shape
from trimkit.render import Chat, call_id, native_chat, thinking_setting
from trimkit.testing.families import FAMILIES
from trimkit.wire import decode_request

pytest.importorskip("mlx_lm")

EXPECTED_TRAITS = {
    # family: (string_arguments, one_call_per_message, tool_responses, call_text, user_after_tool, thinking_kwarg)
    "gemma4": (False, False, True, True, True, "enable_thinking"),
    "gpt_oss": (False, True, False, False, True, None),
    "glm47": (False, False, False, True, True, "enable_thinking"),
    "minimax_m2": (False, False, False, True, True, None),
    "qwen3_coder": (False, False, False, True, True, None),
    "qwen3": (False, False, False, True, True, "enable_thinking"),
    "qwen2_5_coder": (False, False, False, True, True, None),
    "devstral": (False, False, False, True, False, None),
    "llama3": (False, True, False, True, True, None),
    "deepseek": (True, False, False, True, True, "enable_thinking"),
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_probing_finds_what_each_family_template_takes(name, family_template):
    traits = family_template(name).traits
    found = (traits.string_arguments, traits.one_call_per_message, traits.tool_responses, traits.call_text,
             traits.user_after_tool, traits.thinking_kwarg)
    assert traits.renders_tools
    assert found == EXPECTED_TRAITS[name]


def test_a_template_that_does_not_render_tools_is_not_given_them(tiny_model_dir):
    from trimkit.backends.mlx import load_chat_tokenizer

    traits = load_chat_tokenizer(tiny_model_dir)[1].traits
    assert not traits.renders_tools
    assert traits.thinking_kwarg is None


def test_a_template_that_renders_definitions_but_not_earlier_calls_falls_back_to_xml():
    def render(messages, tools=None, add_generation_prompt=False, **_):
        listed = "".join(t["function"]["name"] for t in tools or [])
        for m in messages:
            if m.get("tool_calls") or m["role"] == "tool":
                raise ValueError("no tool turns here")
        return listed + "".join(m["content"] for m in messages)

    assert probe(render) == TemplateTraits()


def test_a_template_that_raises_everywhere_is_treated_as_plain():
    def render(*_, **__):
        raise RuntimeError("broken template")

    assert probe(render) == TemplateTraits()


# --------------------------------------------------------------------------- shaping

CALL_A = {"id": "aaaaaaaaa", "type": "function", "function": {"name": "Read", "arguments": {"file_path": "/a"}}}
CALL_B = {"id": "bbbbbbbbb", "type": "function", "function": {"name": "Read", "arguments": {"file_path": "/b"}}}


def result(call, content):
    return {"role": "tool", "tool_call_id": call["id"], "name": "Read", "content": content}


TWO_CALLS = [
    {"role": "user", "content": "read both"},
    {"role": "assistant", "content": "Reading.", "tool_calls": [CALL_A, CALL_B]},
    result(CALL_B, "B"),
    result(CALL_A, "A"),
    {"role": "assistant", "content": "Both read."},
]


def test_one_call_per_message_pairs_each_call_with_its_own_result():
    shaped = shape(Chat(TWO_CALLS), TemplateTraits(renders_tools=True, one_call_per_message=True))
    assert [(m["role"], m.get("content")) for m in shaped] == [
        ("user", "read both"), ("assistant", "Reading."), ("tool", "A"), ("assistant", ""), ("tool", "B"),
        ("assistant", "Both read."),
    ]
    assert [m["tool_calls"][0]["id"] for m in shaped if m.get("tool_calls")] == ["aaaaaaaaa", "bbbbbbbbb"]


def test_string_arguments_are_json_text():
    shaped = shape(Chat(TWO_CALLS), TemplateTraits(renders_tools=True, string_arguments=True))
    arguments = [c["function"]["arguments"] for c in shaped[1]["tool_calls"]]
    assert arguments == ['{"file_path": "/a"}', '{"file_path": "/b"}']
    assert TWO_CALLS[1]["tool_calls"][0]["function"]["arguments"] == {"file_path": "/a"}  # not edited in place


def test_tool_responses_ride_on_the_call_and_the_answer_reads_on_in_the_same_turn():
    chat = Chat([TWO_CALLS[0], {**TWO_CALLS[1], "content": ""}, *TWO_CALLS[2:]])
    shaped = shape(chat, TemplateTraits(renders_tools=True, tool_responses=True))
    assert len(shaped) == 2
    assert shaped[1]["tool_responses"] == [{"name": "Read", "response": "B"}, {"name": "Read", "response": "A"}]
    assert shaped[1]["content"] == "Both read."


def test_user_text_after_a_result_joins_it_when_the_template_refuses_a_user_turn_there():
    chat = Chat([*TWO_CALLS[:4], {"role": "user", "content": "note"}])
    shaped = shape(chat, TemplateTraits(renders_tools=True, user_after_tool=False))
    assert shaped[-1] == {**result(CALL_A, "A\n\nnote")}


def test_text_beside_a_call_is_left_out_when_the_template_would_rewrite_it_later():
    shaped = shape(Chat(TWO_CALLS), TemplateTraits(renders_tools=True, call_text=False))
    assert shaped[1]["content"] == "" and shaped[-1]["content"] == "Both read."


def test_a_plain_template_gets_the_messages_as_they_are():
    assert shape(Chat(TWO_CALLS), TemplateTraits()) == TWO_CALLS


# --------------------------------------------------------------------------- the native chat


def request(*messages, **extra):
    body = {
        "model": "m", "max_tokens": 10, "system": "Be brief.",
        "tools": [{"name": "Read", "description": "Read a file.",
                   "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}],
        "messages": list(messages),
    }
    return decode_request({**body, **extra})


USE = {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "/a"}}
THINKING = {"type": "thinking", "thinking": "I should read it.", "signature": "sig"}


def test_tool_use_becomes_a_call_whose_id_the_result_repeats():
    chat = native_chat(request(
        {"role": "user", "content": "read /a"},
        {"role": "assistant", "content": [THINKING, {"type": "text", "text": "Reading."}, USE]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "print(1)"},
            {"type": "text", "text": "and then?"},
        ]},
    ))
    assert list(chat) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "read /a"},
        {"role": "assistant", "content": "Reading.", "tool_calls": [
            {"id": call_id("toolu_01"), "type": "function", "function": {"name": "Read", "arguments": {"file_path": "/a"}}}]},
        {"role": "tool", "tool_call_id": call_id("toolu_01"), "name": "Read", "content": "print(1)"},
        {"role": "user", "content": "and then?"},
    ]
    assert chat.tools == [{"type": "function", "function": {
        "name": "Read", "description": "Read a file.",
        "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}}}}}]


def test_call_ids_are_nine_letters_and_digits_and_the_same_every_time():
    assert re.fullmatch(r"[0-9A-Za-z]{9}", call_id("toolu_01"))
    assert call_id("toolu_01") == call_id("toolu_01") != call_id("toolu_02")


def test_an_error_result_says_so_and_a_turn_of_only_thinking_is_left_out():
    chat = native_chat(request(
        {"role": "user", "content": "read /a"},
        {"role": "assistant", "content": [USE]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "no such file",
                                      "is_error": True}]},
        {"role": "assistant", "content": [THINKING]},
        {"role": "user", "content": "ok"},
    ))
    assert chat[3]["content"] == "Error: no such file"
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "tool", "user"]


def test_system_messages_join_the_system_prompt_first_and_a_user_turn_later():
    chat = native_chat(request(
        {"role": "system", "content": "Agents: none."},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Reminder."},
    ))
    assert list(chat) == [{"role": "system", "content": "Be brief.\n\nAgents: none."},
                          {"role": "user", "content": "hi\n\nReminder."}]


@pytest.mark.parametrize("setting, expected", [
    (None, None), ({"type": "adaptive"}, True), ({"type": "enabled", "budget_tokens": 2048}, True),
    ({"type": "disabled"}, False),
])
def test_the_thinking_setting_goes_to_the_chat(setting, expected):
    extra = {"thinking": setting} if setting else {}
    req = request({"role": "user", "content": "hi"}, **extra)
    assert thinking_setting(req) is expected
    assert native_chat(req).thinking is expected


# --------------------------------------------------------------------------- rendering


def test_the_thinking_setting_reaches_the_template(family_template):
    template = family_template("qwen3")
    chat = native_chat(request({"role": "user", "content": "hi"}))
    on = template.text(Chat(chat, tools=chat.tools, thinking=True))
    off = template.text(Chat(chat, tools=chat.tools, thinking=False))
    assert on.endswith("<|im_start|>assistant\n<think>\n")
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_the_generation_prompt_is_what_follows_the_last_message(family_template):
    chat = native_chat(request({"role": "user", "content": "hi"}, thinking={"type": "enabled"}))
    assert family_template("glm47").generation_prompt(chat) == "<|assistant|><think>"
    assert family_template("gpt_oss").generation_prompt(chat) == "<|start|>assistant"


def test_every_family_renders_a_whole_tool_round_with_parallel_calls(family_template):
    uses = [USE, {**USE, "id": "toolu_02", "input": {"file_path": "/b"}}]
    req = request(
        {"role": "user", "content": "read /a and /b"},
        {"role": "assistant", "content": [{"type": "text", "text": "Reading both."}, *uses]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "AAA"},
            {"type": "tool_result", "tool_use_id": "toolu_02", "content": "BBB"},
            {"type": "text", "text": "what now?"},
        ]},
    )
    for name in FAMILIES:
        text = family_template(name).text(native_chat(req))
        for needle in ("Read a file.", "/a", "/b", "AAA", "BBB", "what now?"):
            assert needle in text, (name, needle)


def test_a_last_assistant_message_is_continued(family_template):
    chat = native_chat(request({"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hel"}))
    assert family_template("qwen3_coder").text(chat).endswith("<|im_start|>assistant\nHel")


def test_chat_template_with_given_traits_does_not_probe():
    calls = []

    def render(messages, **options):
        calls.append(options)
        return json.dumps(messages)

    template = ChatTemplate(render, TemplateTraits())
    assert calls == []
    assert template.text(Chat([{"role": "user", "content": "x"}])) == '[{"role": "user", "content": "x"}]'
