"""The tagged readers (trimkit's XML, Qwen3-Coder, Hermes, GLM): forms, text fallbacks, thinking, chunking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trimkit.convention import quote_attr, unquote_attr
from trimkit.testing.call_scenarios import read
from trimkit.toolcalls.catalog import Catalog
from trimkit.toolcalls.dialects import dialect_named
from trimkit.toolcalls.dialects.engine import HEADER_LIMIT
from trimkit.toolcalls.items import FailedCall, ParsedCall, Reasoning
from trimkit.toolcalls.scan import Needles

NAMES = {"Write", "Bash"}


def parse(text: str, chunks: list[str] | None = None, names=NAMES, dialect="xml", thinking_open=False, truncated=False) -> list:
    """Items with adjacent text (and reasoning) merged, so results compare independently of chunking."""
    return read(dialect, chunks if chunks is not None else [text], sorted(names), thinking_open, truncated)


def calls(items: list) -> list[tuple[str, dict]]:
    return [(item.name, item.arguments) for item in items if isinstance(item, ParsedCall)]


def text(items: list) -> str:
    """What the client would see as text when failed calls are not retried."""
    return "".join(item if isinstance(item, str) else item.raw for item in items if isinstance(item, (str, FailedCall)))


XML = '<function_calls>\n<invoke name="Write">\n<parameter name="file_path">/tmp/a.txt</parameter>\n<parameter name="content">  two\n\tlines  </parameter>\n</invoke>\n</function_calls>'
QWEN = "<tool_call>\n<function=Write>\n<parameter=file_path>\n/tmp/a.txt\n</parameter>\n<parameter=content>\n\n  two\n\tlines  \n\n</parameter>\n</function>\n</tool_call>"
HERMES = '<tool_call>\n{"name": "Write", "arguments": {"file_path": "/tmp/a.txt", "content": "  two\\n\\tlines  "}}\n</tool_call>'
WRITE = ("Write", {"file_path": "/tmp/a.txt", "content": "  two\n\tlines  "})


@pytest.mark.parametrize(
    "markup, expected",
    [
        (XML, WRITE),
        (XML.replace("function_calls>", "antml:function_calls>").replace("invoke", "antml:invoke").replace("parameter", "antml:parameter"), WRITE),
        (XML.removeprefix("<function_calls>\n").removesuffix("\n</function_calls>"), WRITE),
        (QWEN, ("Write", {"file_path": "/tmp/a.txt", "content": "\n  two\n\tlines  \n"})),
        (QWEN.removeprefix("<tool_call>\n").removesuffix("\n</tool_call>"), ("Write", {"file_path": "/tmp/a.txt", "content": "\n  two\n\tlines  \n"})),
        (HERMES, WRITE),
        ('<tool_call>{"name": "Write", "arguments": "{\\"file_path\\": \\"/x\\"}"}</tool_call>', ("Write", {"file_path": "/x"})),
        ('<tool_call>{"name": "Bash", "parameters": {"command": "ls"}}</tool_call>', ("Bash", {"command": "ls"})),
        ('<tool_call>{"name": "Bash"}</tool_call>', ("Bash", {})),
    ],
    ids=["xml", "antml-prefixed", "xml-unwrapped", "qwen", "qwen-unwrapped", "hermes", "hermes-string-args", "hermes-parameters", "hermes-no-args"],
)
def test_each_dialect_gives_one_call_and_only_the_text_around_it(markup, expected):
    items = parse(f"Before.\n{markup}\nAfter.")
    assert calls(items) == [expected]
    assert text(items).split() == ["Before.", "After."]


def test_qwen_strips_exactly_one_newline_on_each_side_of_a_value():
    items = parse("<function=Bash>\n<parameter=command>\n\nls\n\n</parameter>\n<parameter=x>y</parameter>\n</function>")
    assert calls(items) == [("Bash", {"command": "\nls\n", "x": "y"})]


def test_xml_attribute_names_are_unescaped_but_values_are_raw():
    items = parse('<invoke name="Bash"><parameter name="a&amp;b">x &lt; y &amp;&amp; z</parameter></invoke>')
    assert calls(items) == [("Bash", {"a&b": "x &lt; y &amp;&amp; z"})]


@given(name=st.text(max_size=30))
def test_unquote_attr_is_the_inverse_of_quote_attr(name):
    assert unquote_attr(quote_attr(name)) == name


def test_a_name_in_an_invoke_reads_as_the_convention_unquotes_it():
    names = {"a'b>c", "x&lt;y"}
    items = parse('<invoke name="a&apos;b&gt;c"></invoke><invoke name=\'x&amp;lt;y\'></invoke>', names=names)
    assert calls(items) == [("a'b>c", {}), ("x&lt;y", {})]
    assert [unquote_attr(quote_attr(n)) for n in sorted(names)] == sorted(names)


def test_several_calls_in_one_block_and_in_separate_blocks():
    two_invokes = '<function_calls><invoke name="Bash"><parameter name="command">a</parameter></invoke>\n<invoke name="Bash"><parameter name="command">b</parameter></invoke></function_calls>'
    two_qwen = "<tool_call>\n<function=Bash>\n<parameter=command>\nc\n</parameter>\n</function>\n<function=Bash>\n<parameter=command>\nd\n</parameter>\n</function>\n</tool_call>"
    items = parse(f"{two_invokes}\n\n{two_qwen}\n{HERMES}")
    assert [args.get("command") for _, args in calls(items)] == ["a", "b", "c", "d", None]
    assert text(items).strip() == ""


@pytest.mark.parametrize(
    "markup",
    [
        '<function_calls>\n<invoke name="Nope">\n<parameter name="a">1</parameter>\n</invoke>\n</function_calls>',
        "<tool_call>\n<function=Nope>\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>",
        "<function=Nope>\n<parameter=a>\n1\n</parameter>\n</function>",
        '<tool_call>\n{"name": "Nope", "arguments": {"a": 1}}\n</tool_call>',
        '<tool_call>\n{"name": "Write", "arguments": {"a": b c}}\n</tool_call>',
        '<tool_call>{"name": "Write", "arguments": [1]}</tool_call>',
        "<tool_call>I would call Write here</tool_call>",
        "<function=" + "x" * (HEADER_LIMIT + 5) + "</function>",
    ],
    ids=["xml-undeclared", "qwen-undeclared", "qwen-bare-undeclared", "hermes-undeclared", "hermes-bad-json", "hermes-list-args", "tool_call-prose", "runaway-header"],
)
def test_markup_that_makes_no_call_comes_out_as_its_raw_text(markup):
    items = parse(f"Hi {markup} bye")
    assert calls(items) == []
    assert text(items) == f"Hi {markup} bye"
    failed = [item for item in items if isinstance(item, FailedCall)]
    prose = "prose" in markup or "would call" in markup or "xxxx" in markup
    assert len(failed) == (0 if prose else 1)
    assert all(f.reason in ("undeclared", "unreadable") and f.detail for f in failed)


def test_undeclared_call_beside_a_declared_one_keeps_its_raw_text():
    bad = '<invoke name="Nope"><parameter name="a">1</parameter></invoke>'
    good = '<invoke name="Bash"><parameter name="command">ls</parameter></invoke>'
    items = parse(f"<function_calls>\n{bad}\n{good}\n{bad}\n</function_calls>")
    items = [item for item in items if not (isinstance(item, str) and item.isspace())]
    assert [type(item) for item in items] == [FailedCall, ParsedCall, FailedCall]
    assert items[0].raw == "<function_calls>\n" + bad and items[-1].raw == bad


def test_no_tools_means_all_markup_is_text():
    for markup in (XML, QWEN, HERMES):
        assert parse(markup, names=set()) == [markup]


def test_markup_cut_by_max_tokens_is_text_and_an_unfinished_call_is_reported():
    cut = XML[: XML.index("lines")]
    items = parse("Let me write.\n" + cut, truncated=True)
    assert items == ["Let me write.\n" + cut]
    items = parse("Let me write.\n" + cut)
    assert items[0] == "Let me write.\n" and items[1].reason == "unfinished" and items[1].name == "Write"
    assert text(items) == "Let me write.\n" + cut


def test_completed_calls_survive_a_missing_wrapper_close():
    items = parse(XML.removesuffix("</function_calls>"))
    assert calls(items) == [WRITE]


def test_stray_closer_right_after_a_call_is_dropped_but_kept_elsewhere():
    bare = QWEN.removeprefix("<tool_call>\n")
    assert text(parse(bare)).strip() == ""
    assert text(parse("a </tool_call> b")) == "a </tool_call> b"


def test_lookalike_tags_are_text():
    sample = "Use <functions> or <function_call> and <invoke> or <tool> -> x < y > z"
    assert parse(sample) == [sample]


# --------------------------------------------------------------------------- thinking


@pytest.mark.parametrize("mode", [None, False, True])
def test_think_sections_are_reasoning_wherever_they_are(mode):
    prefix = "" if mode is not True else "plan</think>"
    sample = prefix + "<think>a <tool_call> b</think>Answer <think>more</think>done"
    items = parse(sample, thinking_open=mode)
    assert text(items) == "Answer done"
    thoughts = [item.text for item in items if isinstance(item, Reasoning)]
    assert thoughts == [("plan" if mode else "") + "a <tool_call> b", "more"]


def test_text_before_a_first_close_tag_is_thinking_when_unknown():
    assert text(parse("I should list files.\n</think>\n\nHere.", thinking_open=None)) == "\n\nHere."
    assert text(parse("Plain answer, no thinking.", thinking_open=None)) == "Plain answer, no thinking."


def test_unknown_thinking_holds_leading_text_until_the_end():
    reader = dialect_named("xml").reader(NAMES, thinking_open=None)
    assert reader.feed("Plain answer") == []
    assert reader.finish() == ["Plain answer"]


def test_known_no_thinking_streams_at_once():
    reader = dialect_named("xml").reader(NAMES, thinking_open=False)
    assert reader.feed("Plain answer") == ["Plain answer"]


def test_an_opened_think_streams_reasoning_until_it_closes():
    reader = dialect_named("xml").reader(NAMES, thinking_open=True)
    assert reader.feed("step one </th") == [Reasoning("step one ")]
    assert reader.feed("ink>Answer") == ["Answer"]


def test_think_inside_a_call_value_is_not_thinking():
    items = parse("<function=Write>\n<parameter=content>\n<think>x</think>\n</parameter>\n</function>", thinking_open=False)
    assert calls(items) == [("Write", {"content": "<think>x</think>"})]


# --------------------------------------------------------------------------- streaming


def test_text_is_held_only_while_it_could_start_a_tag():
    parser = dialect_named("xml").reader(NAMES, thinking_open=False)
    assert parser.feed("Hello <") == ["Hello "]
    assert parser.feed("b>") == ["<b>"]
    assert parser.feed("x <func") == ["x "]
    assert parser.feed("y") == ["<funcy"]
    assert parser.feed("line one\nline two") == ["line one\nline two"]


SAMPLES = [
    f"Intro.\n{XML}\nMiddle <b>bold</b>\n{QWEN}\n{HERMES}\nEnd.",
    "<think>x</think>a<function=Bash>\n<parameter=command>\nls\n</parameter>\n</function></tool_call>z",
    "lead</think>" + XML.replace("Write", "Nope") + "<tool_call>junk</tool_call><function=" + "y" * 250,
    "<function_calls>text<invoke name=\"Nope\"></invoke>mid<invoke name=\"Bash\"></invoke>post</function_calls>",
]


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_two_chunk_split_and_single_characters_parse_the_same(sample):
    for mode in (None, False):
        whole = parse(sample, thinking_open=mode)
        for cut in range(1, len(sample)):
            assert parse(sample, [sample[:cut], sample[cut:]], thinking_open=mode) == whole, cut
        assert parse(sample, list(sample), thinking_open=mode) == whole


VOCAB = [
    "<function_calls>", "</function_calls>", '<invoke name="Bash">', '<invoke name="Nope">', "</invoke>",
    '<parameter name="command">', "</parameter>", "<tool_call>", "</tool_call>", "<function=Bash>",
    "<function=", "<parameter=command>", "</function>", '{"name": "Bash", "arguments": {"command": "x"}}',
    "<think>", "</think>", "<invoke name=\"Bash\">", "\n", " ", "ls -la", "<", ">", "{", "text",
]


@given(
    pieces=st.lists(st.sampled_from(VOCAB), max_size=25),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    mode=st.sampled_from([None, False, True]),
)
def test_random_markup_soup_parses_the_same_however_it_is_chunked(pieces, cuts, mode):
    sample = "".join(pieces)
    bounds = sorted({c % (len(sample) + 1) for c in cuts} | {0, len(sample)})
    chunks = [sample[a:b] for a, b in zip(bounds, bounds[1:])]
    assert parse(sample, chunks, thinking_open=mode) == parse(sample, thinking_open=mode)


@given(st.text(alphabet="<>/=\"{} \nabfnoctiunlrps_:", max_size=80))
def test_without_tools_or_thinking_text_passes_through_unchanged(sample):
    assert text(parse(sample, list(sample), names=set())) == sample


# --------------------------------------------------------------------------- pieces


def test_needles_find_the_earliest_tag_and_hold_only_a_possible_start():
    needles = Needles("<ab>", "<abc>", "xyz")
    assert needles.find("q<abc>xyz", 0) == (1, "<abc>")
    assert needles.find("qq xyz <ab>", 0) == (3, "xyz")
    assert needles.held("hello <a", 0) == 2
    assert needles.held("hello xy", 0) == 2
    assert needles.held("hello <az", 0) == 0


def test_json_calls_need_an_object_with_a_name():
    catalog = Catalog(["A"])
    assert catalog.calls_in({"name": "A", "arguments": {"x": 1}}, "r") == [ParsedCall("A", {"x": 1}, "r")]
    assert catalog.calls_in({"name": "A", "arguments": ""}, "r") == [ParsedCall("A", {}, "r")]
    assert catalog.calls_in({"type": "function", "function": {"name": "a", "arguments": '{"x": 2}'}}, "r") == [ParsedCall("A", {"x": 2}, "r")]
    assert catalog.calls_in({"arguments": {}}, "r") is None
    assert catalog.calls_in(["A"], "r") is None
    assert catalog.calls_in({"name": "A", "arguments": {}, "reply": "x"}, "r") is None
    failed = catalog.calls_in({"name": "A", "arguments": "not json"}, "r")[0]
    assert isinstance(failed, FailedCall) and failed.reason == "unreadable"
