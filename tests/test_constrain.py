"""The grammar library: what a constraint allows, checked by running texts through llguidance.

Each grammar is compiled for the tiny model's tokenizer and fed the tokens of a
text; a text is allowed when every token is accepted and the grammar can end
there. Valid calls are written by the convention's own writer, so the grammar
and the renderer agree by test, not by hope.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.claude_code_tools import tools as claude_code_tools
from trimkit import convention
from trimkit.constrain import (
    Constraint,
    ConstraintKinds,
    ToolSchema,
    UnsupportedSchema,
    build,
    constraint_for,
    lark_grammar,
)
from trimkit.constrain.engines import anthropic_fields, openai_fields
from trimkit.constrain.values import avoiding, json_avoiding, searched
from trimkit.wire import Tool, ToolChoice

llguidance = pytest.importorskip("llguidance")

CLOSER = "</parameter>"
PREFIXED_CLOSER = "</" + "antml:" + "parameter>"
TOOLS = [Tool(**t) for t in claude_code_tools()]
SCHEMAS = {t.name: t.input_schema for t in TOOLS}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return llguidance.LLTokenizer((tiny_model_dir / "tokenizer.json").read_text(), n_vocab=768, eos_token=[2])


def allows(tokenizer, grammar: str, text: str) -> bool:
    matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    return matcher.consume_tokens(tokenizer.tokenize_str(text)) and matcher.is_accepting()


def grammar_for(choice=None, output=None, **options) -> str:
    return build(constraint_for(TOOLS, choice, output, **options))


def call(name: str, arguments: dict) -> str:
    return convention.format_calls([(name, arguments)])


# --------------------------------------------------------------------------- values


@given(st.lists(st.sampled_from(["a", "<", "/", ">", "\n", "p", "parameter", CLOSER, "</", "</param"]), max_size=10))
def test_avoiding_matches_exactly_the_texts_without_a_marker(pieces):
    text = "".join(pieces)
    pattern = re.compile(avoiding([CLOSER, PREFIXED_CLOSER]), re.S)
    assert (pattern.fullmatch(text) is not None) == (CLOSER not in text and PREFIXED_CLOSER not in text)


def test_a_marker_whose_first_character_recurs_is_refused():
    with pytest.raises(UnsupportedSchema):
        avoiding(["<a<b>"])


def test_json_strings_get_a_pattern_that_keeps_the_closer_out_and_annotations_go():
    schema = {"type": "array", "description": "x", "items": {"type": "string", "minLength": 1}}
    restricted = json_avoiding(schema, [CLOSER])
    assert restricted["items"]["pattern"].startswith("^")
    assert restricted["items"]["minLength"] == 1


def test_a_search_pattern_becomes_a_whole_text_regex():
    assert re.fullmatch(searched("ab"), "xxabyy")
    assert not re.fullmatch(searched("^ab$"), "xab")
    assert re.fullmatch(searched("^ab$"), "ab")


# --------------------------------------------------------------------------- constraint_for


def test_no_tools_and_no_schema_constrain_nothing():
    assert constraint_for(None, None, None) is None
    assert constraint_for([], ToolChoice(type="any"), None) is None


def test_a_named_tool_that_is_not_offered_counts_as_any():
    constraint = constraint_for(TOOLS, ToolChoice(type="tool", name="Nope"), None)
    assert constraint.choice == "any" and constraint.forced


def test_calls_may_name_only_the_tools_the_prompt_shows():
    constraint = constraint_for(TOOLS, ToolChoice(type="any"), None, shown=["Read", "Bash"])
    assert [t.name for t in constraint.tools] == ["Bash", "Read"]


def test_server_tools_are_never_callable():
    server_tool = Tool(name="web_search", type="web_search_20250305")
    constraint = constraint_for([server_tool, TOOLS[0]], None, None)
    assert [t.name for t in constraint.tools] == [TOOLS[0].name]


def test_each_kind_can_be_turned_off():
    off = ConstraintKinds(tool_calls=False, tool_choice=False, json_output=False)
    assert constraint_for(TOOLS, ToolChoice(type="any"), {"type": "object"}, kinds=off) is None
    only_json = ConstraintKinds(tool_calls=False, tool_choice=False)
    assert constraint_for(TOOLS, ToolChoice(type="any"), {"type": "object"}, kinds=only_json).kinds == ["json_output"]
    no_choice = ConstraintKinds(tool_choice=False)
    assert constraint_for(TOOLS, ToolChoice(type="any"), None, kinds=no_choice).kinds == ["tool_calls"]


def test_tool_choice_none_forbids_calls_only_when_tools_were_declared():
    assert constraint_for(TOOLS, ToolChoice(type="none"), None, shown=[]).kinds == ["tool_choice=none"]
    assert constraint_for(None, ToolChoice(type="none"), None) is None


# --------------------------------------------------------------------------- grammars


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_tool_choice_any_accepts_a_valid_call_to_every_claude_code_tool(tokenizer, name):
    arguments = {
        "Read": {"file_path": "/a/b.py", "limit": 20},
        "Bash": {"command": "ls -la </dev/null", "timeout": 1000, "run_in_background": False},
        "Edit": {"file_path": "/x", "old_string": "<div>", "new_string": "</div>\n"},
        "TodoWrite": {"todos": [{"content": "a", "status": "in_progress", "activeForm": "b"}]},
        "WebFetch": {"url": "https://example.com/x?y=1", "prompt": "p"},
        "WebSearch": {"query": "mlx grammars"},
        "MultiEdit": {"file_path": "/x", "edits": [{"old_string": "a", "new_string": "b", "replace_all": True}]},
        "AskUserQuestion": {
            "questions": [
                {"question": "q?", "header": "h",
                 "options": [{"label": "a", "description": "d"}, {"label": "b", "description": "e"}],
                 "multiSelect": False}
            ]
        },
    }.get(name)
    if arguments is None:
        schema = SCHEMAS[name]
        arguments = {key: "x" for key in schema.get("required", [])}
    assert allows(tokenizer, grammar_for(ToolChoice(type="any")), call(name, arguments))


@pytest.mark.parametrize(
    "text",
    [
        call("Nope", {"x": "1"}),  # an undeclared tool
        call("Read", {}),  # a required argument missing
        call("Read", {"file_path": "/a", "limit": "twenty"}),  # a number that is not one
        call("Read", {"file_path": "/a", "color": "red"}),  # an argument the schema does not have
        call("TodoWrite", {"todos": [{"content": "a", "status": "done", "activeForm": "b"}]}),  # enum
        call("AskUserQuestion", {"questions": []}),  # minItems
        call("WebFetch", {"url": "not a url", "prompt": "p"}),  # format
        "Sure! " + call("Read", {"file_path": "/a"}),  # text before a forced call
        call("Read", {"file_path": "/a"})[: -len(convention.CALLS_CLOSE)],  # never closed
    ],
)
def test_tool_choice_any_refuses_calls_that_break_the_schema(tokenizer, text):
    assert not allows(tokenizer, grammar_for(ToolChoice(type="any")), text)


def test_a_value_cannot_contain_its_closing_tag_even_inside_json(tokenizer):
    grammar = grammar_for(ToolChoice(type="any"))
    assert not allows(tokenizer, grammar, call("Glob", {"pattern": "a" + PREFIXED_CLOSER + "b"}))
    todos = {"todos": [{"content": "a" + CLOSER, "status": "pending", "activeForm": "b"}]}
    assert not allows(tokenizer, grammar, call("TodoWrite", todos))
    question = {"question": "q?", "header": "h", "options": [{"label": "a", "description": "d"}] * 2,
                "multiSelect": False}
    assert allows(tokenizer, grammar, call("AskUserQuestion", {"questions": [question], "answers": {"q?": "a"}}))
    keyed = {"questions": [question], "answers": {"q" + CLOSER: "a"}}  # an open object's key
    assert not allows(tokenizer, grammar, call("AskUserQuestion", keyed))


def test_tool_choice_naming_a_tool_allows_only_that_tool(tokenizer):
    grammar = grammar_for(ToolChoice(type="tool", name="Glob"))
    assert allows(tokenizer, grammar, call("Glob", {"pattern": "*.py"}))
    assert not allows(tokenizer, grammar, call("Read", {"file_path": "/a"}))


def test_parallel_calls_unless_disabled(tokenizer):
    two = convention.format_calls([("Glob", {"pattern": "a"}), ("Read", {"file_path": "/b"})])
    assert allows(tokenizer, grammar_for(ToolChoice(type="any")), two)
    assert not allows(tokenizer, grammar_for(ToolChoice(type="any", disable_parallel_tool_use=True)), two)


def test_auto_lets_text_stand_alone_or_precede_a_well_formed_call(tokenizer):
    grammar = grammar_for(None)
    assert allows(tokenizer, grammar, "Plain <b>text</b>, even with <function_call markup.")
    assert allows(tokenizer, grammar, "Let me look.\n\n" + call("Read", {"file_path": "/a"}))
    assert not allows(tokenizer, grammar, "Let me look.\n\n" + call("Read", {"path": "/a"}))
    assert not allows(tokenizer, grammar, call("Read", {"file_path": "/a"}) + "\nmore text")


def test_none_forbids_opening_a_call(tokenizer):
    grammar = build(constraint_for(TOOLS, ToolChoice(type="none"), None, shown=[]))
    assert allows(tokenizer, grammar, "Only words, and <function_call> lookalikes.")
    assert not allows(tokenizer, grammar, call("Read", {"file_path": "/a"}))


def test_json_output_must_match_the_schema(tokenizer):
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"],
              "additionalProperties": False}
    grammar = grammar_for(None, schema, kinds=ConstraintKinds())
    assert allows(tokenizer, build(constraint_for(None, None, schema)), '{"title": "Fix the parser"}')
    assert not allows(tokenizer, build(constraint_for(None, None, schema)), '{"name": "x"}')
    assert not allows(tokenizer, build(constraint_for(None, None, schema)), 'Here: {"title": "x"}')
    assert allows(tokenizer, grammar, '{"title":"x"}') and allows(tokenizer, grammar, call("Read", {"file_path": "/a"}))


def test_a_forced_call_may_follow_a_thinking_section_the_prompt_opened(tokenizer):
    grammar = grammar_for(ToolChoice(type="any"), thinking_open=True)
    assert allows(tokenizer, grammar, "hmm, a file.</think>\n\n" + call("Read", {"file_path": "/a"}))


def test_a_root_schema_the_dialect_cannot_write_is_unsupported():
    tool = Tool(name="Odd", input_schema={"anyOf": [{"type": "object"}, {"type": "string"}]})
    with pytest.raises(UnsupportedSchema):
        build(constraint_for([tool], ToolChoice(type="any"), None))


def test_an_unknown_string_format_is_unsupported_not_ignored():
    tool = Tool(name="Odd", input_schema={"type": "object", "properties": {"when": {"type": "string", "format": "x-y"}}})
    with pytest.raises(UnsupportedSchema):
        build(constraint_for([tool], ToolChoice(type="any"), None))


def test_grammars_are_memoized_on_content():
    first = constraint_for(TOOLS, ToolChoice(type="any"), None)
    again = constraint_for([Tool(**t) for t in claude_code_tools()], ToolChoice(type="any"), None)
    assert lark_grammar(first) is lark_grammar(again)
    assert lark_grammar(first) is not lark_grammar(constraint_for(TOOLS, None, None))


def test_every_claude_code_grammar_compiles(tokenizer):
    for choice in (None, ToolChoice(type="any"), ToolChoice(type="tool", name="Edit"), ToolChoice(type="none")):
        matcher = llguidance.LLMatcher(tokenizer, grammar_for(choice), log_level=0)
        assert not matcher.is_error(), (choice, matcher.get_error())


# --------------------------------------------------------------------------- upstream engines


def test_openai_engines_get_required_or_named_tool_choice_and_json_schema():
    forced = openai_fields(constraint_for(TOOLS[:2], ToolChoice(type="any", disable_parallel_tool_use=True), None))
    assert forced["tool_choice"] == "required" and forced["parallel_tool_calls"] is False
    assert [t["function"]["name"] for t in forced["tools"]] == [TOOLS[0].name, TOOLS[1].name]
    named = openai_fields(constraint_for(TOOLS, ToolChoice(type="tool", name="Bash"), None))
    assert named["tool_choice"] == {"type": "function", "function": {"name": "Bash"}}
    assert [t["function"]["name"] for t in named["tools"]] == ["Bash"]
    schema = {"type": "object"}
    assert openai_fields(constraint_for(None, None, schema))["response_format"]["json_schema"]["schema"] == schema
    assert openai_fields(constraint_for(TOOLS, None, None)) == {}


def test_anthropic_engines_get_tool_choice_and_output_config():
    forced = anthropic_fields(constraint_for(TOOLS, ToolChoice(type="tool", name="Read"), None))
    assert forced["tool_choice"] == {"type": "tool", "name": "Read"}
    assert forced["tools"] == [{"name": "Read", "input_schema": SCHEMAS["Read"]}]
    schema = {"type": "object"}
    assert anthropic_fields(constraint_for(None, None, schema)) == {
        "output_config": {"format": {"type": "json_schema", "schema": schema}}
    }
    assert anthropic_fields(None) == {}


def test_a_call_without_arguments_is_encoded_with_an_empty_input():
    from trimkit.wire import MessagesResponse, ToolUseBlock, encode

    body = json.loads(encode(MessagesResponse(id="m", model="x", content=[ToolUseBlock(id="t", name="EnterPlanMode")])))
    assert body["content"][0]["input"] == {}


def test_a_constraint_records_what_it_constrains():
    assert Constraint(tools=(ToolSchema("A", {}),), choice="any").kinds == ["tool_choice=any"]
    assert Constraint(tools=(ToolSchema("A", {}),)).kinds == ["tool_calls"]


# --------------------------------------------------------------------------- native dialects


HERMES_CALL = '<tool_call>\n{"name": "Read", "arguments": {"file_path": "/a", "limit": 3}}\n</tool_call>'
QWEN_CALL = (
    "<tool_call>\n<function=Read>\n<parameter=file_path>\n/a/b\n</parameter>\n"
    "<parameter=limit>\n3\n</parameter>\n</function>\n</tool_call>"
)


@pytest.mark.parametrize(
    ("dialect", "good", "bad"),
    [
        ("hermes", HERMES_CALL, [HERMES_CALL.replace("Read", "Nope"), HERMES_CALL.replace('"/a"', '"/a</tool_call>"'),
                                 HERMES_CALL.replace(', "limit": 3', ', "limit": "3"')]),
        ("qwen3_coder", QWEN_CALL, [QWEN_CALL.replace("Read", "Nope"), QWEN_CALL.replace("/a/b", "a</parameter>b"),
                                    QWEN_CALL.replace("\n3\n", "\nthree\n")]),
    ],
)
def test_native_dialects_hold_calls_to_the_schema_in_their_own_markup(tokenizer, dialect, good, bad):
    forced = build(constraint_for(TOOLS, ToolChoice(type="any"), None, dialect=dialect))
    assert allows(tokenizer, forced, good) and allows(tokenizer, forced, good + "\n" + good)
    assert not any(allows(tokenizer, forced, text) for text in bad)
    auto = build(constraint_for(TOOLS, None, None, dialect=dialect))
    assert allows(tokenizer, auto, "Reading it.\n" + good) and allows(tokenizer, auto, "No call.")


def test_a_dialect_without_a_call_grammar_leaves_calls_alone_but_keeps_json_output():
    assert build(constraint_for(TOOLS, ToolChoice(type="any"), None, dialect="unheard_of")) is None
    grammar = build(constraint_for(TOOLS, ToolChoice(type="any"), {"type": "object"}, dialect="unheard_of"))
    assert grammar is not None and "start: output" in grammar
