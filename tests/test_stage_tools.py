"""The tools stage and its modules: choice by tier, compaction, the XML section, the cache."""

from __future__ import annotations

import copy
import re

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures import claude_code as cc
from trimkit import ModelProfile, Pipeline, decode_request, encode
from trimkit.plugins.tools import compact as compacting, markup, prose
from trimkit.plugins.tools import options as tool_options, section as sections
from trimkit.convention import EXAMPLE_CALL, unquote_attr
from trimkit.render import chat_messages, prompt_text
from trimkit.stage import TrimResult
from trimkit.wire import TextBlock, Tool

PIPELINE = Pipeline(entry_points=False)
CORE = ["Read", "Write", "Edit", "Bash", "Glob", "Grep"]


def tool(name: str, description: str = "Does a thing.", properties=None, required=(), **schema) -> dict:
    input_schema = {"type": "object", "properties": properties or {}, **schema}
    if required:
        input_schema["required"] = list(required)
    return {"name": name, "description": description, "input_schema": input_schema}


def request(tools, system=None, tool_choice=None, messages=None) -> dict:
    body = {
        "model": "m",
        "max_tokens": 100,
        "messages": messages or [{"role": "user", "content": "hi"}],
        "tools": tools,
    }
    if system is not None:
        body["system"] = system
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    return body


def run(body, tier: str = "small", **options) -> TrimResult:
    """The stage run alone for ``tier``, with ``options`` over the tier's defaults."""
    return PIPELINE.run_stage("tools", body, ModelProfile.for_tier(tier), options=options)


def section(state: TrimResult) -> str:
    return state.request.system[-1].text


def shown(text: str) -> list[str]:
    return [unquote_attr(n) for n in re.findall(r'<tool name="([^"]*)"', text)]


def claude_code_tools() -> list[dict]:
    return cc.first_request()["tools"]


# --------------------------------------------------------------------------- choosing


def test_small_tier_keeps_exactly_the_core_tools_in_client_order():
    state = run(request(claude_code_tools()))
    offered = [t["name"] for t in claude_code_tools()]
    expected = [n for n in offered if n in CORE]
    assert sorted(expected) == sorted(CORE)
    assert shown(section(state)) == expected
    assert state.carry.tool_names == expected


def test_only_offered_core_tools_are_shown():
    state = run(request([tool("Read"), tool("Bash"), tool("LS"), tool("Other")]))
    assert state.carry.tool_names == ["Read", "Bash"]


def test_medium_keeps_more_and_large_keeps_everything():
    names = [t["name"] for t in claude_code_tools()]
    medium = run(request(claude_code_tools()), "medium").carry.tool_names
    large = run(request(claude_code_tools()), "large").carry.tool_names
    assert set(CORE) < set(medium) and len(medium) <= 12
    assert large == names


def test_allow_list_written_for_another_client_keeps_all_of_this_clients_tools():
    state = run(request([tool("get_weather"), tool("get_time")]))
    assert state.carry.tool_names == ["get_weather", "get_time"]


def test_allow_deny_and_glob_patterns():
    tools = [tool("Read"), tool("mcp__ide__diag"), tool("mcp__git__log"), tool("Bash"), tool("ReadMany")]
    state = run(request(tools), allow=["Read", "mcp__*", "Bash"], deny=["mcp__git__*"])
    assert state.carry.tool_names == ["Read", "mcp__ide__diag", "Bash"]
    assert run(request(tools), allow=["Read*"]).carry.tool_names == ["Read", "ReadMany"]
    assert run(request(tools), allow=["read"]).carry.tool_names == [t["name"] for t in tools]


def test_server_side_tools_are_never_shown():
    server_tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    state = run(request([tool("Read"), server_tool]), "large")
    assert state.carry.tool_names == ["Read"]
    assert state.report.removed["tools_dropped"] == len(msgspec.json.encode(decode_request(request([server_tool])).tools[0]))


