"""From raw model text to content-block events, stop reasons and coerced tool input."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trimkit.toolcalls.coerce import coerce, coerce_arguments
from trimkit.toolcalls.items import FailedCall, ParsedCall
from trimkit.toolcalls.response import (
    BlockDelta,
    BlockStart,
    BlockStop,
    ResponseBuilder,
    StopMatcher,
    new_tool_use_id,
    thinking_signature,
)
from trimkit.wire import TextBlock, ThinkingBlock, Tool, ToolUseBlock

SCHEMA = {
    "type": "object",
    "properties": {
        "file_path": {"type": "string"},
        "content": {"type": "string"},
        "count": {"type": "integer"},
        "ratio": {"type": "number"},
        "force": {"type": "boolean"},
        "paths": {"type": "array", "items": {"type": "string"}},
        "options": {"type": "object", "properties": {"depth": {"type": "integer"}}},
        "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    },
}
TOOLS = [Tool(name="Write", input_schema=SCHEMA), Tool(name="Bash", input_schema={"type": "object", "properties": {"command": {"type": "string"}}})]


def counter_ids():
    numbers = itertools.count()
    return lambda: f"toolu_{next(numbers):024d}"


def run(chunks, tools=TOOLS, finish="stop", stop_sequences=None, **options):
    options.setdefault("thinking_open", False)
    builder = ResponseBuilder(tools, stop_sequences, id_factory=counter_ids(), **options)
    events = []
    for chunk in [chunks] if isinstance(chunks, str) else chunks:
        events += builder.feed(chunk)
        if builder.stopped:
            break
    events += builder.finish(finish)
    check_events(events, builder.content)
    return builder, events


def check_events(events, content):
    """Start, deltas, stop for each index in turn, and deltas that add up to the final blocks.

    A thinking block's deltas are thinking text, then exactly one signature as the last delta.
    """
    expected_index, open_block, built = 0, None, []
    for event in events:
        if isinstance(event, BlockStart):
            assert open_block is None and event.index == expected_index
            open_block = event.block
            if isinstance(open_block, TextBlock):
                assert open_block.text == ""
            elif isinstance(open_block, ThinkingBlock):
                assert open_block == ThinkingBlock(thinking="", signature="")
            else:
                assert open_block.input == {}
            built.append([event.block, "", None])
        elif isinstance(event, BlockDelta):
            assert open_block is not None and event.index == expected_index
            assert built[-1][2] is None, "nothing after a signature"
            if isinstance(open_block, ThinkingBlock) and event.kind == "signature_delta":
                built[-1][2] = event.value
                continue
            kind = {TextBlock: "text_delta", ThinkingBlock: "thinking_delta"}.get(type(open_block), "input_json_delta")
            assert event.kind == kind
            assert event.value
            built[-1][1] += event.value
        else:
            assert isinstance(event, BlockStop) and event.index == expected_index and open_block is not None
            if isinstance(open_block, ThinkingBlock):
                assert built[-1][2], "a thinking block ends with its signature"
            open_block, expected_index = None, expected_index + 1
    assert open_block is None
    assert len(built) == len(content)
    for (start, accumulated, signature), block in zip(built, content):
        if isinstance(block, TextBlock):
            assert accumulated == block.text and block.text.lstrip() == block.text != ""
        elif isinstance(block, ThinkingBlock):
            assert accumulated == block.thinking and block.thinking.strip() == block.thinking != ""
            assert signature == block.signature
        else:
            assert (start.id, start.name) == (block.id, block.name)
            assert json.loads(accumulated) == block.input


def summary(builder):
    return [b.text if isinstance(b, TextBlock) else (b.name, b.input) for b in builder.content]


XML_CALL = (
    "Writing it.\n<function_calls>\n<invoke name=\"Write\">\n<parameter name=\"file_path\">/tmp/hello.txt</parameter>\n"
    "<parameter name=\"content\">hello world</parameter>\n</invoke>\n</function_calls>"
)
TURNS = {
    "xml": (XML_CALL, ["Writing it.", ("Write", {"file_path": "/tmp/hello.txt", "content": "hello world"})]),
    "qwen": (
        "Sure.\n<tool_call>\n<function=Bash>\n<parameter=command>\nls -la\n</parameter>\n</function>\n</tool_call>\nThen more.",
        ["Sure.", ("Bash", {"command": "ls -la"}), "Then more."],
    ),
    "hermes": (
        '<tool_call>\n{"name": "Write", "arguments": {"file_path": "/a", "count": "3", "force": "true"}}\n</tool_call>',
        [("Write", {"file_path": "/a", "count": 3, "force": True})],
    ),
    "several": (
        XML_CALL + "\n\n<function=Bash>\n<parameter=command>\npwd\n</parameter>\n</function>\n"
        '<tool_call>{"name": "Bash", "arguments": {"command": "id"}}</tool_call>\nAll done.',
        [
            "Writing it.",
            ("Write", {"file_path": "/tmp/hello.txt", "content": "hello world"}),
            ("Bash", {"command": "pwd"}),
            ("Bash", {"command": "id"}),
            "All done.",
        ],
    ),
    "think": ("<think>Maybe <function=Bash></think>\n\nThe answer is 4.", ["The answer is 4."]),
}


@pytest.mark.parametrize("name", TURNS)
def test_turns_give_the_expected_blocks_and_stop_reason(name):
    turn, expected = TURNS[name]
    builder, _ = run(turn)
    assert summary(builder) == expected
    made_call = any(isinstance(item, tuple) for item in expected)
    assert builder.stop_reason == ("tool_use" if made_call else "end_turn")
    assert builder.stop_sequence is None


@pytest.mark.parametrize("name", TURNS)
def test_every_split_point_and_single_characters_give_the_same_blocks(name):
    turn, _ = TURNS[name]
    for mode in (False, None):
        whole, _ = run(turn, thinking_open=mode)
        for cut in range(1, len(turn)):
            split, _ = run([turn[:cut], turn[cut:]], thinking_open=mode)
            assert split.content == whole.content, cut
        by_char, _ = run(list(turn), thinking_open=mode)
        assert by_char.content == whole.content


@given(
    name=st.sampled_from(sorted(TURNS)),
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=30),
    stops=st.sampled_from([None, ["All done"], ["</tool_call>", "zzz"], ["\n\n"]]),
)
def test_random_chunking_gives_the_same_response(name, cuts, stops):
    turn, _ = TURNS[name]
    bounds = sorted({c % (len(turn) + 1) for c in cuts} | {0, len(turn)})
    chunks = [turn[a:b] for a, b in zip(bounds, bounds[1:])]
    whole, _ = run(turn, stop_sequences=stops)
    split, _ = run(chunks, stop_sequences=stops)
    assert (split.content, split.stop_reason, split.stop_sequence) == (whole.content, whole.stop_reason, whole.stop_sequence)


def test_text_streams_as_soon_as_it_cannot_be_markup():
    builder = ResponseBuilder(TOOLS, ["STOP"], thinking_open=False)
    assert builder.feed("Hello") == [BlockStart(0, TextBlock(text="")), BlockDelta(0, "text_delta", "Hello")]
    assert builder.feed(" there <fun") == [BlockDelta(0, "text_delta", " there")]
    assert builder.feed("ny> ST") == [BlockDelta(0, "text_delta", " <funny>")]
    assert builder.feed("ONE") == [BlockDelta(0, "text_delta", " STONE")]


def test_whitespace_only_text_between_calls_makes_no_block():
    call = "<function=Bash>\n<parameter=command>\nx\n</parameter>\n</function>"
    builder, events = run(f"\n\n{call}\n \n\t{call}\n\n")
    assert [type(b) for b in builder.content] == [ToolUseBlock, ToolUseBlock]
    assert [e.index for e in events if isinstance(e, BlockStart)] == [0, 1]


def test_tool_use_ids_are_unique_and_prefixed():
    ids = {new_tool_use_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(i.startswith("toolu_") and len(i) == 30 and i[6:].isalnum() for i in ids)
    builder = ResponseBuilder(TOOLS, thinking_open=False)
    builder.feed(TURNS["several"][0])
    builder.finish("stop")
    made = [b.id for b in builder.content if isinstance(b, ToolUseBlock)]
    assert len(made) == 3 == len(set(made)) and all(i.startswith("toolu_") for i in made)


def test_call_events_are_start_full_json_stop_after_closing_text():
    _, events = run(TURNS["xml"][0])
    assert [type(e).__name__ for e in events] == ["BlockStart", "BlockDelta", "BlockStop", "BlockStart", "BlockDelta", "BlockStop"]
    assert events[3].block == ToolUseBlock(id=f"toolu_{0:024d}", name="Write", input={})
    assert events[4].value == '{"file_path":"/tmp/hello.txt","content":"hello world"}'


# --------------------------------------------------------------------------- what is not a call


def test_undeclared_tool_and_unreadable_json_come_out_as_text():
    undeclared = '<function_calls><invoke name="Delete"><parameter name="path">/</parameter></invoke></function_calls>'
    bad_json = '<tool_call>{"name": "Bash", "arguments": {"command": ls -la}}</tool_call>'
    builder, _ = run(f"A {undeclared} B {bad_json} C")
    assert summary(builder) == [f"A {undeclared} B {bad_json} C"]
    assert builder.stop_reason == "end_turn"


def test_without_tools_markup_is_text():
    for tools in (None, []):
        builder, _ = run(XML_CALL, tools=tools)
        assert summary(builder) == [XML_CALL]


def test_max_tokens_inside_a_call_gives_no_tool_use_and_keeps_the_text():
    cut = XML_CALL[: XML_CALL.index("hello world") + 5]
    builder, _ = run(cut, finish="length")
    assert summary(builder) == [cut]
    assert builder.stop_reason == "max_tokens"


def test_max_tokens_after_a_complete_call_keeps_the_call():
    builder, _ = run(XML_CALL + "\nAnd now", finish="length")
    assert [type(b) for b in builder.content] == [TextBlock, ToolUseBlock, TextBlock]
    assert builder.stop_reason == "max_tokens"


# --------------------------------------------------------------------------- stop sequences


def test_stop_sequence_split_across_chunks_is_not_emitted_and_is_reported():
    builder, events = run(["The answer is 4.\nEN", "D", " of text that must not appear"], stop_sequences=["END", "\n\nHuman:"])
    assert builder.stopped
    assert summary(builder) == ["The answer is 4.\n"]
    assert (builder.stop_reason, builder.stop_sequence) == ("stop_sequence", "END")
    assert not any("EN" in e.value for e in events if isinstance(e, BlockDelta))


def test_feed_after_a_stop_gives_nothing():
    builder = ResponseBuilder(None, ["X"], thinking_open=False)
    builder.feed("aXb")
    assert builder.stopped and builder.feed("more") == []
    builder.finish("length")
    assert summary(builder) == ["a"] and builder.stop_reason == "stop_sequence"


def test_stop_sequence_inside_a_call_cuts_it_to_text():
    builder, _ = run(XML_CALL, stop_sequences=["</invoke>"])
    assert builder.stop_reason == "stop_sequence"
    assert not any(isinstance(b, ToolUseBlock) for b in builder.content)
    assert summary(builder)[0].startswith("Writing it.\n<function_calls>")


def test_the_first_stop_to_complete_wins():
    matcher = StopMatcher(["abcd", "bc", "zz"])
    assert matcher.feed("xxab") == ("xx", None)
    assert matcher.feed("cd") == ("a", "bc")
    assert StopMatcher(["ab", "b"]).feed("_ab") == ("_", "ab")
    assert StopMatcher(["ab"]).feed("a") == ("", None)


def test_partial_stop_sequence_at_the_end_is_text():
    builder, _ = run(["Almost EN"], stop_sequences=["END"])
    assert summary(builder) == ["Almost EN"] and builder.stop_reason == "end_turn"


def test_text_keeps_its_trailing_whitespace_except_before_a_call():
    builder, _ = run(["alpha beta ", "STOP gamma"], stop_sequences=["STOP"])
    assert summary(builder) == ["alpha beta "]
    builder, _ = run("one two \n", finish="length")
    assert summary(builder) == ["one two \n"]
    builder, _ = run("Checking.\n\n<function=Bash>\n<parameter=command>\nls\n</parameter>\n</function>\n\nFound it. ")
    assert summary(builder) == ["Checking.", ("Bash", {"command": "ls"}), "Found it. "]


# --------------------------------------------------------------------------- thinking


@pytest.mark.parametrize("mode", [None, True])
def test_leading_thinking_closed_without_an_opening_tag_never_leaks(mode):
    turn = "The user wants a file. I will call Write.\n</think>\n\nDone."
    for chunks in ([turn], list(turn)):
        builder, events = run(chunks, thinking_open=mode)
        assert summary(builder) == ["Done."]
        assert not any("Write" in e.value for e in events if isinstance(e, BlockDelta))


def test_think_split_across_chunks_never_leaks():
    turn = "<think>secret plan</think>Visible."
    for cut in range(1, len(turn)):
        builder, events = run([turn[:cut], turn[cut:]])
        assert summary(builder) == ["Visible."]
        assert not any("secret" in e.value or "think" in e.value for e in events if isinstance(e, BlockDelta))


def test_thinking_on_gives_a_thinking_block_with_deltas_then_a_signature():
    turn = "<think>\nI should list files.\n</think>\n\nHere they are."
    for chunks in ([turn], list(turn)):
        builder, events = run(chunks, thinking=True)
        thought, answer = builder.content
        assert thought == ThinkingBlock(thinking="I should list files.", signature=thinking_signature("I should list files."))
        assert answer == TextBlock(text="Here they are.")
        kinds = [e.kind for e in events if isinstance(e, BlockDelta) and e.index == 0]
        assert kinds[-1] == "signature_delta" and set(kinds[:-1]) == {"thinking_delta"}
        assert events[0] == BlockStart(0, ThinkingBlock(thinking="", signature=""))


def test_thinking_off_drops_reasoning_without_splitting_the_text():
    builder, _ = run("Hello <think>secret</think>world", thinking=False)
    assert summary(builder) == ["Hello world"]


def test_empty_thinking_makes_no_block():
    builder, _ = run("<think>\n\n</think>Answer.", thinking=True)
    assert summary(builder) == ["Answer."]


def test_reasoning_between_calls_and_text_gets_its_own_blocks():
    call = "<function=Bash>\n<parameter=command>\nls\n</parameter>\n</function>"
    builder, _ = run(f"<think>a</think>Text.{call}<think>b</think>More.", thinking=True)
    assert [type(b).__name__ for b in builder.content] == ["ThinkingBlock", "TextBlock", "ToolUseBlock", "ThinkingBlock", "TextBlock"]


# --------------------------------------------------------------------------- special tokens


@pytest.mark.parametrize("thinking", [False, True])
def test_special_tokens_never_reach_the_client_however_they_are_split(thinking):
    specials = ["<|im_end|>", "<|endoftext|>", "<|im_start|>"]
    turn = "<think>plan<|im_end|> it</think>Hi <|im_start|>there<|endoftext|>. <|im"
    whole, _ = run(turn, thinking=thinking, special_tokens=specials)
    expected = (["plan it"] if thinking else []) + ["Hi there. <|im"]
    assert [b.thinking if isinstance(b, ThinkingBlock) else b.text for b in whole.content] == expected
    for cut in range(1, len(turn)):
        split, events = run([turn[:cut], turn[cut:]], thinking=thinking, special_tokens=specials)
        assert split.content == whole.content, cut
        assert not any("<|im_end|>" in e.value for e in events if isinstance(e, BlockDelta))


# --------------------------------------------------------------------------- coercion


@pytest.mark.parametrize(
    "schema, raw, expected",
    [
        ({"type": "integer"}, "5", 5),
        ({"type": "integer"}, " 5\n", 5),
        ({"type": "integer"}, "5.0", 5),
        ({"type": "integer"}, "5.5", "5.5"),
        ({"type": "integer"}, "1_000", "1_000"),
        ({"type": "integer"}, "five", "five"),
        ({"type": "number"}, "2.5", 2.5),
        ({"type": "number"}, "3", 3),
        ({"type": "number"}, "nan", "nan"),
        ({"type": "boolean"}, "true", True),
        ({"type": "boolean"}, "True", True),
        ({"type": "boolean"}, "1", True),
        ({"type": "boolean"}, "false", False),
        ({"type": "boolean"}, "0", False),
        ({"type": "boolean"}, "yes please", "yes please"),
        ({"type": "null"}, "null", None),
        ({"type": "array", "items": {"type": "string"}}, '["a", "b"]', ["a", "b"]),
        ({"type": "array", "items": {"type": "string"}}, "just one", ["just one"]),
        ({"type": "array", "items": {"type": "integer"}}, '["1", 2]', [1, 2]),
        ({"type": "array", "items": {"type": "integer"}}, "1, 2", "1, 2"),
        ({"type": "array"}, "['a', True]", ["a", True]),
        ({"type": "object", "properties": {"n": {"type": "integer"}}}, '{"n": "4", "x": "y"}', {"n": 4, "x": "y"}),
        ({"type": "object"}, "not json", "not json"),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "7", 7),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, "7", "7"),
        ({"type": ["integer", "null"]}, "null", None),
        ({"oneOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}}]}, "x", ["x"]),
        ({"enum": [1, 2, 3]}, "2", 2),
        ({}, "  kept as is  ", "  kept as is  "),
        (None, "[1]", "[1]"),
        ({"type": "string"}, "  \t spaced\n\n", "  \t spaced\n\n"),
        ({"type": "string"}, "[1, 2]", "[1, 2]"),
        ({"type": "string"}, 5, "5"),
        ({"type": "integer"}, 5.0, 5),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 7, 7),
        ({"type": "integer"}, True, True),
    ],
)
def test_coercion_table(schema, raw, expected):
    result = coerce(raw, schema)
    assert result == expected and type(result) is type(expected)


def test_unknown_arguments_and_names_are_kept_as_written():
    assert coerce_arguments({"Count": "5", "count": "5", "extra": "[1]"}, SCHEMA) == {"Count": "5", "count": 5, "extra": "[1]"}
    assert coerce_arguments({"a": "1"}, {}) == {"a": "1"}


def test_tool_input_is_coerced_and_strings_keep_their_whitespace():
    content = "  leading\n\tinner\n\ntrailing  \n"
    turn = (
        '<invoke name="Write"><parameter name="file_path"> /a b </parameter>'
        f'<parameter name="content">{content}</parameter><parameter name="count">12</parameter>'
        '<parameter name="paths">["x", "y"]</parameter><parameter name="options">{"depth": "2"}</parameter>'
        '<parameter name="limit">null</parameter><parameter name="ratio">0.5</parameter></invoke>'
    )
    qwen = (
        f"<function=Write>\n<parameter=content>\n{content}\n</parameter>\n<parameter=force>\nFalse\n</parameter>\n</function>"
    )
    builder, _ = run(turn + qwen)
    first, second = builder.content
    assert first.input == {
        "file_path": " /a b ",
        "content": content,
        "count": 12,
        "paths": ["x", "y"],
        "options": {"depth": 2},
        "limit": None,
        "ratio": 0.5,
    }
    assert second.input == {"content": content, "force": False}


# --------------------------------------------------------------------------- cost


def test_long_turn_in_small_chunks_keeps_every_block():
    call = '<function_calls>\n<invoke name="Write">\n<parameter name="content">' + "x = 1\n" * 3000 + "</parameter>\n</invoke>\n</function_calls>\n"
    turn = ("Some prose with a < sign and <b>tags</b>.\n" * 200 + call) * 3
    chunks = [turn[i : i + 4] for i in range(0, len(turn), 4)]
    builder = ResponseBuilder(TOOLS, ["\n\nHuman:"], thinking_open=False)
    for chunk in chunks:
        builder.feed(chunk)
    builder.finish("stop")
    assert len(builder.content) == 6
    assert [type(b).__name__ for b in builder.content] == ["TextBlock", "ToolUseBlock"] * 3
    assert builder.content[1].input["content"] == "x = 1\n" * 3000


# --------------------------------------------------------------------------- failed calls and the retry


class ScriptedReader:
    """A reader that gives fixed items for each chunk, to drive the builder's retry logic."""

    def __init__(self, script):
        self.script = list(script)

    def feed(self, text):
        return self.script.pop(0) if self.script else []

    def finish(self, *, truncated=False):
        return []


