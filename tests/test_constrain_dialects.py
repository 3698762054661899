"""Every dialect's call grammar, held against its family's tokenizer and its own reader.

Each grammar is compiled for a family's tiny tokenizer (trimkit.testing.families)
with the markers that tokenizer holds as special tokens written as tokens, found the
way the MLX backend finds them. What a model of that family writes (the family's
writer, special tokens as tokens) must be allowed; calls that break the schema or
``tool_choice`` must not; and random walks through the grammar, a random allowed
token at each step, must read back through the dialect's own reader as calls whose
input validates against the tool's schema: the grammar allows exactly what the
reader reads.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

llguidance = pytest.importorskip("llguidance")
jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("mlx_lm")

from tests.fixtures.claude_code_tools import tools as claude_code_tools
from tests.support.schemas import schema_errors
from tests.test_families import OPENS_THINKING
from trimkit.backends.mlx_grammar import GrammarEngine
from trimkit.constrain import CALL_GRAMMARS, UnsupportedSchema, build, constraint_for, markers
from trimkit.constrain.dialects.harmony import EARLIER_MESSAGES
from trimkit.testing.families import FAMILIES, Call, Reply, Segment, encode_segments, markup, plain
from trimkit.testing.grammar_models import FAMILY_BONUS, token_id
from trimkit.toolcalls.dialects import dialect_named
from trimkit.toolcalls.items import FailedCall, ParsedCall
from trimkit.wire import Tool, ToolChoice

NAMES = sorted(FAMILIES)
TOOLS = [Tool(**t) for t in claude_code_tools()]
SCHEMAS = {t.name: t.input_schema for t in TOOLS}
ANY, NONE = ToolChoice(type="any"), ToolChoice(type="none")
READ = Call("Read", {"file_path": "/a/b.py", "limit": 20})
BASH = Call("Bash", {"command": "ls -la </dev/null", "timeout": 1000})
TODO = Call("TodoWrite", {"todos": [{"content": "a", "status": "in_progress", "activeForm": "b"}]})
TITLE = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"],
         "additionalProperties": False}


class Family:
    """A family's tokenizers and a grammar builder with its special tokens."""

    def __init__(self, name: str, model_dir, dialect: str | None = None):
        from mlx_lm.utils import load_tokenizer
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "config.json").read_text())
        wrapper = load_tokenizer(model_dir, eos_token_ids=config["eos_token_id"])
        self.name, self.family = name, FAMILIES[name]
        self.dialect = dialect or self.family.dialect
        self.engine = GrammarEngine(wrapper, config["vocab_size"])
        self.llg = self.engine.tokenizer
        self.special = self.engine.special_ids(markers(self.dialect))
        self.hf = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.data = json.loads((model_dir / "tokenizer.json").read_text())

    def grammar(self, choice=None, output=None, *, thinking: bool = False, tools=TOOLS) -> str:
        opened = OPENS_THINKING[self.name][0 if thinking else 1]
        return build(constraint_for(tools, choice, output, dialect=self.dialect, thinking_open=opened), self.special)

    def matcher(self, grammar: str):
        matcher = llguidance.LLMatcher(self.llg, grammar, log_level=0)
        assert not matcher.is_error(), matcher.get_error()
        return matcher

    def allows(self, grammar: str, reply: Reply, *, thinking: bool = False) -> bool:
        """Whether the grammar lets the family write ``reply`` to its end (its end-of-turn token included)."""
        return self.allows_segments(grammar, self.family.write(reply, thinking=thinking))

    def allows_segments(self, grammar: str, segments: list[Segment]) -> bool:
        matcher = self.matcher(grammar)
        for token in encode_segments(self.hf, segments):
            if token in self.llg.eos_tokens and (matcher.is_stopped() or matcher.is_accepting()):
                return True  # the turn ends where the grammar may end
            if matcher.is_stopped() or not matcher.consume_token(token):
                return False
        return matcher.is_stopped() or matcher.is_accepting()


@pytest.fixture(scope="module")
def families(family_closing_model):
    made: dict[str, Family] = {}

    def get(name: str) -> Family:
        if name not in made:
            made[name] = Family(name, family_closing_model(name))
        return made[name]

    return get


# --------------------------------------------------------------------------- the markers


def test_markers_the_tokenizer_holds_as_special_tokens_are_found_there(families):
    gemma = families("gemma4")
    assert {'<|tool_call>', "<tool_call|>", '<|"|>', "<|channel>", "<channel|>"} <= set(gemma.special)
    assert all(gemma.llg.is_special_token(i) for i in gemma.special.values())
    # Qwen's <tool_call> is an added token that the tokenizer does not call special; llguidance
    # keeps it apart from text all the same, so the grammar must name it as a token too.
    assert {"<tool_call>", "</tool_call>"} <= set(families("qwen3_coder").special)
    assert {"<tool_call>", "<arg_key>", "</arg_value>", "</think>"} <= set(families("glm47").special)
    assert {"[TOOL_CALLS]", "[ARGS]", "[THINK]"} <= set(families("devstral").special)
    grammar = gemma.grammar(ANY)
    assert f"<[{gemma.special['<|tool_call>']}]>" in grammar and '"<|tool_call>"' not in grammar