# --------------------------------------------------------------------------- tool_choice


def test_tool_choice_names_a_tool_that_is_kept_even_when_denied():
    body = request(claude_code_tools(), tool_choice={"type": "tool", "name": "TodoWrite"})
    state = run(body, deny=["TodoWrite"])
    assert "TodoWrite" in state.carry.tool_names
    assert section(state).endswith("Your reply must call the TodoWrite tool.")
    assert state.request.tool_choice is None


def test_tool_choice_naming_a_tool_not_offered_demands_any_call():
    text = section(run(request([tool("Read")], tool_choice={"type": "tool", "name": "Nope"})))
    assert text.endswith("Your reply must call at least one of the tools above.") and "Nope" not in text


def test_tool_choice_any_demands_a_call_and_auto_adds_nothing():
    any_ = section(run(request([tool("Read")], tool_choice={"type": "any"})))
    auto = section(run(request([tool("Read")], tool_choice={"type": "auto"})))
    absent = section(run(request([tool("Read")])))
    assert any_.endswith("Your reply must call at least one of the tools above.")
    assert auto == absent and auto.endswith("</tools>")


def test_tool_choice_none_shows_no_tools_and_forbids_calls():
    state = run(request(claude_code_tools(), tool_choice={"type": "none"}))
    assert section(state) == "Do not call any tool in this reply: answer in plain text."
    assert state.carry.tool_names == []
    assert state.request.tools is None and state.request.tool_choice is None
    assert state.report.removed["tools_dropped"] == sum(
        len(msgspec.json.encode(t)) for t in decode_request(request(claude_code_tools())).tools
    )


def test_disable_parallel_tool_use_asks_for_one_call_at_a_time():
    text = section(run(request([tool("Read")], tool_choice={"type": "auto", "disable_parallel_tool_use": True})))
    assert "Call one tool at a time." in text and "several tools" not in text


# --------------------------------------------------------------------------- the section


def test_section_teaches_the_convention_and_replaces_json_tools():
    state = run(request([tool("Read")], system="Be brief."))
    system = state.request.system
    assert [b.text for b in system[:1]] == ["Be brief."] and len(system) == 2
    assert EXAMPLE_CALL in section(state) and "<function_results>" in section(state)
    assert state.request.tools is None
    assert "<|tools|>" not in prompt_text(state.request)


def test_system_blocks_are_kept_and_a_missing_system_is_created():
    blocks = [{"type": "text", "text": "one", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "two"}]
    kept = run(request([tool("Read")], system=blocks)).request.system
    assert [b.text for b in kept[:2]] == ["one", "two"] and kept[0].cache_control == {"type": "ephemeral"}
    created = run(request([tool("Read")])).request.system
    assert len(created) == 1 and created[0].text.startswith("To call a tool")


