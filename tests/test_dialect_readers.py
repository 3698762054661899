"""Every family's reader on scripted output: the figure-table cases, values full of markup, any chunking, cost."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trimkit.testing.call_scenarios import CLOSERS, FAMILY_CASES, TOOLS, WRITERS, Looks, build, cases, check, summary
from trimkit.testing.call_scenarios import read as scripted_read
from trimkit.toolcalls.dialects import DIALECTS, dialect_named
from trimkit.toolcalls.items import FailedCall, ParsedCall, Reasoning

ALL_CASES = [case for name in WRITERS for kind in FAMILY_CASES for case in cases(name)[kind]]


def test_every_dialect_has_a_writer_and_cases_in_every_column_it_can_have():
    assert set(WRITERS) == {d.name for d in DIALECTS}
    for name, writer in WRITERS.items():
        by_kind = cases(name)
        for kind in FAMILY_CASES:
            if kind.startswith("thinking") and writer.thinking is None:
                assert by_kind[kind] == []
            else:
                assert by_kind[kind], (name, kind)


@pytest.mark.parametrize("case", ALL_CASES, ids=[f"{c.dialect}-{c.kind}-{c.label}".replace(" ", "_") for c in ALL_CASES])
def test_family_case(case):
    assert check(case) is None


def read(dialect: str, chunks: list[str], names=None, thinking_open=False, truncated=False) -> list:
    return scripted_read(dialect, chunks, TOOLS if names is None else names, thinking_open, truncated)


def chunked(text: str, cuts: list[int]) -> list[str]:
    bounds = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


# --------------------------------------------------------------------------- values are never cut

FRAGMENTS = st.one_of(
    st.sampled_from(CLOSERS + ("\n", " ", "\t", '"', "'", "\\", "{", "}", "[", "]", ",", ":", "<", ">", "=", "|")),
    st.text(alphabet="abc xyz<>/=\"'{}[]\n\\|", max_size=6),
    st.text(max_size=4),
)
VALUES = st.lists(FRAGMENTS, max_size=14).map("".join)


@pytest.mark.parametrize("dialect", sorted(WRITERS))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(value=VALUES, other=VALUES, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8))
def test_values_full_of_markup_come_through_whole(dialect, value, other, cuts):
    writer = WRITERS[dialect]
    if not (writer.value_is_writable(value) and writer.value_is_writable(other)):
        return
    calls = [("Write", {"file_path": other, "content": value}), ("Bash", {"command": value})]
    turn = writer.calls(calls)
    items = read(dialect, chunked(turn, cuts))
    assert [(i.name, i.arguments) for i in items if isinstance(i, ParsedCall)] == calls
    assert not [i for i in items if not isinstance(i, ParsedCall) and not (isinstance(i, str) and i.isspace())]


@pytest.mark.parametrize("dialect", sorted(WRITERS))
def test_the_issues_write_keeps_its_closing_tag_and_everything_after_it(dialect):
    content = 'a = "</parameter>"\nb = 2\n'
    turn = WRITERS[dialect].calls([("Write", {"file_path": "/tmp/a.py", "content": content})])
    items = [i for i in read(dialect, [turn]) if not (isinstance(i, str) and i.isspace())]
    assert [(i.name, i.arguments) for i in items] == [("Write", {"file_path": "/tmp/a.py", "content": content})]


# --------------------------------------------------------------------------- any chunking


def turn_pieces(dialect: str):
    writer = WRITERS[dialect]
    pieces = [
        st.just(writer.calls([("Bash", {"command": "ls"})])),
        st.just(writer.calls([("Write", {"file_path": "/a", "content": "x</parameter>\n</tool_call>y"}), ("Bash", {"command": "pwd"})])),
        st.just(writer.calls([("Nope", {"a": 1})])),
        st.sampled_from(["Some text. ", "\n\n", "<b>bold</b> ", "x < y > z ", "{not json} "]),
    ]
    if writer.thinking is not None:
        pieces.append(st.just(writer.thinking("plan <tool_call> it")))
    return st.lists(st.one_of(*pieces), max_size=6).map("".join)


@pytest.mark.parametrize("dialect", sorted(WRITERS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12), mode=st.sampled_from([False, None, True]))
def test_any_chunking_gives_the_same_items(dialect, data, cuts, mode):
    turn = data.draw(turn_pieces(dialect))
    assert read(dialect, chunked(turn, cuts), thinking_open=mode) == read(dialect, [turn], thinking_open=mode)


SOUP = st.lists(
    st.sampled_from(
        CLOSERS
        + tuple(m for d in DIALECTS for m in d.call_markers)
        + tuple(m for d in DIALECTS for pair in d.reasoning_markers for m in pair)
        + ("<|start|>assistant", "<|message|>", "call:Bash{", "Bash", "[ARGS]", "{", "}", '"', " ", "\n", "x", "function<｜tool▁sep｜>")
    ),
    max_size=40,
).map("".join)


@pytest.mark.parametrize("dialect", sorted(WRITERS))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(turn=SOUP, cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=10), mode=st.sampled_from([False, None, True]))
def test_a_soup_of_every_familys_markers_reads_the_same_however_it_is_chunked(dialect, turn, cuts, mode):
    assert read(dialect, chunked(turn, cuts), thinking_open=mode) == read(dialect, [turn], thinking_open=mode)


@pytest.mark.parametrize("dialect", sorted(WRITERS))
@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=60), cuts=st.lists(st.integers(min_value=0, max_value=100), max_size=6))
def test_nothing_is_lost_from_any_text(dialect, text, cuts):
    """Every character comes back as text, reasoning, or a call's (or failed call's) markup."""
    items = read(dialect, chunked(text, cuts))
    kept = "".join(i if isinstance(i, str) else i.text if isinstance(i, Reasoning) else i.raw for i in items)
    assert len(kept) <= len(text)
    assert items == read(dialect, [text])


@pytest.mark.parametrize("dialect", sorted(WRITERS))
def test_without_tools_no_markup_is_a_call(dialect):
    turn = WRITERS[dialect].calls([("Bash", {"command": "ls"})])
    items = read(dialect, [turn], names=[])
    assert not [i for i in items if isinstance(i, (ParsedCall, FailedCall))]


# --------------------------------------------------------------------------- failures, reported


@pytest.mark.parametrize("dialect", sorted(WRITERS))
def test_an_undeclared_tool_is_reported_with_its_markup(dialect):
    turn = WRITERS[dialect].calls([("Delete", {"path": "/"})])
    items = read(dialect, [turn])
    failed = [i for i in items if isinstance(i, FailedCall)]
    assert len(failed) == 1 and failed[0].reason == "undeclared" and failed[0].name == "Delete"
    assert "Delete" in failed[0].raw and "declared tools: Write, Bash, Grep" in failed[0].detail


@pytest.mark.parametrize("dialect", sorted(WRITERS))
def test_a_call_cut_by_max_tokens_is_text_and_one_the_model_ended_is_unfinished(dialect):
    turn = WRITERS[dialect].calls([("Write", {"file_path": "/a", "content": "hello world, a long value"})])
    cut = turn[: turn.index("world")]
    assert "".join(i for i in read(dialect, [cut], truncated=True) if isinstance(i, str)) == cut
    failed = [i for i in read(dialect, [cut]) if isinstance(i, FailedCall)]
    assert len(failed) == 1 and failed[0].reason == "unfinished"


# --------------------------------------------------------------------------- family details


def test_harmony_reads_the_recipient_in_the_role_or_the_channel_and_drops_headers():
    both = (
        "<|channel|>analysis<|message|>think<|end|>"
        '<|start|>assistant to=functions.Bash<|channel|>commentary json<|message|>{"command": "a"}<|call|>'
        '<|start|>assistant<|channel|>commentary to=functions.Bash <|constrain|>json<|message|>{"command": "b"}<|end|>'
        "<|start|>assistant<|channel|>final<|message|>Done.<|return|>"
    )
    items = read("harmony", [both])
    assert items[0] == Reasoning("think")
    assert [i.arguments for i in items if isinstance(i, ParsedCall)] == [{"command": "a"}, {"command": "b"}]
    assert items[-1] == "Done."
    assert read("harmony", ["Plain answer."]) == ["Plain answer."]


def test_harmony_builtin_tools_are_undeclared_calls():
    items = read("harmony", ['<|channel|>analysis to=browser.search <|constrain|>json<|message|>{"query": "x"}<|call|>'])
    assert items[0].reason == "undeclared" and items[0].name == "browser.search"


def test_mistral_reads_both_tokenizer_generations():
    old = '[TOOL_CALLS] [{"name": "Bash", "arguments": {"command": "a"}, "id": "abcdefghi"}]</s>'
    new = '[TOOL_CALLS]Bash[CALL_ID]abcdefghi[ARGS]{"command": "b"}[TOOL_CALLS]Bash{"command": "c"} then text'
    assert [i.arguments["command"] for i in read("mistral", [old + new]) if isinstance(i, ParsedCall)] == ["a", "b", "c"]
    assert read("mistral", [new])[-1] == " then text"


def test_llama3_reads_json_only_at_the_start_and_after_the_python_tag():
    call = '{"name": "Bash", "parameters": {"command": "ls"}}'
    assert isinstance(read("llama3_json", ["  " + call])[0], ParsedCall)
    assert read("llama3_json", ["Here: " + call]) == ["Here: " + call]
    assert read("llama3_json", ['{"answer": 4}']) == ['{"answer": 4}']
    assert isinstance(read("llama3_json", ["Sure.<|python_tag|>" + call + "<|eom_id|>"])[1], ParsedCall)


def test_deepseek_reads_r1_v31_and_dsml():
    r1 = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>Bash\n```json\n{\"command\": \"a\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
    v31 = '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>Bash<｜tool▁sep｜>{"command": "b"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>'
    dsml = (
        '<｜DSML｜function_calls>\n<｜DSML｜invoke name="Bash">\n<｜DSML｜parameter name="command" string="true">c</｜DSML｜parameter>\n'
        '<｜DSML｜parameter name="timeout" string="false">5</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜function_calls>'
    )
    calls = [i.arguments for i in read("deepseek", [r1, v31, dsml]) if isinstance(i, ParsedCall)]
    assert calls == [{"command": "a"}, {"command": "b"}, {"command": "c", "timeout": 5}]


def test_gemma_drops_the_tool_response_marker_after_a_call_and_reads_its_thought_channel():
    turn = '<|channel>thought\nplan<channel|>Ok.<|tool_call>call:Bash{command:<|"|>ls<|"|>}<tool_call|><|tool_response>'
    items = read("gemma4", [turn], thinking_open=None)
    assert items == [Reasoning("plan"), "Ok.", items[2]] and isinstance(items[2], ParsedCall)


def test_a_marker_that_is_one_special_token_or_many_pieces_reads_the_same():
    turn = '<|channel|>commentary to=functions.Bash <|constrain|>json<|message|>{"command": "ls"}<|call|>'
    tokens = ["<|channel|>", "comment", "ary", " to", "=", "functions", ".", "Bash", " ", "<|constrain|>", "json", "<|message|>", '{"', "command", '":', ' "', "ls", '"}', "<|call|>"]
    assert "".join(tokens) == turn
    assert read("harmony", tokens) == read("harmony", [turn]) == read("harmony", list(turn))


# --------------------------------------------------------------------------- cost: each character looked at a bounded number of times


ADVERSARIAL = {
    "angle brackets": "<" * 20_000,
    "closers in a value": '<invoke name="Bash"><parameter name="command">' + "</parameter>x" * 2_000,
    "open brackets": "<tool_call>" + "{" * 20_000,
    "escaped quotes": '<tool_call>{"a": "' + '\\"' * 10_000,
    "openers": "<tool_call>" * 500 + "<|tool_call>" * 500 + "[TOOL_CALLS]" * 500 + "<|channel|>" * 500 + "<｜tool▁call▁begin｜>" * 300,
    "names": "<tool_call>" + "a" * 150 + "<arg_key>" * 2_000,
    "gemma quotes": "<|tool_call>call:Bash{" + '<|"|>' * 4_000,
}


@pytest.mark.parametrize("dialect", sorted(WRITERS))
@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_text_costs_a_bounded_number_of_looks_per_character(dialect, name):
    text = ADVERSARIAL[name]
    for chunk_size in (len(text), 7):
        reader = dialect_named(dialect).reader(TOOLS, thinking_open=False)
        with Looks() as looks:
            for i in range(0, len(text), chunk_size):
                reader.feed(text[i : i + chunk_size])
            reader.finish()
        assert len(text) // 2 <= looks.count <= 60 * len(text), (chunk_size, looks.count / len(text))


# --------------------------------------------------------------------------- mlx-lm's parsers agree where they parse

MLX_PARSERS = {"gemma4": "gemma4", "glm47": "glm47", "minimax_m2": "minimax_m2", "qwen3_coder": "qwen3_coder", "hermes": "json_tools", "mistral": "mistral"}
OPENAI_TOOLS = [{"type": "function", "function": {"name": t.name, "parameters": t.input_schema}} for t in TOOLS]


def mlx_calls(dialect: str, turn: str) -> list[tuple[str, dict]]:
    """What mlx-lm's server would make of a turn: each segment between the parser's markers, parsed."""
    import importlib

    module = importlib.import_module(f"mlx_lm.tool_parsers.{MLX_PARSERS[dialect]}")
    start, end = module.tool_call_start, module.tool_call_end
    segments = []
    for piece in turn.split(start)[1:]:
        segments.append(piece.split(end)[0] if end else piece)
    out = []
    for segment in segments:
        parsed = module.parse_tool_call(segment, OPENAI_TOOLS)
        for call in parsed if isinstance(parsed, list) else [parsed]:
            arguments = call["arguments"]
            out.append((call["name"], json.loads(arguments) if isinstance(arguments, str) else arguments))
    return out


@pytest.mark.parametrize("dialect", sorted(MLX_PARSERS))
@pytest.mark.parametrize("kind", ["single call", "parallel calls", "typed arguments"])
def test_mlx_lm_parses_the_same_calls(dialect, kind):
    pytest.importorskip("mlx_lm.tool_parsers")
    for case in cases(dialect)[kind]:
        if case.label == "numbers written as strings" and dialect in ("hermes", "mistral", "gemma4"):
            continue  # mlx-lm leaves JSON values as the model typed them; trimkit types them by the schema
        ours = [block for block in summary(build(case).content) if isinstance(block, tuple)]
        if dialect in ("glm47", "minimax_m2"):  # mlx-lm strips whitespace around their values; trimkit keeps it
            ours = [(name, {k: v.strip() if isinstance(v, str) else v for k, v in args.items()}) for name, args in ours]
        assert mlx_calls(dialect, case.turn) == ours, case.label


def test_mlx_lm_cuts_a_value_where_trimkit_does_not():
    """The reason trimkit reads for itself: mlx-lm's Qwen parser ends a value at the first closing tag."""
    pytest.importorskip("mlx_lm.tool_parsers")
    content = 'a = "</parameter>"\nb = 2\n'
    turn = WRITERS["qwen3_coder"].calls([("Write", {"file_path": "/a", "content": content})])
    assert mlx_calls("qwen3_coder", turn)[0][1]["content"] != content
    assert read("qwen3_coder", [turn])[0].arguments["content"] == content
