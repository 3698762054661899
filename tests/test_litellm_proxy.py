"""trimkit inside a real LiteLLM proxy: its guardrail trims on the way in and reads calls on the way back.

LiteLLM (``litellm[proxy]``, pinned) runs from a virtual environment of its own in the
cache, with trimkit installed into it as a wheel of this checkout
(:mod:`trimkit.testing.litellm_proxy`), on 127.0.0.1 with the guardrail in its
``config.yaml``. Behind it: ``mlx_lm.server`` on the tiny model, seen through a
recording relay, and a scripted OpenAI-compatible engine whose model writes its
calls as trimkit's XML. Clients: the ``anthropic`` SDK and Claude Code.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from pathlib import Path

import anthropic
import pytest

from tests.fixtures import claude_code as cc
from tests.support.clients import sdk
from tests.upstreams import asgi_request_body
from trimkit.testing import LiveServer, spawn_mlx_lm_server, stop_server

pytestmark = pytest.mark.litellm

TRIMMED = {"tier": "small", "context_window": 65_536}
WRITE = {"name": "Write", "description": "Write a file", "input_schema": {
    "type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"},
                                     "mode": {"type": "integer"}}, "required": ["file_path", "content"]}}


def call(name: str, **params) -> str:
    inner = "".join(f'<parameter name="{k}">{v}</parameter>\n' for k, v in params.items())
    return f'<function_calls>\n<invoke name="{name}">\n{inner}</invoke>\n</function_calls>'


class ScriptedEngine:
    """An OpenAI-compatible engine whose model says the next scripted text, streamed or not.

    Every request it gets is kept; when the script runs out it says "(done)".
    """

    def __init__(self):
        self.script: list[str] = []
        self.requests: list[dict] = []

    def say(self, *turns: str) -> "ScriptedEngine":
        self.script, self.requests = list(turns), []
        return self

    async def __call__(self, scope, receive, send):
        body = await asgi_request_body(scope, receive, send)
        if body is None:
            return
        if scope["method"] == "GET":
            await self._json(send, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
            return
        request = json.loads(body)
        self.requests.append(request)
        text = self.script.pop(0) if self.script else "(done)"
        usage = {"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47}
        if not request.get("stream"):
            await self._json(send, {"id": "c1", "object": "chat.completion", "created": 1, "model": "scripted",
                                    "choices": [{"index": 0, "finish_reason": "stop",
                                                 "message": {"role": "assistant", "content": text}}],
                                    "usage": usage})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        pieces = [text[i:i + 9] for i in range(0, len(text), 9)]  # split anywhere, markup included
        chunks = [{"role": "assistant", "content": ""}, *({"content": p} for p in pieces)]
        for i, delta in enumerate(chunks + [{}]):
            chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "scripted",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if i == len(chunks) else None}]}
            await send({"type": "http.response.body", "body": f"data: {json.dumps(chunk)}\n\n".encode(), "more_body": True})
            await asyncio.sleep(0)
        final = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "scripted", "choices": [],
                 "usage": usage}
        await send({"type": "http.response.body", "body": f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode()})

    @staticmethod
    async def _json(send, payload):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


@pytest.fixture(scope="module")
def litellm_python():
    from trimkit.testing.engines import EngineUnavailable
    from trimkit.testing.litellm_proxy import install_litellm, install_trimkit

    try:
        python = install_litellm()
        install_trimkit(python, Path(__file__).resolve().parents[1])
    except EngineUnavailable as exc:
        pytest.skip(f"LiteLLM cannot be installed here: {exc}")
    return python


@pytest.fixture(scope="module")
def engine():
    return ScriptedEngine()


@pytest.fixture(scope="module")
def scripted_url(engine):
    with LiveServer(engine) as server:
        yield server.url


@pytest.fixture(scope="module")
def mlx_engine(tiny_model_dir):
    """mlx_lm.server on the tiny model, behind a relay that keeps what it was sent."""
    from trimkit.testing.relay import RecordingRelay

    proc, url = spawn_mlx_lm_server(tiny_model_dir)
    try:
        with RecordingRelay(url) as relay:
            yield relay
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def proxy(litellm_python, scripted_url, mlx_engine, tmp_path_factory):
    from trimkit.testing.litellm_proxy import start_litellm, proxy_config, trimkit_guardrail

    def engine_at(url: str, model: str) -> dict:
        return {"model": f"hosted_vllm/{model}", "api_base": url + "/v1", "api_key": "engine-key"}

    models = [
        {"model_name": "claude-mlx", "litellm_params": engine_at(mlx_engine.url, "default_model")},
        {"model_name": "claude-*", "litellm_params": engine_at(scripted_url, "scripted")},
        {"model_name": "gpt-untouched", "litellm_params": engine_at(scripted_url, "scripted")},
    ]
    trims = {"claude-mlx": TRIMMED, "claude-tight": {"tier": "small", "context_window": 600}, "claude-*": TRIMMED}
    started = start_litellm(litellm_python, proxy_config(models, [trimkit_guardrail(trims)]),
                            workdir=tmp_path_factory.mktemp("litellm"))
    yield started
    started.stop()
    assert "Traceback" not in started.output()


def known_and_extra(request: dict) -> tuple[dict, dict]:
    """The SDK's keyword arguments, and the fields it has no keyword for (sent as ``extra_body``)."""
    known = {k: request[k] for k in ("model", "max_tokens", "system", "tools", "messages", "metadata") if k in request}
    return known, {k: v for k, v in request.items() if k not in known and k != "stream"}