def test_parameters_render_type_required_enum_default_and_one_line_description():
    props = {
        "path": {"type": "string", "description": "Where to look. Defaults to the cwd.\nMore."},
        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
        "count": {"type": ["integer", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "flag": {"type": "boolean", "default": False},
    }
    text = section(run(request([tool("T", properties=props, required=["path"])]), "large"))
    assert '<parameter name="path" type="string" required="true">Where to look.</parameter>' in text
    assert '<parameter name="mode" type="string" enum="a|b" default="a"/>' in text
    assert '<parameter name="count" type="integer|null"/>' in text
    assert '<parameter name="tags" type="string[]"/>' in text
    assert '<parameter name="flag" type="boolean" default="false"/>' in text


def test_nested_objects_get_their_shape():
    item = {
        "type": "object",
        "properties": {"content": {"type": "string"}, "status": {"enum": ["pending", "done"]}},
        "required": ["content"],
    }
    props = {"todos": {"type": "array", "items": item, "description": "The list"}}
    text = section(run(request([tool("TodoWrite", properties=props, required=["todos"])]), "large"))
    expected = 'The list. Fields: {content: string, status?: "pending"|"done"}'
    assert f'<parameter name="todos" type="object[]">{expected}</parameter>' in text


@pytest.mark.parametrize(
    "schema, expected",
    [
        ({"$ref": "#/$defs/S"}, "string"),
        ({"$ref": "#/$defs/Missing"}, "any"),
        ({"$ref": "https://example.com/schema"}, "any"),
        ({"$ref": "#/$defs/Loop"}, "any"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "string|null"),
        ({"oneOf": [{"type": "integer"}, {"$ref": "#/$defs/S"}]}, "integer|string"),
        ({"anyOf": [{"type": "string"}, {}]}, "any"),
        ({"allOf": [{"$ref": "#/$defs/S"}]}, "string"),
        ({"type": "string", "nullable": True}, "string|null"),
        ({"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "number"}]}}, "(string|number)[]"),
        ({"type": "array"}, "array"),
        ({"const": 3}, "integer"),
        ({}, "any"),
        (True, "any"),
    ],
)
def test_schema_forms_are_described_without_crashing(schema, expected):
    defs = {"S": {"type": "string"}, "Loop": {"$ref": "#/$defs/Loop"}}
    body = request([tool("T", properties={"p": schema, "n": {"type": "integer"}}, **{"$defs": defs})])
    assert f'<parameter name="p" type="{expected}"' in section(run(body, "large"))


def test_recursive_object_schemas_stop():
    node = {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}, "value": {"type": "integer"}}}
    body = request([tool("T", properties={"tree": {"$ref": "#/$defs/Node"}}, **{"$defs": {"Node": node}})])
    text = section(run(body, "large"))
    assert '<parameter name="tree" type="object">Fields: {child?: any, value?: integer}</parameter>' in text


def test_references_that_fan_out_cost_bounded_time_and_spare_other_tools():
    defs = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 10} for i in range(12)}
    defs["d12"] = {"type": "object", "properties": {f"p{j}": {"$ref": "#/$defs/d0"} for j in range(10)}}
    bomb = tool("T", properties={"p": {"$ref": "#/$defs/d0"}, "q": {"$ref": "#/$defs/d12"}}, **{"$defs": defs})
    plain = tool("U", properties={"q": {"type": "object", "properties": {"a": {"type": "integer"}}}})
    text = section(run(request([bomb, plain]), "large"))
    assert '<parameter name="p" type="any"/>' in text
    assert '<parameter name="q" type="object">Fields: {a?: integer}</parameter>' in text


def test_optional_parameters_beyond_the_limit_are_left_out_and_counted():
    props = {name: {"type": "string", "description": "x" * 10} for name in ("a", "b", "c", "d")}
    state = run(request([tool("T", properties=props, required=["c"])]), max_optional_parameters=1)
    assert re.findall(r'<parameter name="(\w)"', section(state)) == ["a", "c"]
    assert state.report.removed["tool_parameters"] == 2 * len(msgspec.json.encode(props["b"]))


def test_description_cut_at_a_sentence_within_the_limit():
    description = "First sentence here. Second one, e.g. longer than that.\n\nUsage:\n- item one\n- item two"
    assert prose.compact_description(description, 60, False) == "First sentence here. Second one, e.g. longer than that."
    assert prose.compact_description(description, 30, False) == "First sentence here."
    assert prose.compact_description(description, 70, False) == "First sentence here. Second one, e.g. longer than that."
    assert prose.compact_description(description, 80, False).endswith("Usage:\n- item one")
    assert prose.compact_description(description, 0, False) == ""


def test_a_first_sentence_too_long_ends_early_at_a_clause_break_never_mid_word():
    long = "Executes a command in a persistent shell, with an optional timeout and a sandbox. More."
    assert prose.compact_description(long, 60, False) == "Executes a command in a persistent shell."
    assert prose.compact_description("Reads files and writes them back when asked to.", 30, False) == ""
    assert prose.compact_description("Searches the code and lists matches, sorted by time.", 45, False) == (
        "Searches the code and lists matches."
    )
    assert prose.compact_description("One two three four five.", 12, False) == ""