@pytest.mark.parametrize("dialect", sorted(set(CALL_GRAMMARS) - {"harmony"}))
def test_free_text_keeps_out_every_marker_the_reader_opens_a_call_at(dialect):
    reader = dialect_named(dialect).reader(TOOLS, thinking_open=False)
    grammar = CALL_GRAMMARS[dialect]
    assert set(reader.openers) <= {grammar.opener, *grammar.avoid}


# --------------------------------------------------------------------------- what the family writes


@pytest.mark.parametrize("name", NAMES)
def test_every_claude_code_grammar_compiles_for_every_family(families, name):
    fam = families(name)
    for choice in (None, ANY, ToolChoice(type="tool", name="Edit"), NONE):
        fam.matcher(fam.grammar(choice))
    fam.matcher(fam.grammar(None, TITLE))
    fam.matcher(fam.grammar(None, TITLE, tools=None))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("thinking", [False, True])
def test_a_forced_call_written_as_the_family_writes_it_is_allowed(families, name, thinking):
    fam = families(name)
    grammar = fam.grammar(ANY, thinking=thinking)
    reasoning = "The file first." if thinking else ""
    for call in (READ, BASH, TODO):
        assert fam.allows(grammar, Reply(calls=(call,), thinking=reasoning), thinking=thinking), call
    if not fam.family.single_call:
        assert fam.allows(grammar, Reply(calls=(READ, BASH), thinking=reasoning), thinking=thinking)


@pytest.mark.parametrize("name", NAMES)
def test_under_auto_text_alone_or_text_then_a_call_is_allowed(families, name):
    fam = families(name)
    grammar = fam.grammar(None)
    assert fam.allows(grammar, Reply(text="No call needed; the answer is 4."))
    assert fam.allows(grammar, Reply(calls=(READ,)))
    if name not in ("llama3", "gpt_oss"):  # their calls stand alone in the turn
        assert fam.allows(grammar, Reply(text="Let me look.", calls=(READ,)))


@pytest.mark.parametrize("name", NAMES)
def test_calls_that_break_the_schema_or_the_choice_are_refused(families, name):
    fam = families(name)
    forced = fam.grammar(ANY)
    for bad in (
        Call("Nope", {"x": "1"}),  # not offered
        Call("Read", {"limit": 20}),  # a required argument missing
        Call("Read", {"file_path": "/a", "limit": "twenty"}),  # not a number
        Call("Read", {"file_path": "/a", "color": "red"}),  # not declared
        Call("TodoWrite", {"todos": [{"content": "a", "status": "done", "activeForm": "b"}]}),  # not in the enum
    ):
        assert not fam.allows(forced, Reply(calls=(bad,))), bad
    assert not fam.allows(fam.grammar(ToolChoice(type="tool", name="Glob")), Reply(calls=(READ,)))
    if not fam.family.single_call:
        one = ToolChoice(type="any", disable_parallel_tool_use=True)
        assert fam.allows(fam.grammar(one), Reply(calls=(READ,)))
        assert not fam.allows(fam.grammar(one), Reply(calls=(READ, BASH)))


@pytest.mark.parametrize("name", NAMES)
def test_tool_choice_none_allows_text_and_no_call(families, name):
    fam = families(name)
    grammar = fam.grammar(NONE)
    assert fam.allows(grammar, Reply(text="Only words here."))
    assert not fam.allows(grammar, Reply(calls=(READ,)))


@pytest.mark.parametrize("name", NAMES)
def test_json_output_must_match_the_schema_after_any_reasoning(families, name):
    fam = families(name)
    grammar = fam.grammar(None, TITLE, tools=None)
    assert fam.allows(grammar, Reply(text='{"title": "Fix the parser"}'))
    thinking = fam.grammar(None, TITLE, tools=None, thinking=True)
    assert fam.allows(thinking, Reply(text='{"title": "Fix the parser"}', thinking="Short."), thinking=True)
    assert not fam.allows(grammar, Reply(text='{"name": "x"}'))
    assert not fam.allows(grammar, Reply(text='Here: {"title": "x"}'))


# --------------------------------------------------------------------------- random walks, read back


