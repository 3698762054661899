"""Scripted upstreams for testing the upstream backends (a real engine: ``trimkit.testing.spawn_mlx_lm_server``).

``FakeUpstream`` is a small ASGI app that answers ``/v1/models`` and streams scripted
SSE frames for ``POST`` requests; ``cut`` ends the stream by dropping the connection
mid-body, ``delay`` holds the response back for a time, ``hold`` until the test sets
the event, ``answer(request)`` may return a ``(status, body)`` to send instead (an
engine refusing a field), and every request it received is kept in ``requests``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from trimkit.testing import LiveServer


WRITE_TOOL = {  # declared by the client; mode checks coercion of a string to an integer
    "name": "Write",
    "description": "Write a file",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}, "mode": {"type": "integer"}},
        "required": ["file_path", "content"],
    },
}


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def openai_chunk(content: str | None = None, finish: str | None = None, **delta: Any) -> bytes:
    if content is not None:
        delta["content"] = content
    return sse({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def openai_usage(prompt: int, completion: int, cached: int | None = None) -> bytes:
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return sse({"object": "chat.completion.chunk", "choices": [], "usage": usage})


def openai_turn(*texts: str, finish: str = "stop", prompt: int = 40, cached: int | None = None) -> list[bytes]:
    """A complete OpenAI-style stream: role chunk, text chunks, finish, usage, [DONE]."""
    return [
        openai_chunk(role="assistant", content=""),
        *(openai_chunk(text) for text in texts),
        openai_chunk(finish=finish),
        openai_usage(prompt, len(texts), cached),
        sse("[DONE]"),
    ]


def anthropic_event(event: str, **data: Any) -> bytes:
    return sse({"type": event, **data}, event)


async def asgi_request_body(scope, receive, send) -> bytes | None:
    """The whole body of an HTTP request; None for the lifespan protocol, which this answers."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return None
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


@dataclass
class FakeUpstream:
    """An ASGI upstream with a scripted answer; use as ``with FakeUpstream(...) as up: up.url``."""

    frames: list[bytes] = field(default_factory=list)
    status: int = 200
    error_body: dict[str, Any] | None = None
    cut: bool = False
    delay: float = 0.0
    hold: threading.Event | None = None
    models: list[dict[str, Any]] = field(default_factory=lambda: [{"id": "fake-model", "object": "model"}])
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    answer: Callable[[dict[str, Any]], tuple[int, dict[str, Any]] | None] | None = None

    async def __call__(self, scope, receive, send) -> None:
        body = await asgi_request_body(scope, receive, send)
        if body is None:
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if scope["method"] == "GET":
            await self._answer(send, 200, {"object": "list", "data": self.models})
            return
        self.requests.append({"path": scope["path"], "headers": headers, "body": json.loads(body or b"{}")})
        special = self.answer(self.requests[-1]) if self.answer else None
        if special is not None:
            await self._answer(send, *special)
            return
        if self.delay:
            await asyncio.sleep(self.delay)
        while self.hold is not None and not self.hold.is_set():
            await asyncio.sleep(0.005)
        if self.status >= 400:
            await self._answer(send, self.status, self.error_body or {"error": {"message": "scripted failure"}})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for frame in self.frames:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            await asyncio.sleep(0.01)
        if self.cut:
            raise ConnectionResetError("scripted cut")  # uvicorn drops the connection mid-body
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def script(self, frames: list[bytes] = (), **changes: Any) -> "FakeUpstream":
        """Answer the next requests with ``frames`` (and ``status``, ``cut``, ``delay``…); forget old requests."""
        self.frames, self.status, self.error_body = list(frames), 200, None
        self.cut, self.delay, self.hold, self.answer = False, 0.0, None, None
        for name, value in changes.items():
            setattr(self, name, value)
        self.requests.clear()
        return self

    @staticmethod
    async def _answer(send, status: int, payload: dict[str, Any]) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})

    def __enter__(self) -> "FakeUpstream":
        self._server = LiveServer(self, port=self.port)
        self._server.__enter__()
        self.port = self._server.port
        return self

    def __exit__(self, *exc) -> None:
        self._server.__exit__(*exc)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