def test_a_later_paragraph_is_only_cut_at_a_sentence_end():
    description = "Edits files.\n\nWhere the task allows, prefer the dedicated tool over a shell pipeline. Then stop."
    assert prose.compact_description(description, 40, False) == "Edits files."
    assert prose.compact_description(description, 90, False) == (
        "Edits files.\nWhere the task allows, prefer the dedicated tool over a shell pipeline."
    )


def _whole_sentences_or_clauses(cut: str, source: str) -> bool:
    """Each line of ``cut`` is a source line, or its head ending at a sentence end, or its
    head ending at a clause break with a full stop added."""
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    for line in cut.split("\n"):
        if line in lines or any(s.startswith(line) and line[-1] in ".!?" for s in lines):
            continue
        head = line[:-1]
        if not (line.endswith(".") and any(
            s.startswith(head) and s[len(head):].startswith(prose.DESCRIPTION_CLAUSE_BREAKS) for s in lines
        )):
            return False
    return True


@given(
    words=st.lists(st.sampled_from(["read", "the", "file,", "and", "path;", "e.g.", "(x)", "end.", "a\n\nb"]), max_size=40),
    limit=st.integers(0, 120),
)
def test_descriptions_are_never_cut_mid_sentence(words, limit):
    text = " ".join(words)
    cut = prose.compact_description(text, limit, False)
    assert len(cut) <= limit and "…" not in cut
    assert not cut or _whole_sentences_or_clauses(cut, text)


def test_examples_are_removed_unless_asked_for():
    description = "Keeps a list.\n<example>\nuser: hi\n</example>\nUse it often."
    assert prose.compact_description(description, 500, False) == "Keeps a list.\nUse it often."
    assert "<example>" in prose.compact_description(description, 500, True)


def test_parameter_description_is_one_line_within_the_limit():
    assert prose.one_line("The path (absolute) to read.\nSecond.", 120) == "The path (absolute) to read."
    assert prose.one_line("The text to replace it with (must differ from old)", 40) == "The text to replace it with"
    assert len(prose.one_line("word " * 100, 120)) <= 120


# --------------------------------------------------------------------------- names


NAME = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)


@given(names=st.lists(NAME, min_size=1, max_size=4, unique=True), params=st.lists(NAME, max_size=4, unique=True))
def test_tool_and_parameter_names_appear_verbatim(names, params):
    props = {p: {"type": "string", "description": "A value."} for p in params}
    body = request([tool(n, properties=props, required=params[:1]) for n in names])
    text = section(run(body, "large"))
    assert shown(text) == names
    listed = text.split("\n<tools>\n", 1)[1]
    found = [unquote_attr(n) for n in re.findall(r'<parameter name="([^"]*)"[ />]', listed)]
    assert found == params * len(names)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)
SCHEMA_KEYS = ["type", "items", "properties", "anyOf", "oneOf", "allOf", "$ref", "enum", "const",
               "default", "description", "required", "nullable", "examples", "$defs"]
SCHEMA = st.recursive(
    st.dictionaries(st.sampled_from(SCHEMA_KEYS), JSON, max_size=4),
    lambda inner: st.dictionaries(
        st.sampled_from(SCHEMA_KEYS),
        inner | st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        | st.sampled_from(["string", "array", "object", ["string", "null"], "#/$defs/a", "#", "#/properties"]),
        max_size=4,
    ),
    max_leaves=8,
)


@given(schema=SCHEMA, description=st.text(max_size=300), limit=st.integers(0, 400))
def test_any_schema_and_description_compact_without_crashing(schema, description, limit):
    options = tool_options.ToolOptions(
        max_description_chars=limit, max_parameter_description_chars=limit // 2, drop_restating_descriptions=limit % 2 == 0
    )
    compact = compacting.compact_tool(Tool(name="T", description=description, input_schema=schema), options)
    assert len(compact.description) <= max(limit, 0)
    assert markup.tool_xml(compact).startswith('<tool name="T">')


