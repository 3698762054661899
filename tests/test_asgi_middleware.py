"""TrimMiddleware around a small Starlette proxy and around trimkit's own server, on live servers."""

from __future__ import annotations

import json

import httpx
import pytest

import trimkit
from tests.fixtures import claude_code as cc
from tests.support.clients import sdk
from tests.support.servers import replay_backend
from trimkit.integrations.asgi import TrimMiddleware
from trimkit.server import ServerSettings, create_app
from trimkit.testing import LiveServer

starlette = pytest.importorskip("starlette")
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import JSONResponse, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

MODELS = {"claude-*": {"tier": "small", "context_window": 32_768}}
SSE = [b"event: message_start\ndata: {\"type\": \"message_start\"}\n\n",
       b"event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, "
       b"\"delta\": {\"type\": \"text_delta\", \"text\": \"<function_calls>\"}}\n\n",
       b"event: message_stop\ndata: {\"type\": \"message_stop\"}\n\n"]


class Proxy:
    """A small Starlette proxy: answers /v1/messages with what it received, or a fixed SSE stream."""

    def __init__(self):
        self.received: list[tuple[bytes, dict]] = []
        self.app = Starlette(routes=[
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.messages, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
        ])

    async def messages(self, request):
        body = await request.body()
        self.received.append((body, dict(request.headers)))
        if request.query_params.get("stream") == "sse":
            async def frames():
                for frame in SSE:
                    yield frame
            return StreamingResponse(frames(), media_type="text/event-stream")
        return JSONResponse({"size": len(body)})

    async def models(self, request):
        return JSONResponse({"data": []})


@pytest.fixture
def proxy():
    return Proxy()


@pytest.fixture
def trimmed_proxy(proxy):
    trims = []
    with LiveServer(TrimMiddleware(proxy.app, models=MODELS, on_trim=trims.append)) as server:
        yield server.url, trims


def test_the_app_receives_the_trimmed_body_with_its_content_length(proxy, trimmed_proxy):
    url, trims = trimmed_proxy
    request = cc.first_request(cc.EXAMPLE_PROMPT)
    sent = json.dumps(request).encode()
    answer = httpx.post(url + "/v1/messages?beta=true", content=sent, headers={"content-type": "application/json"})
    assert answer.status_code == 200
    (body, headers), = proxy.received
    assert int(headers["content-length"]) == len(body) == answer.json()["size"]
    received = json.loads(body)
    assert len(body) < len(sent) / 5
    assert sorted(t["name"] for t in received["tools"]) == ["Bash", "Edit", "Glob", "Grep", "Read", "Write"]
    assert cc.EXAMPLE_PROMPT in json.dumps(received["messages"])
    assert received["stream"] is True and received["metadata"] == request["metadata"]
    (forwarded,) = trims
    assert forwarded.result.report.before.chars > 80_000 and forwarded.body == received


def test_count_tokens_is_trimmed_too(proxy, trimmed_proxy):
    url, _ = trimmed_proxy
    request = {k: v for k, v in cc.first_request().items() if k not in ("max_tokens", "stream")}
    httpx.post(url + "/v1/messages/count_tokens", json=request)
    assert len(proxy.received[0][0]) < len(json.dumps(request)) / 5


