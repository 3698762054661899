"""An upstream engine cannot leak trimkit's secrets, flood its memory or outrun max_tokens."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from trimkit.backends.upstream_stream import MAX_EVENT_BYTES
from trimkit.testing import LiveServer, free_port, live_app

from tests.support.sse import streamed_text
from tests.upstreams import FakeUpstream, anthropic_event, asgi_request_body, openai_chunk, openai_turn

USER = [{"role": "user", "content": "hi"}]
REQUEST = {"model": "claude-x", "max_tokens": 10, "messages": USER}
ENGINE_KEY = "sk-engine-key-0123456789"
HANG = 60


def in_front(url: str, backend: str = "openai", **settings) -> LiveServer:
    return live_app(backend, upstream=url, upstream_model="fake-model", upstream_api_key=ENGINE_KEY, **settings)


def with_password(url: str, password: str) -> str:
    return url.replace("http://", f"http://trimkit:{password}@")


def test_credentials_in_the_upstream_url_are_shown_nowhere():
    with FakeUpstream(openai_turn("fine")) as up:
        with in_front(with_password(up.url, "url-password-42")) as server:
            health = httpx.get(server.url + "/health").text
            answer = httpx.post(server.url + "/v1/messages", json=REQUEST, timeout=HANG)
    dead = with_password(f"http://127.0.0.1:{free_port()}", "url-password-42")
    with in_front(dead) as server:
        refused = httpx.post(server.url + "/v1/messages", json=REQUEST, timeout=HANG)
        dead_health = httpx.get(server.url + "/health").text
    assert answer.status_code == 200
    assert refused.status_code == 529
    for text in (health, dead_health, refused.text):
        assert "url-password-42" not in text and "127.0.0.1" in text


@pytest.mark.parametrize("status", [401, 403])
def test_an_engine_refusing_the_key_is_a_502_that_names_the_setting_and_quotes_no_secret(status):
    quoted = {"error": {"message": f"Incorrect API key provided: Bearer {ENGINE_KEY}; also sk-other-0123456789",
                        "type": "invalid_request_error"}}
    with FakeUpstream(status=status, error_body=quoted) as up, in_front(up.url) as server:
        answer = httpx.post(server.url + "/v1/messages", json=REQUEST, timeout=HANG)
    error = answer.json()["error"]
    assert answer.status_code == 502 and error["type"] == "api_error"
    assert answer.headers["x-should-retry"] == "false" and "upstream_api_key" in error["message"]
    assert ENGINE_KEY not in answer.text and "sk-other-0123456789" not in answer.text


@pytest.mark.parametrize("kind, status, error_type", [
    ("authentication_error", 502, "api_error"), ("permission_error", 502, "api_error"),
    ("overloaded_error", 529, "overloaded_error"), ("rate_limit_error", 429, "rate_limit_error"),
    ("invalid_request_error", 400, "invalid_request_error"), ("something_new", 500, "api_error")])
def test_an_error_event_from_an_anthropic_engine_is_answered_by_its_kind(kind, status, error_type):
    frames = [anthropic_event("message_start", message={"usage": {"input_tokens": 3}}),
              anthropic_event("error", error={"type": kind, "message": f"engine says {kind} for {ENGINE_KEY}"})]
    with FakeUpstream(frames) as up, in_front(up.url, backend="anthropic") as server:
        answer = httpx.post(server.url + "/v1/messages", json=REQUEST, timeout=HANG)
    assert answer.status_code == status and answer.json()["error"]["type"] == error_type
    assert f"engine says {kind}" in answer.json()["error"]["message"] and ENGINE_KEY not in answer.text


class Endless:
    """An engine whose answer never ends: an error body, or an SSE line, of unending bytes."""

    def __init__(self, status: int, prefix: bytes):
        self.status, self.prefix, self.sent = status, prefix, 0

    async def __call__(self, scope, receive, send):
        if await asgi_request_body(scope, receive, send) is None:
            return
        if scope["method"] == "GET":
            body = b'{"data": [{"id": "fake-model"}]}'
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        kind = b"application/json" if self.status >= 400 else b"text/event-stream"
        await send({"type": "http.response.start", "status": self.status, "headers": [(b"content-type", kind)]})
        await send({"type": "http.response.body", "body": self.prefix, "more_body": True})
        gone = asyncio.ensure_future(receive())  # the next message can only be http.disconnect
        chunk = b"x" * 65536
        while not gone.done() and self.sent < 1 << 31:  # 2 GB, which no test waits for
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            self.sent += len(chunk)
            await asyncio.sleep(0)
        gone.cancel()


@pytest.mark.parametrize("status, prefix", [(500, b'{"error": {"message": "'), (200, b"data: ")],
                         ids=["an error body", "an SSE line"])
def test_an_endless_answer_from_the_engine_is_read_only_so_far(status, prefix):
    engine = Endless(status, prefix)
    with LiveServer(engine) as up, in_front(up.url) as server:
        answer = httpx.post(server.url + "/v1/messages", json=REQUEST, timeout=HANG)
    assert answer.status_code == 500
    assert engine.sent < 4 * MAX_EVENT_BYTES  # what was read, give or take the sockets' buffers


def test_an_engine_that_ignores_max_tokens_is_cut_at_max_tokens():
    frames = [openai_chunk(role="assistant", content="")] + [openai_chunk(f"w{i} ") for i in range(1000)]
    with FakeUpstream(frames) as up, in_front(up.url) as server:
        for stream in (False, True):
            answer = httpx.post(server.url + "/v1/messages", json={**REQUEST, "stream": stream}, timeout=HANG)
            text = streamed_text(answer.text) if stream else answer.json()["content"][0]["text"]
            assert answer.status_code == 200
            assert text.strip() == " ".join(f"w{i}" for i in range(10))
            assert '"max_tokens"' in answer.text