def test_dashed_dotted_and_unicode_names_are_not_escaped():
    props = {"-B": {"type": "number"}, "a.b": {"type": "string"}, "größe": {"type": "string"}}
    text = section(run(request([tool("mcp__my-server__do.it", properties=props)]), "large"))
    assert '<tool name="mcp__my-server__do.it">' in text
    assert all(f'<parameter name="{p}"' in text for p in props)


def test_markup_characters_in_names_are_escaped_in_attributes():
    text = section(run(request([tool('a"b<c&d', properties={'x"y': {"type": "string"}})]), "large"))
    assert '<tool name="a&quot;b&lt;c&amp;d">' in text and '<parameter name="x&quot;y"' in text


# --------------------------------------------------------------------------- render agreement


def test_earlier_calls_are_rendered_in_the_convention_the_section_teaches():
    messages = [
        {"role": "user", "content": "list files"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls", "timeout": 5}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a.txt"}]},
    ]
    state = run(request([tool("Bash", properties={"command": {"type": "string"}})], messages=messages))
    rendered = chat_messages(state.request)
    assert rendered[0]["content"].endswith("</tools>")
    call = '<function_calls>\n<invoke name="Bash">\n<parameter name="command">ls</parameter>\n'
    assert call + '<parameter name="timeout">5</parameter>\n</invoke>\n</function_calls>' in rendered[2]["content"]
    assert EXAMPLE_CALL.split("\n")[0] == "<function_calls>" and "<function_results>" in rendered[3]["content"]


# --------------------------------------------------------------------------- contract


def test_requests_without_tools_are_left_alone():
    body = request([], system="sys")
    state = run(body)
    assert state.request == decode_request(body) and state.carry.tool_names == []


def test_input_request_is_not_changed_and_output_is_deterministic():
    body = cc.first_request()
    before = copy.deepcopy(body)
    original = decode_request(body)
    snapshot = encode(original)
    first = run(original)
    sections.clear_cache()
    second = run(decode_request(body))
    assert body == before and encode(original) == snapshot
    assert encode(first.request) == encode(second.request)
    assert decode_request(encode(first.request)) == first.request


def test_removals_are_recorded():
    state = run(request(claude_code_tools()))
    removed = state.report.removed
    assert removed["tools_dropped"] > 30_000 and removed["tool_descriptions"] > 10_000
    assert set(removed) <= {"tools_dropped", "tool_descriptions", "tool_parameters"}


# --------------------------------------------------------------------------- cache


def decoded_tools(body) -> list[Tool]:
    return decode_request(msgspec.json.encode(body)).tools


def test_cache_key_follows_content():
    body = request(claude_code_tools())
    options = PIPELINE.options_for("tools", "small")
    first = sections.tools_section(decoded_tools(body), None, options)
    changed = copy.deepcopy(body)
    read = next(t for t in changed["tools"] if t["name"] == "Read")
    read["input_schema"]["properties"]["file_path"]["description"] = "An absolute path, never a URL"
    second = sections.tools_section(decoded_tools(changed), None, options)
    assert "never a URL" in second.text and "never a URL" not in first.text
    assert sections.tools_section(decoded_tools(body), None, options) is first


def test_cached_entry_does_not_follow_later_edits_of_the_callers_schema():
    body = request([tool("Read", properties={"p": {"type": "string"}})])
    tools = decoded_tools(body)
    options = tool_options.ToolOptions()
    first = sections.tools_section(tools, None, options)
    tools[0].input_schema["properties"]["p"]["type"] = "integer"
    second = sections.tools_section(tools, None, options)
    assert 'type="integer"' in second.text and second is not first