def walk(fam: Family, grammar: str, rnd: random.Random, steps: int = 1500) -> list[int] | None:
    """Random allowed tokens until the grammar is done (None if it is not within ``steps``).

    Half the steps pick among the tokens that end things (the family's closing tags,
    special tokens, JSON's closers), as the biased test models do, so most walks end.
    """
    matcher = fam.matcher(grammar)
    size = fam.engine.vocab_size
    ends = {token_id(fam.data, t) for t in FAMILY_BONUS[fam.name]} | set(fam.special.values())
    ending = np.zeros(size, dtype=bool)
    ending[[i for i in ends if i is not None]] = True
    eos = set(fam.llg.eos_tokens)
    out: list[int] = []
    for _ in range(steps):
        if matcher.is_stopped():
            return out
        bits = np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.flatnonzero(np.unpackbits(bits, bitorder="little")[:size])
        closing = allowed[ending[allowed]]
        token = int(rnd.choice(closing if len(closing) and rnd.random() < 0.5 else allowed))
        if token in eos:
            return out
        assert matcher.consume_token(token), matcher.get_error()
        out.append(token)
    return None


@pytest.mark.parametrize("name", NAMES)
def test_random_walks_through_a_forced_call_read_back_as_valid_calls(families, name):
    fam = families(name)
    rnd = random.Random(name)
    finished = 0
    for tool in ("Read", "Bash", "TodoWrite", "Grep", "AskUserQuestion", "WebFetch"):
        grammar = fam.grammar(ToolChoice(type="tool", name=tool))
        for _ in range(2):
            tokens = walk(fam, grammar, rnd)
            if tokens is None:
                continue
            finished += 1
            text, calls = read_back(fam, tokens, TOOLS)
            assert calls and all(isinstance(c, ParsedCall) and c.name == tool for c in calls), (text, calls)
            for call in calls:
                assert schema_errors(SCHEMAS[tool], call.arguments) == [], (text, call.arguments)
    assert finished >= 6


def read_back(fam: Family, tokens: list[int], tools: list[Tool]) -> tuple[str, list]:
    """The text of ``tokens`` and the calls the dialect's reader finds in it."""
    text = fam.hf.decode(tokens, skip_special_tokens=False)
    reader = dialect_named(fam.dialect).reader(tools, thinking_open=OPENS_THINKING[fam.name][1])
    return text, [item for item in reader.feed(text) + reader.finish() if isinstance(item, (ParsedCall, FailedCall))]


# --------------------------------------------------------------------------- Gemma's own value syntax


ODD = Tool(name="Odd", input_schema={
    "type": "object",
    "properties": {
        "-A": {"type": "integer", "minimum": 1, "maximum": 9},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "minItems": 1, "maxItems": 2},
        "node": {"$ref": "#/$defs/node"},
        "either": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
        "mode": {"enum": ["fast", "slow"]},
        "extra": {"type": "object", "additionalProperties": {"type": "number"}},
    },
    "required": ["-A", "node"],
    "$defs": {"node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                       "additionalProperties": False}},
})


@pytest.mark.parametrize(
    ("arguments", "allowed"),
    [
        ({"-A": 3, "node": {}}, True),
        ({"-A": 3, "node": {"kids": [{"kids": []}, {}]}, "tags": ["ab", "c"], "either": None, "mode": "slow",
          "extra": {"k": 1.5}}, True),
        ({"-A": 0, "node": {}}, False),  # below the minimum
        ({"-A": 3}, False),  # node is required
        ({"-A": 3, "node": {}, "tags": []}, False),  # minItems
        ({"-A": 3, "node": {}, "tags": ["abcd"]}, False),  # maxLength
        ({"-A": 3, "node": {"leaf": 1}}, False),  # the referenced schema allows no other key
        ({"-A": 3, "node": {}, "mode": "medium"}, False),
        ({"-A": 3, "node": {}, "either": 1}, False),
    ],
)
def test_gemma_values_follow_the_schema_in_gemmas_syntax(families, arguments, allowed):
    fam = families("gemma4")
    grammar = fam.grammar(ToolChoice(type="tool", name="Odd"), tools=[ODD])
    assert fam.allows(grammar, Reply(calls=(Call("Odd", arguments),))) is allowed


def test_a_gemma_call_with_a_flag_for_a_key_reads_back_whole(families):
    fam = families("gemma4")
    text = fam.hf.decode(encode_segments(fam.hf, fam.family.write(Reply(calls=(Call("Odd", {"-A": 3, "node": {}}),)),
                                                                  thinking=False)), skip_special_tokens=False)
    reader = dialect_named("gemma4").reader([ODD], thinking_open=False)
    calls = [item for item in reader.feed(text) + reader.finish() if isinstance(item, (ParsedCall, FailedCall))]
    assert len(calls) == 1 and isinstance(calls[0], ParsedCall), calls
    assert calls[0].arguments == {"-A": 3, "node": {}}


