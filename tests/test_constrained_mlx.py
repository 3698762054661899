"""Constrained decoding on a random MLX model, through a live server and the official SDK.

The model is :func:`trimkit.testing.grammar_models.build_closing_model`: random
weights that write noise, with a liking for closing tokens so that values end.
Unconstrained it never makes a valid call (checked below); with the grammar,
every ``tool_choice: any`` request over Claude Code's real tool schemas must give
``tool_use`` blocks whose input validates, a named tool must be the one called,
and every title request must give JSON that matches its schema.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager

import anthropic
import numpy as np
import pytest

pytest.importorskip("mlx_lm")
llguidance = pytest.importorskip("llguidance")
pytest.importorskip("jsonschema")

from tests.fixtures import claude_code as cc
from tests.fixtures.claude_code_tools import tools as claude_code_tools
from tests.support.clients import sdk
from tests.support.schemas import schema_errors
from trimkit import convention
from trimkit.backends.mlx import MLXBackend
from trimkit.backends.mlx_grammar import GrammarEngine, unpack_mask
from trimkit.constrain import constraint_for, lark_grammar
from trimkit.testing import live_app
from trimkit.testing.grammar_models import build_closing_model
from trimkit.wire import Tool, ToolChoice

MODEL = "claude-opus-4-8"
MAX_TOKENS = 1500  # the closing model ends a call in about 100 tokens; this leaves room for the longest
CLAUDE_CODE_TOOLS = claude_code_tools()
SCHEMAS = {t["name"]: t["input_schema"] for t in CLAUDE_CODE_TOOLS}

SGLANG_TOOLS = [  # the tools of SGLang's test_tool_choice.py, in the Messages API's shape
    {"name": "get_weather", "description": "Get the latest weather for a city given its name.",
     "input_schema": {"type": "object", "properties": {
         "city": {"type": "string", "description": "The city."},
         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}},
    {"name": "get_pokemon_info", "description": "Get information about a pokemon given its name.",
     "input_schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}},
    {"name": "make_next_step_decision", "description": "Decide the next step: TOOL or ANSWER.",
     "input_schema": {"type": "object", "properties": {
         "decision": {"type": "string"}, "content": {"type": "string"}}, "required": ["decision", "content"]}},
]
SGLANG_QUESTION = [{"role": "user", "content": "What is the weather in the five most populous US cities?"}]


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    model = MLXBackend(str(build_closing_model(tmp_path_factory.mktemp("closing-model")))).wait_ready()
    yield model
    model.close()


@contextmanager
def serve(backend: MLXBackend, **settings):
    """A strict SDK client of a live server on ``backend``, which stays the caller's to close."""
    with live_app("mlx", backend, model=str(backend.path), **settings) as server:
        yield sdk(server.url, timeout=120)


@pytest.fixture(scope="module")
def client(backend):
    with serve(backend) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def plain_client(tiny_model_dir):
    """The plain tiny random model: its JSON strings end without help (a few hundred tokens)."""
    model = MLXBackend(str(tiny_model_dir)).wait_ready()
    with serve(model) as sdk:
        yield sdk
    model.close()


def tool_uses(message) -> list:
    return [block for block in message.content if block.type == "tool_use"]


def claude_code_request(prompt: str, tools: list[dict] = CLAUDE_CODE_TOOLS, **fields) -> dict:
    """Claude Code's first request (the tools stage shows the tier's tools; the grammar offers those)."""
    request = cc.first_request(prompt)
    request.pop("stream")
    return {**request, "tools": tools, "max_tokens": MAX_TOKENS, **fields}


def create(client, request: dict):
    named = {"model", "messages", "max_tokens", "system", "tools", "tool_choice", "metadata"}
    return client.messages.create(
        **{k: v for k, v in request.items() if k in named},
        extra_body={k: v for k, v in request.items() if k not in named},
    )


# --------------------------------------------------------------------------- Claude Code's tools


@pytest.mark.slow
def test_every_tool_choice_any_request_over_claude_codes_tools_gives_schema_valid_calls(client):
    called = set()
    for n in range(8):
        message = create(client, claude_code_request(f"task {n}", tool_choice={"type": "any"}))
        uses = tool_uses(message)
        assert message.stop_reason == "tool_use" and uses, message.content
        for use in uses:
            assert use.name in SCHEMAS
            assert schema_errors(SCHEMAS[use.name], use.input) == [], (use.name, use.input)
            called.add(use.name)
    assert len(called) >= 2  # the calls spread over the tools: the grammar does not favour one