def test_cache_is_bounded():
    for n in range(sections.CACHE_SIZE + 10):
        sections.tools_section(decoded_tools(request([tool(f"T{n}")])), None, tool_options.ToolOptions())
    assert len(sections._cache) == sections.CACHE_SIZE


def test_each_turn_after_the_first_is_a_cache_hit(monkeypatch):
    body = msgspec.json.encode(request(claude_code_tools()))
    requests = [decode_request(body) for _ in range(5)]
    builds = []
    real_build = sections._build
    monkeypatch.setattr(sections, "_build", lambda *a, **k: builds.append(1) or real_build(*a, **k))
    sections.clear_cache()
    for tier in ("small", "large"):
        options = PIPELINE.options_for("tools", tier)
        first = sections.tools_section(requests[0].tools, None, options)
        for r in requests[1:]:
            assert sections.tools_section(r.tools, None, options) == first
    assert len(builds) == 2


# --------------------------------------------------------------------------- Claude Code fixture


@pytest.mark.parametrize("tier, limit", [("small", 2_200), ("medium", 4_800)])
def test_claude_code_section_size_per_tier(tier, limit):
    text = section(run(cc.first_request(), tier))
    assert len(text) <= limit


def test_claude_code_small_section_keeps_what_the_core_tools_need():
    text = section(run(cc.first_request()))
    for needle in ('<parameter name="file_path"', '<parameter name="old_string"'):
        assert needle in text
    assert "<example>" not in text and "…" not in text
    required = {t["name"]: t["input_schema"]["required"] for t in claude_code_tools() if t["name"] in CORE}
    for name, params in required.items():
        body = text.split(f'<tool name="{name}">\n', 1)[1].split("</tool>", 1)[0]
        assert re.findall(r'<parameter name="([^"]+)"', body) == params
        assert body.split("\n", 1)[0].endswith(".")
    assert "Every parameter listed is a required string, written as plain text." in text
    assert 'required="true"' not in text and 'type="string"' not in text
    assert "The regular expression pattern to search for in file contents" in text
    assert "(must differ from old_string)" in text


def test_parameters_are_marked_required_and_typed_unless_every_one_is():
    props = {"a": {"type": "string"}, "b": {"type": "integer"}}
    mixed = section(run(request([tool("T", properties=props, required=["a"])]), "large"))
    assert '<parameter name="a" type="string" required="true"/>' in mixed and "Every parameter" not in mixed
    assert "Write strings as plain text, other values as JSON." in mixed
    only_required = section(run(request([tool("T", properties=props, required=["a", "b"])]), "large"))
    assert '<parameter name="a" type="string"/>' in only_required and '<parameter name="b" type="integer"/>' in only_required
    assert "Every parameter listed is required. Write strings as plain text, other values as JSON." in only_required
    only_strings = section(run(request([tool("T", properties={"a": {"type": "string"}, "c": {"type": "string"}}, required=["a"])]), "large"))
    assert '<parameter name="a" required="true"/>' in only_strings and '<parameter name="c"/>' in only_strings
    assert "Every parameter listed is a string, written as plain text." in only_strings
    no_parameters = section(run(request([tool("T")]), "large"))
    assert "Every parameter" not in no_parameters and "Write strings as plain text" in no_parameters


# --------------------------------------------------------------------------- restating descriptions


@pytest.mark.parametrize(
    "description, tool_text, expected",
    [
        ("The command to execute", "Bash Executes a bash command", True),
        ("The content to write to the file", "Write Writes a file to the local filesystem.", True),
        ("The URL to fetch content from", "WebFetch Fetches content from a URL.", True),
        ("The regular expression pattern to search for", "Grep A powerful search tool.", False),
        ("The absolute path to the file to modify", "Edit Performs exact string replacements in files.", False),
        ("Optional timeout in milliseconds (max 600000)", "Bash Executes a command with a timeout.", False),
        ("The command, e.g. \"ls\"", "Bash Executes a bash command", False),
        ("", "Bash", False),
        ("The command the command the command to execute now", "Bash Executes a command now", False),
    ],
)
def test_a_parameter_description_restates_only_what_was_already_read(description, tool_text, expected):
    assert prose.restates(description, prose.known_words("command", "content", "url", "pattern", tool_text)) is expected


