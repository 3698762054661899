"""Helpers for the tests that run real engines (llama-server, vLLM): a fault proxy and trimkit in front.

``FaultProxy`` sits between trimkit and a real engine on 127.0.0.1. By default it
forwards every request unchanged (streaming included) and keeps what trimkit sent
in ``sent``; ``fail(status, body)`` makes it answer with an error instead,
``garbage()`` with a 200 stream of data that is not JSON (``garbage(midway=True)``:
after a few of the engine's own frames with text in them), and ``rewrite(fn)``
changes each forwarded JSON body: a test forces the engine's output that way
(llama.cpp's ``grammar``, vLLM's ``structured_outputs``), since the tiny random
model would never write a tool call of its own.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import httpx

from trimkit.server import ServerSettings, create_app
from trimkit.testing import LiveServer
from trimkit.testing.engines import Engine

from tests.upstreams import asgi_request_body

GARBAGE = b"data: {not json at all\n\ndata: \x00\x01\n\n"
TEXT_FRAME = re.compile(rb'"content":"[^"]|"text_delta"')  # an OpenAI or Anthropic frame that carries text
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}


class FaultProxy:
    """An ASGI reverse proxy to ``target`` that can fail on purpose; ``with FaultProxy(url) as p: p.url``."""

    def __init__(self, target: str):
        self.target = target
        self.sent: list[dict[str, Any]] = []
        self.reset()

    def reset(self) -> "FaultProxy":
        self.status: int | None = None
        self.error_body: bytes = b""
        self.garbled = False
        self.garbled_midway = False
        self.rewriter: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.sent.clear()
        return self

    def fail(self, status: int, body: dict | str) -> "FaultProxy":
        self.status = status
        self.error_body = (body if isinstance(body, str) else json.dumps(body)).encode()
        return self

    def garbage(self, *, midway: bool = False) -> "FaultProxy":
        self.garbled, self.garbled_midway = not midway, midway
        return self

    def rewrite(self, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> "FaultProxy":
        self.rewriter = fn
        return self

    async def __call__(self, scope, receive, send) -> None:
        body = await asgi_request_body(scope, receive, send)
        if body is None:
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k.decode() not in HOP_HEADERS}
        if scope["method"] == "POST":
            payload = json.loads(body or b"{}")
            if self.rewriter is not None:
                payload = self.rewriter(payload)
                body = json.dumps(payload).encode()
            self.sent.append({"path": scope["path"], "headers": headers, "body": payload})
            if self.status is not None:
                await self._answer(send, self.status, self.error_body, "application/json")
                return
            if self.garbled:
                await self._answer(send, 200, GARBAGE, "text/event-stream")
                return
        query = scope.get("query_string", b"").decode()
        url = self.target + scope["path"] + (f"?{query}" if query else "")
        async with httpx.AsyncClient(timeout=300) as client:
            async with client.stream(scope["method"], url, content=body, headers=headers) as response:
                await send({"type": "http.response.start", "status": response.status_code,
                            "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()
                                        if k.lower() not in HOP_HEADERS]})
                with_text = 0
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    with_text += len(TEXT_FRAME.findall(chunk))
                    if self.garbled_midway and scope["method"] == "POST" and with_text >= 3:
                        await send({"type": "http.response.body", "body": GARBAGE, "more_body": True})
                        break
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _answer(send, status: int, body: bytes, kind: str) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", kind.encode())]})
        await send({"type": "http.response.body", "body": body})

    def __enter__(self) -> "FaultProxy":
        self._server = LiveServer(self)
        self._server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._server.__exit__(*exc)

    @property
    def url(self) -> str:
        return self._server.url


@contextmanager
def trimkit_in_front(url: str, backend: str, engine: Engine, **settings: Any) -> Iterator[LiveServer]:
    """A live trimkit with ``backend`` in front of ``url`` (the engine or a proxy to it), with the engine's key."""
    config = {"backend": backend, "upstream": url, "upstream_model": engine.model,
              "upstream_api_key": engine.api_key, **settings}
    with LiveServer(create_app(ServerSettings(**config))) as server:
        yield server