def scripted(*rounds):
    from trimkit.toolcalls.dialects import Dialect

    readers = [ScriptedReader(r) for r in rounds]
    return Dialect("scripted", lambda t, v: False, ("<x>",), (), lambda catalog, thinking_open: readers.pop(0))


BAD = FailedCall("Delete", '<invoke name="Delete"></invoke>', "undeclared", "no tool named 'Delete'; declared tools: Write, Bash")
GOOD = ParsedCall("Bash", {"command": "ls"}, "")


def test_without_hold_a_failed_call_is_its_raw_text():
    builder, _ = run(["a", "b"], dialect=scripted([["Before "], [BAD, " after"]]))
    assert summary(builder) == [f"Before {BAD.raw} after"] and builder.failed is None


def test_a_held_failed_call_stops_the_turn_and_a_restart_continues_the_blocks():
    builder = ResponseBuilder(TOOLS, dialect=scripted([["Before."], [BAD, "tail"]], [[GOOD], [BAD]]), hold_failed=True, id_factory=counter_ids())
    events = builder.feed("1") + builder.feed("2")
    assert builder.failed == BAD and builder.stopped
    assert builder.finish("stop") == [] and builder.stop_reason is None
    builder.restart(thinking_open=False)
    assert not builder.stopped
    events += builder.feed("3") + builder.feed("4") + builder.finish("stop")
    check_events(events, builder.content)
    assert summary(builder) == ["Before.", ("Bash", {"command": "ls"}), BAD.raw]  # one retry only
    assert builder.stop_reason == "tool_use"


def test_release_gives_the_held_call_and_what_followed_as_text():
    builder = ResponseBuilder(TOOLS, dialect=scripted([["Before. "], [BAD, " tail"]]), hold_failed=True)
    events = builder.feed("1") + builder.feed("2") + builder.finish("stop")
    events += builder.release_failed() + builder.finish("stop")
    check_events(events, builder.content)
    assert summary(builder) == [f"Before. {BAD.raw} tail"] and builder.stop_reason == "end_turn"