def test_restating_descriptions_are_dropped_only_where_the_tier_asks():
    props = {"command": {"type": "string", "description": "The command to execute"}}
    body = request([tool("Bash", "Executes a bash command.", properties=props, required=["command"])])
    assert '<parameter name="command"/>' in section(run(body, "small"))
    assert ">The command to execute</parameter>" in section(run(body, "large"))


def test_claude_code_session_sections_are_identical_every_turn():
    sections = {section(run(body)) for body in cc.session_prefixes(turns=6)}
    assert len(sections) == 1


def test_full_pipeline_puts_the_section_last_in_the_system_prompt():
    result = Pipeline(entry_points=False).trim(cc.first_request(), ModelProfile.for_tier("small"))
    assert result.request.tools is None
    assert isinstance(result.request.system[-1], TextBlock)
    assert result.request.system[-1].text.rstrip().endswith("</tools>")
    assert result.carry.tool_names == [t["name"] for t in claude_code_tools() if t["name"] in CORE]


# --------------------------------------------------------------------------- the model's own convention


def run_native(body, tier: str = "small", **options) -> TrimResult:
    return PIPELINE.run_stage("tools", body, ModelProfile.for_tier(tier, native_tools=True), options=options)


def test_a_template_that_renders_tools_gets_the_same_tools_compacted_as_json_schema():
    body = request(claude_code_tools(), system="Be brief.")
    native, taught = run_native(body), run(body)
    assert [t.name for t in native.request.tools] == shown(section(taught))
    assert sorted(shown(section(taught))) == sorted(CORE)
    assert native.carry.tool_names == taught.carry.tool_names
    assert native.request.system == "Be brief." and native.request.tool_choice is None
    read = next(t for t in native.request.tools if t.name == "Read")
    assert read.input_schema == {"type": "object", "properties": {"file_path": {"type": "string"}},
                                 "required": ["file_path"]}
    assert read.description.startswith("Reads a file") and len(read.description) <= 90


def test_native_tools_keep_types_enums_and_defaults_but_not_titles_or_nested_descriptions():
    props = {
        "mode": {"type": "string", "enum": ["a", "b"], "default": "a", "title": "Mode", "description": "The mode."},
        "items": {"type": "array", "description": "Things.",
                  "items": {"type": "object", "description": "One thing.", "properties": {
                      "n": {"type": "integer", "description": "A count.", "examples": [1]}}}},
    }
    state = run_native(request([tool("T", properties=props, required=["mode", "items"])]), tier="large")
    schema = state.request.tools[0].input_schema
    assert schema["properties"]["mode"] == {"type": "string", "enum": ["a", "b"], "default": "a",
                                            "description": "The mode."}
    assert schema["properties"]["items"]["items"] == {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert schema["required"] == ["mode", "items"]


def test_native_tool_choice_becomes_a_sentence_and_none_removes_the_tools():
    tools = [tool("Read", properties={"file_path": {"type": "string"}})]
    forced = run_native(request(tools, tool_choice={"type": "tool", "name": "Read"}))
    assert forced.request.system[-1].text == "Your reply must call the Read tool."
    refused = run_native(request(tools, tool_choice={"type": "none"}))
    assert refused.request.tools is None
    assert refused.request.system[-1].text.startswith("Do not call any tool")


def test_native_removals_are_recorded_like_the_sections():
    body = request(claude_code_tools())
    native, taught = run_native(body).report.stages[0].removed, run(body).report.stages[0].removed
    assert native.keys() == taught.keys() == {"tools_dropped", "tool_descriptions", "tool_parameters"}
    assert native["tools_dropped"] == taught["tools_dropped"] > 0