@pytest.mark.parametrize("name", ["Bash", "TodoWrite", "AskUserQuestion", "WebFetch", "EnterPlanMode"])
def test_tool_choice_naming_a_tool_calls_that_tool_with_valid_input(client, name):
    message = create(client, claude_code_request("go", tool_choice={"type": "tool", "name": name}))
    uses = tool_uses(message)
    assert uses and {use.name for use in uses} == {name}
    for use in uses:
        assert schema_errors(SCHEMAS[name], use.input) == []


def test_disable_parallel_tool_use_gives_exactly_one_call(client):
    for n in range(3):
        choice = {"type": "any", "disable_parallel_tool_use": True}
        message = create(client, claude_code_request(f"one {n}", tool_choice=choice))
        assert len(tool_uses(message)) == 1


def test_tool_choice_streams_tool_use_blocks_with_the_sdk(client):
    request = claude_code_request("stream", tool_choice={"type": "tool", "name": "Grep"})
    named = {k: v for k, v in request.items() if k in {"model", "messages", "max_tokens", "system", "tools", "tool_choice"}}
    with client.messages.stream(**named) as stream:
        message = stream.get_final_message()
    uses = tool_uses(message)
    assert uses and all(use.name == "Grep" and schema_errors(SCHEMAS["Grep"], use.input) == [] for use in uses)
    assert message.stop_reason == "tool_use"


@pytest.mark.slow
def test_every_title_request_gives_json_that_matches_its_schema(plain_client):
    client = plain_client
    for n in range(4):
        request = cc.title_request(f"fix the flaky parser test number {n}")
        request.pop("stream")
        message = create(client, request)
        text = "".join(block.text for block in message.content if block.type == "text")
        schema = request["output_config"]["format"]["schema"]
        assert schema_errors(schema, json.loads(text)) == [], text
        assert message.stop_reason == "end_turn"


def test_without_the_constraint_the_same_model_makes_no_valid_call(backend):
    with serve(backend, constrain_tool_choice=False) as unconstrained:
        for n in range(2):
            message = create(unconstrained, claude_code_request(f"free {n}", tool_choice={"type": "any"}, max_tokens=200))
            assert tool_uses(message) == []


# --------------------------------------------------------------------------- SGLang's tool_choice checks


def test_sglang_required_gives_tool_calls(client):
    message = client.messages.create(
        model=MODEL, max_tokens=400, messages=SGLANG_QUESTION, tools=SGLANG_TOOLS, tool_choice={"type": "any"}
    )
    assert len(tool_uses(message)) > 0