@pytest.mark.parametrize("body", [
    json.dumps({**cc.first_request(), "model": "gpt-5"}).encode(),  # a model that is not configured
    b"{not json",
    b"[1, 2, 3]",
    json.dumps({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "no_such_block"}]}]}).encode(),  # not a Messages request: the app says what it says
])
def test_what_it_does_not_trim_reaches_the_app_byte_for_byte(proxy, trimmed_proxy, body):
    url, trims = trimmed_proxy
    answer = httpx.post(url + "/v1/messages", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200 and answer.json() == {"size": len(body)}
    assert proxy.received[0][0] == body and trims == []


def test_other_methods_and_paths_are_not_touched(proxy, trimmed_proxy):
    url, _ = trimmed_proxy
    assert httpx.get(url + "/v1/models").json() == {"data": []}
    assert httpx.get(url + "/v1/messages").status_code == 405


def test_the_apps_streamed_response_reaches_the_client_unchanged(trimmed_proxy):
    url, _ = trimmed_proxy
    with httpx.stream("POST", url + "/v1/messages?stream=sse", json=cc.first_request()) as answer:
        raw = b"".join(answer.iter_raw())
    assert raw == b"".join(SSE)


def test_a_body_over_the_limit_is_a_413_in_the_apis_shape_and_never_reaches_the_app(proxy):
    with LiveServer(TrimMiddleware(proxy.app, models=MODELS, max_body_bytes=10_000)) as server:
        answer = httpx.post(server.url + "/v1/messages", json=cc.first_request())

        def chunks():
            yield b"{" + b" " * 8_000
            yield b" " * 8_000 + b"}"
        chunked = httpx.post(server.url + "/v1/messages", content=chunks())  # no content-length
    for response in (answer, chunked):
        assert response.status_code == 413 and response.headers["x-should-retry"] == "false"
        assert response.json() == {"type": "error", "error": {
            "type": "request_too_large", "message": "request body is larger than 10000 bytes"}}
    assert proxy.received == []


def test_a_request_that_cannot_fit_even_trimmed_is_a_400_in_the_wording_clients_react_to(proxy):
    tight = {"claude-*": {"tier": "small", "context_window": 600}}
    with LiveServer(TrimMiddleware(proxy.app, models=tight)) as server:
        answer = httpx.post(server.url + "/v1/messages", json=cc.first_request())
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"].startswith("prompt is too long: ")
    assert proxy.received == []


def test_a_bad_configuration_fails_when_the_middleware_is_built(proxy):
    with pytest.raises(trimkit.ConfigError):
        TrimMiddleware(proxy.app, models={"claude-*": {"tier": "huge"}})


def test_starlettes_add_middleware_takes_it(proxy):
    proxy.app.add_middleware(TrimMiddleware, models=MODELS)
    with LiveServer(proxy.app) as server:
        httpx.post(server.url + "/v1/messages", json=cc.first_request())
    assert len(proxy.received[0][0]) < len(json.dumps(cc.first_request())) / 5


class Seen:
    """A trimkit plugin that keeps every request the server trims: what reached it through the middleware."""

    def __init__(self):
        self.requests = []

    @trimkit.hookimpl
    def trimkit_trimmed(self, result):
        self.requests.append(result.original)


def test_around_trimkits_own_server_the_sdk_gets_a_tool_use_and_the_server_sees_the_trimmed_request(tmp_path):
    target = tmp_path / "notes.txt"
    script = [f'<function_calls>\n<invoke name="Read">\n<parameter name="file_path">{target}</parameter>\n'
              '</invoke>\n</function_calls>']
    seen = Seen()
    app = create_app(ServerSettings(backend="replay"), backend=replay_backend(script, window=65_536),
                     pipeline=trimkit.Pipeline(plugins=[seen]))
    request = cc.first_request("read notes.txt")
    with LiveServer(TrimMiddleware(app, models=MODELS)) as server:
        client = sdk(server.url)
        known = {k: request[k] for k in ("model", "max_tokens", "system", "tools", "messages", "metadata")}
        extra = {k: v for k, v in request.items() if k not in known and k != "stream"}
        with client.messages.stream(**known, extra_body=extra) as stream:
            message = stream.get_final_message()
    (received,) = seen.requests
    assert sorted(t.name for t in received.tools) == ["Bash", "Edit", "Glob", "Grep", "Read", "Write"]
    assert all(len(t.description or "") < 1000 for t in received.tools)
    assert message.stop_reason == "tool_use"
    (use,) = [b for b in message.content if b.type == "tool_use"]
    assert use.name == "Read" and use.input == {"file_path": str(target)}


def test_litestars_define_middleware_takes_it():
    from litestar import Litestar, Request, post
    from litestar.middleware import DefineMiddleware

    seen = []

    @post("/v1/messages", status_code=200)
    async def messages(request: Request) -> dict:
        seen.append(await request.body())
        return {}

    app = Litestar([messages], middleware=[DefineMiddleware(TrimMiddleware, models=MODELS)])
    with LiveServer(app) as server:
        httpx.post(server.url + "/v1/messages", json=cc.first_request())
    assert len(seen[0]) < len(json.dumps(cc.first_request())) / 5
