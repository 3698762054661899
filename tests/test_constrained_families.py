"""Constrained decoding in every family's own format, on random weights, through a live server and the SDK.

Each family's tiny model (trimkit.testing.families: its special tokens and chat
template) writes with random weights and nothing forced; a small logit bonus on
what ends its values and reasoning (trimkit.testing.grammar_models) lets values
end, since a grammar cannot make a model end a free-text value. The server renders
the prompt in the family's own convention and must constrain the output in the
same dialect: ``tool_choice`` any and a named tool give ``tool_use`` blocks whose
input validates against Claude Code's real schemas, and a title request gives JSON
that matches its schema. Harmony's reader reads nothing but harmony, so gpt-oss's
calls coming back at all shows the prompt's dialect reached the grammar.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager

import pytest

pytest.importorskip("mlx_lm")
pytest.importorskip("llguidance")
jsonschema = pytest.importorskip("jsonschema")

from tests.fixtures import claude_code as cc
from tests.fixtures.claude_code_tools import tools as claude_code_tools
from tests.support.clients import sdk
from tests.support.schemas import schema_errors
from trimkit.backends.mlx import MLXBackend
from trimkit.testing import live_app
from trimkit.testing.families import FAMILIES

NAMES = sorted(FAMILIES)
MODEL = "claude-opus-4-8"
MAX_TOKENS = 1500
CHOSEN = ("Bash", "Read", "Edit", "Grep", "Glob", "TodoWrite", "WebFetch", "AskUserQuestion", "Write", "TaskCreate")
TOOLS = [t for t in claude_code_tools() if t["name"] in CHOSEN]
SCHEMAS = {t["name"]: t["input_schema"] for t in TOOLS}
NAMED = {name: CHOSEN[i % len(CHOSEN)] for i, name in enumerate(NAMES)}  # a different tool for each family


@pytest.fixture(scope="module")
def backends(family_closing_model):
    made: dict[str, MLXBackend] = {}

    def get(name: str) -> MLXBackend:
        if name not in made:
            made[name] = MLXBackend(str(family_closing_model(name))).wait_ready(60)
        return made[name]

    yield get
    for backend in made.values():
        backend.close()


@contextmanager
def serve(backend: MLXBackend, **settings):
    with live_app("mlx", backend, model=str(backend.path), tier="large", **settings) as server:
        yield sdk(server.url, timeout=300)


def ask(client, tool_choice: dict, n: int):
    return client.messages.create(
        model=MODEL, max_tokens=MAX_TOKENS, system="You are a coding agent. Use the tools.",
        messages=[{"role": "user", "content": f"Request {n}: find why the parser test fails."}],
        tools=TOOLS, tool_choice=tool_choice,
    )


def tool_uses(message) -> list:
    return [block for block in message.content if block.type == "tool_use"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_tool_choice_any_and_a_named_tool_give_schema_valid_calls_in_the_familys_format(backends, name):
    with serve(backends(name)) as client:
        for n in range(3):
            message = ask(client, {"type": "any"}, n)
            uses = tool_uses(message)
            assert message.stop_reason == "tool_use" and uses, message.content
            for use in uses:
                assert use.name in SCHEMAS and schema_errors(SCHEMAS[use.name], use.input) == [], (use.name, use.input)
        tool = NAMED[name]
        message = ask(client, {"type": "tool", "name": tool}, 9)
        uses = tool_uses(message)
        assert uses and {use.name for use in uses} == {tool}, message.content
        assert all(schema_errors(SCHEMAS[tool], use.input) == [] for use in uses)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_a_title_request_gives_json_that_matches_its_schema(backends, name):
    request = cc.title_request(f"make the {name} parser stream")
    request.pop("stream")
    with serve(backends(name)) as client:
        message = client.messages.create(
            model=request["model"], max_tokens=400, system=request["system"], messages=request["messages"],
            extra_body={"output_config": request["output_config"]},
        )
    text = "".join(block.text for block in message.content if block.type == "text")
    schema = request["output_config"]["format"]["schema"]
    assert jsonschema.Draft7Validator(schema).is_valid(json.loads(text)), text
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize("name", ["gpt_oss", "gemma4", "glm47"])
def test_with_thinking_on_a_forced_call_follows_the_reasoning_and_streams(backends, name):
    with serve(backends(name)) as client:
        with client.messages.stream(
            model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": "look at the parser"}],
            tools=TOOLS, tool_choice={"type": "any", "disable_parallel_tool_use": True},
            thinking={"type": "enabled", "budget_tokens": 1024},
        ) as stream:
            message = stream.get_final_message()
    uses = tool_uses(message)
    assert len(uses) == 1 and schema_errors(SCHEMAS[uses[0].name], uses[0].input) == [], message.content
    assert [block.type for block in message.content if block.type != "thinking"] == ["tool_use"]


def test_the_prompts_dialect_reaches_the_constraint_and_the_xml_convention_keeps_xml(backends):
    from trimkit.server import ServerSettings
    from trimkit.server.messages import MessageService

    backend = backends("gemma4")
    body = json.dumps({"model": MODEL, "max_tokens": 100, "tools": TOOLS, "tool_choice": {"type": "any"},
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    for convention, dialect in (("auto", "gemma4"), ("native", "gemma4"), ("xml", "xml")):
        settings = ServerSettings(backend="mlx", model=str(backend.path), convention=convention)
        assert MessageService(settings, backend).prepare(body).constraint.dialect == dialect


def test_a_schema_gemmas_syntax_cannot_write_falls_back_with_a_200_and_a_log_line(backends, caplog):
    tools = [{"name": "Odd", "input_schema": {"type": "object", "required": ["x"],
                                              "properties": {"x": {"type": "string", "not": {"const": "a"}}}}}]
    with serve(backends("gemma4")) as client, caplog.at_level(logging.WARNING, logger="trimkit.constrain"):
        answer = client.messages.with_raw_response.create(model=MODEL, max_tokens=20, tools=tools,
                                                          tool_choice={"type": "any"},
                                                          messages=[{"role": "user", "content": "hi"}])
    assert answer.status_code == 200 and answer.parse().type == "message"
    assert any("constrained decoding off" in r.getMessage() and "gemma" in r.getMessage().lower()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