def test_sglang_required_streaming_gives_tool_call_chunks(client):
    with client.messages.stream(
        model=MODEL, max_tokens=400, messages=SGLANG_QUESTION, tools=SGLANG_TOOLS, tool_choice={"type": "any"}
    ) as stream:
        events = list(stream)
    starts = [e for e in events if e.type == "content_block_start" and e.content_block.type == "tool_use"]
    deltas = [e for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
    assert starts and deltas


def test_sglang_specific_function_calls_only_that_function(client):
    message = client.messages.create(
        model=MODEL, max_tokens=400, messages=SGLANG_QUESTION, tools=SGLANG_TOOLS,
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    uses = tool_uses(message)
    assert len(uses) >= 1 and all(use.name == "get_weather" for use in uses)
    assert all(isinstance(use.input["city"], str) and use.input.get("unit") in (None, "celsius", "fahrenheit")
               for use in uses)


def test_sglang_specific_function_streaming_names_it_first(client):
    with client.messages.stream(
        model=MODEL, max_tokens=400, messages=SGLANG_QUESTION, tools=SGLANG_TOOLS,
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        events = list(stream)
    names = [e.content_block.name for e in events if e.type == "content_block_start" and e.content_block.type == "tool_use"]
    assert names and names[0] == "get_weather"


def test_sglang_auto_completes(client):
    message = client.messages.create(
        model=MODEL, max_tokens=400, messages=SGLANG_QUESTION, tools=SGLANG_TOOLS, tool_choice={"type": "auto"}
    )
    assert message.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert all(use.name in {t["name"] for t in SGLANG_TOOLS} for use in tool_uses(message))


def test_sglang_multi_tool_required_calls_only_available_tools(client):
    tools = SGLANG_TOOLS[:2]
    message = client.messages.create(
        model=MODEL, max_tokens=400, tools=tools, tool_choice={"type": "any"},
        system="You are a travel assistant.", messages=[{"role": "user", "content": "Tokyo: weather and sights?"}],
    )
    uses = tool_uses(message)
    assert uses and all(use.name in {t["name"] for t in tools} for use in uses)


def test_sglang_invalid_tool_choice_is_a_clear_error_naming_the_tool(client):
    # SGLang accepts either a warning naming the function or an error; the Messages API answers 400.
    with pytest.raises(anthropic.BadRequestError, match="nonexistent_function"):
        client.messages.create(
            model=MODEL, max_tokens=400, messages=SGLANG_QUESTION, tools=SGLANG_TOOLS,
            tool_choice={"type": "tool", "name": "nonexistent_function"},
        )


# --------------------------------------------------------------------------- fallback


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"x": {"type": "string", "pattern": "(?=look)ahead"}}, "required": ["x"]},
        {"anyOf": [{"type": "object"}, {"type": "string"}]},
        {"type": "object", "properties": {"n": {"type": "array", "items": {"$ref": "#/$defs/missing"}}}},
    ],
    ids=["lookahead-pattern", "root-anyOf", "dangling-ref"],
)
def test_a_schema_the_engine_refuses_falls_back_with_a_200_and_a_log_line(client, caplog, schema):
    tools = [{"name": "Odd", "input_schema": schema}]
    with caplog.at_level(logging.WARNING, logger="trimkit.constrain"):
        answer = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=30, messages=SGLANG_QUESTION, tools=tools, tool_choice={"type": "any"}
        )
    assert answer.status_code == 200 and answer.parse().type == "message"
    assert any("constrained decoding off" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- the logits processor


def test_once_a_call_opens_only_offered_names_can_follow(backend):
    tools = [Tool(**t) for t in CLAUDE_CODE_TOOLS]
    engine = GrammarEngine(backend.tokenizer, backend._vocab_size)
    processor = engine.processor(lark_grammar(constraint_for(tools, None, None)))
    text = "Let me check that file.\n" + convention.CALLS_OPEN + '\n<invoke name="'
    tokens = backend.tokenizer.encode(text, add_special_tokens=False)
    import mlx.core as mx

    logits = mx.zeros((1, backend._vocab_size))
    processor(mx.array([0]), logits)  # the prompt
    for n, token in enumerate(tokens):
        masked = np.array(processor(mx.array(tokens[: n + 1]), logits))[0]
    allowed = {backend.tokenizer.decode([i]) for i in np.flatnonzero(masked > -np.inf)}
    starts = {name[:k] for name in SCHEMAS for k in range(1, len(name) + 1)}
    assert allowed and allowed <= starts  # every allowed token begins an offered name


def test_outside_a_call_the_model_writes_freely(backend):
    tools = [Tool(**t) for t in CLAUDE_CODE_TOOLS]
    engine = GrammarEngine(backend.tokenizer, backend._vocab_size)
    matcher = engine.matcher(lark_grammar(constraint_for(tools, None, None)))
    words = np.zeros(((backend._vocab_size + 31) // 32,), dtype=np.int32)
    from llguidance.numpy import fill_next_token_bitmask

    plain = [i for i in range(backend._vocab_size)
             if (text := backend.tokenizer.decode([i])).isascii() and text.isprintable() and "<" not in text]
    for token in backend.tokenizer.encode("Plain text <b>bold</b> and a < b.", add_special_tokens=False):
        fill_next_token_bitmask(matcher, words[None])
        allowed = unpack_mask(words, backend._vocab_size)
        assert allowed[token] and allowed[plain].all()  # every token of plain text stays allowed
        assert matcher.consume_token(token)


def test_grammars_are_compiled_once_per_tool_list(backend):
    engine = GrammarEngine(backend.tokenizer, backend._vocab_size, cache_entries=2)
    grammars = [lark_grammar(constraint_for([Tool(**t) for t in CLAUDE_CODE_TOOLS[:k]], ToolChoice(type="any"), None))
                for k in (1, 2, 3)]
    engine.matcher(grammars[0])
    engine.matcher(grammars[0])
    assert engine.compiles == 1
    engine.matcher(grammars[1])
    engine.matcher(grammars[2])  # the cache holds two: the first goes
    engine.matcher(grammars[0])
    assert engine.compiles == 4