SPACED = Tool(name="Spaced", input_schema={
    "type": "object",
    "properties": {"odd key": {"type": "integer"}, "-B": {"type": "boolean"}, "2nd": {"type": "string", "minLength": 1}},
    "required": ["odd key", "-B", "2nd"],
    "additionalProperties": False,
})


def test_gemma_random_walks_through_nested_refs_unions_and_odd_keys_read_back_valid(families):
    """Recursive ``$ref``, ``anyOf``, open objects, bounded arrays and keys the reader takes only quoted
    (``odd key``, ``2nd``) or bare as flags (``-A``, ``-B``): what the grammar lets out is read back whole."""
    fam = families("gemma4")
    tools = [ODD, SPACED]
    schemas = {tool.name: tool.input_schema for tool in tools}
    rnd = random.Random("gemma-odd")
    seen = set()
    for choice in (ToolChoice(type="tool", name="Odd"), ToolChoice(type="tool", name="Spaced"), ANY):
        grammar = fam.grammar(choice, tools=tools)
        for _ in range(3):
            tokens = walk(fam, grammar, rnd)
            if tokens is None:
                continue
            text, calls = read_back(fam, tokens, tools)
            assert calls and all(isinstance(c, ParsedCall) for c in calls), (text, calls)
            for call in calls:
                seen.add(call.name)
                assert jsonschema.Draft7Validator(schemas[call.name]).is_valid(call.arguments), (text, call.arguments)
    assert seen == {"Odd", "Spaced"}


def test_gemma_syntax_is_written_as_text_where_the_tokenizer_lacks_gemmas_tokens(families, family_closing_model):
    """The same grammar with ``<|"|>`` and ``<|tool_call>`` as text (a tokenizer that does not hold them):
    a string is one lazy lexeme ended by the first closing quote."""
    fam = Family("qwen3", family_closing_model("qwen3"), dialect="gemma4")
    assert not {"<|tool_call>", "<tool_call|>", '<|"|>', "<|channel>"} & set(fam.special)
    gemma = FAMILIES["gemma4"]
    forced = fam.grammar(ANY)
    for call, allowed in ((READ, True), (TODO, True), (Call("Read", {"limit": 20}), False),
                          (Call("Read", {"file_path": "/a", "limit": "twenty"}), False)):
        written = gemma.write(Reply(calls=(call,)), thinking=False)[:-1]  # the end-of-turn token is Gemma's
        assert fam.allows_segments(forced, written) is allowed, call
    assert fam.allows_segments(forced, gemma.write(Reply(calls=(READ, BASH)), thinking=False)[:-1])


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"x": {"type": "string", "not": {"const": "a"}}}, "required": ["x"]},
        {"type": "object", "properties": {"x": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}}},
        {"type": "object", "properties": {"x": {"type": "object", "patternProperties": {"^a": {"type": "string"}}}}},
        {"type": "object", "properties": {"x": {"$ref": "#/$defs/missing"}}},
    ],
    ids=["not", "uniqueItems", "patternProperties", "dangling-ref"],
)
def test_a_schema_gemmas_syntax_cannot_write_is_unsupported_not_loosened(schema):
    tool = Tool(name="Odd", input_schema=schema)
    with pytest.raises(UnsupportedSchema):
        build(constraint_for([tool], ANY, None, dialect="gemma4"))


# --------------------------------------------------------------------------- harmony's messages


def analysis(n: int) -> list[Segment]:
    out: list[Segment] = []
    for k in range(n):
        out += [markup("<|channel|>analysis<|message|>"), plain(f"Step {k}."), markup("<|end|><|start|>assistant")]
    return out


def test_harmony_allows_a_bounded_number_of_analysis_messages_before_the_call(families):
    fam = families("gpt_oss")
    forced = fam.grammar(ANY)
    call = fam.family.write(Reply(calls=(READ,), thinking="Read it."), thinking=True)  # one analysis message, then the call
    assert fam.allows_segments(forced, analysis(EARLIER_MESSAGES - 1) + call)
    assert not fam.allows_segments(forced, analysis(EARLIER_MESSAGES) + call)
    # the call is the last message: nothing may follow <|call|>, and no final answer stands in for it
    assert not fam.allows(forced, Reply(text="Done.", thinking="Nothing to call."), thinking=True)


def test_harmony_under_auto_allows_a_preamble_to_no_one_then_the_final_answer(families):
    fam = families("gpt_oss")
    preamble = [markup("<|channel|>commentary<|message|>"), plain("Checking."), markup("<|end|><|start|>assistant")]
    reply = fam.family.write(Reply(text="It is 4.", thinking="Easy."), thinking=True)
    assert fam.allows_segments(fam.grammar(None), preamble + reply)
    assert not fam.allows_segments(fam.grammar(ANY), preamble + reply)