def test_the_sdks_request_reaches_mlx_lm_server_trimmed(proxy, mlx_engine):
    request = {**cc.first_request(cc.EXAMPLE_PROMPT), "model": "claude-mlx", "max_tokens": 8}
    known, extra = known_and_extra(request)
    message = sdk(proxy.url, proxy.master_key, timeout=300).messages.create(**known, extra_body=extra)
    assert message.model == "claude-mlx" and message.usage.output_tokens > 0
    (received,) = [e for e in mlx_engine.exchanges if e.path == "/v1/chat/completions"]
    assert "tools" not in received.body
    system, *turns = received.body["messages"]
    assert system["role"] == "system" and '<tool name="Read">' in system["content"]
    assert "<function_calls>" in system["content"]  # the convention the model is taught
    assert cc.EXAMPLE_PROMPT in turns[0]["content"]
    assert received.prompt_chars < 5_000 < 80_000 < len(json.dumps(request))
    assert 0 < received.usage["prompt_tokens"] < 3_000  # counted by the engine with the model's tokenizer


def documented_config() -> str:
    """The config.yaml of docs/litellm.md, as a user copies it."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "litellm.md").read_text()
    return re.search(r"<!-- litellm-config -->\n```yaml\n(.*?)```", text, flags=re.S).group(1)


def test_the_documented_config_yaml_trims_claude_codes_request_on_its_way_to_mlx_lm_server(
        litellm_python, mlx_engine, tmp_path):
    from trimkit.testing.litellm_proxy import start_litellm

    config = documented_config()
    assert "http://127.0.0.1:8080/v1" in config
    started = start_litellm(litellm_python, config.replace("http://127.0.0.1:8080", mlx_engine.url),
                            workdir=tmp_path)
    try:
        before = len(mlx_engine.exchanges)
        known, extra = known_and_extra({**cc.first_request(cc.EXAMPLE_PROMPT), "max_tokens": 4})
        sdk(started.url, started.master_key, timeout=300).messages.create(**known, extra_body=extra)
    finally:
        started.stop()
    assert "Traceback" not in started.output()
    (received,) = mlx_engine.exchanges[before:]
    assert "tools" not in received.body and received.prompt_chars < 8_000  # medium tier (Qwen3-Coder-30B-A3B)
    assert '<tool name="Read">' in received.body["messages"][0]["content"]


def test_a_call_written_as_markup_comes_back_to_the_sdk_as_tool_use(proxy, engine):
    client = sdk(proxy.url, proxy.master_key)
    asked = dict(model="claude-opus-4-8", max_tokens=200, tools=[WRITE],
                 messages=[{"role": "user", "content": "write a.txt"}])
    for stream in (False, True):
        engine.say("I'll write it.\n" + call("Write", file_path="/tmp/a.txt", content="hi", mode="644"))
        if stream:
            with client.messages.stream(**asked) as events:
                message = events.get_final_message()
        else:
            message = client.messages.create(**asked)
        assert [b.type for b in message.content] == ["text", "tool_use"], stream
        assert message.content[0].text == "I'll write it."
        use = message.content[1]
        assert use.name == "Write" and use.input == {"file_path": "/tmp/a.txt", "content": "hi", "mode": 644}
        assert message.stop_reason == "tool_use"
        (sent,) = engine.requests
        assert "tools" not in sent and '<tool name="Write">' in sent["messages"][0]["content"]


def test_an_answer_without_calls_comes_back_as_it_was_written(proxy, engine):
    engine.say("Just an answer, with a < sign.")
    message = sdk(proxy.url, proxy.master_key).messages.create(
        model="claude-opus-4-8", max_tokens=50, tools=[WRITE], messages=[{"role": "user", "content": "hi"}])
    assert [(b.type, b.text) for b in message.content] == [("text", "Just an answer, with a < sign.")]
    assert message.stop_reason == "end_turn"


def test_a_model_the_guardrail_is_not_configured_for_is_not_touched(proxy, engine):
    engine.say("Plain " + call("Write", file_path="/x", content="y"))
    message = sdk(proxy.url, proxy.master_key).messages.create(
        model="gpt-untouched", max_tokens=50, tools=[WRITE], system="Be brief.",
        messages=[{"role": "user", "content": "hi"}])
    (sent,) = engine.requests
    assert sent["tools"][0]["function"]["name"] == "Write"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [b.type for b in message.content] == ["text"]  # no reading back either


def test_a_request_that_cannot_fit_even_trimmed_is_refused_with_the_apis_wording(proxy, engine):
    engine.say()
    request = {**cc.first_request(), "model": "claude-tight"}
    known, extra = known_and_extra(request)
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk(proxy.url, proxy.master_key).messages.create(**known, extra_body=extra)
    assert "prompt is too long: " in str(caught.value)
    assert engine.requests == []


@pytest.mark.e2e
def test_claude_code_does_a_tool_round_trip_through_litellm_with_the_guardrail(proxy, engine, claude_bin, tmp_path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    target = work / "hello.txt"
    engine.say("I'll create the file.\n" + call("Write", file_path=target, content="hello world"),
               "Created hello.txt containing hello world.")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
    env.update(HOME=str(home), ANTHROPIC_BASE_URL=proxy.url, ANTHROPIC_API_KEY=proxy.master_key,
               ANTHROPIC_MODEL="claude-opus-4-8", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
               DISABLE_AUTOUPDATER="1", API_TIMEOUT_MS="600000")
    done = subprocess.run([str(claude_bin), "-p", "create hello.txt containing hello world", "--allowedTools", "Write"],
                          cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr + proxy.output()[-3000:]
    assert target.read_text() == "hello world"
    assert "Created hello.txt containing hello world." in done.stdout
    first, second = engine.requests[:2]
    assert "tools" not in first and '<tool name="Write">' in first["messages"][0]["content"]
    assert len(json.dumps(first)) < 40_000  # Claude Code sends ~90 KB
    shown = json.dumps(second["messages"])
    assert "<function_calls>" in shown and "<function_results>" in shown  # the round trip, in the convention
    assert "tool_calls" not in shown
