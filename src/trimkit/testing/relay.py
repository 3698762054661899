"""A recording relay: sits between a proxy and its engine and keeps what the engine was sent.

``with RecordingRelay(engine_url) as relay:`` serves on a free port of 127.0.0.1 and
passes every request to ``engine_url`` and every answer back, streaming included,
byte for byte. For each request it keeps an :class:`Exchange`: the path, the JSON
body the engine received, and the ``usage`` the engine reported (from a JSON answer
or the last SSE frame that had one), which for an OpenAI-compatible engine holds
the prompt tokens it counted with the model's own tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from .servers import LiveServer


@dataclass
class Exchange:
    path: str
    body: Any
    usage: dict[str, Any] = field(default_factory=dict)
    status: int = 0

    @property
    def prompt_chars(self) -> int:
        """Characters of the prompt as sent: each message's text, and the tools as JSON."""
        if not isinstance(self.body, dict):
            return 0
        chars = 0
        for message in self.body.get("messages") or []:
            content = message.get("content")
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, list):
                chars += sum(len(part.get("text", "")) for part in content if isinstance(part, dict))
            for call in message.get("tool_calls") or []:
                chars += len(json.dumps(call.get("function", {}), ensure_ascii=False))
        if self.body.get("tools"):
            chars += len(json.dumps(self.body["tools"], ensure_ascii=False))
        return chars


class RecordingRelay:
    def __init__(self, target: str):
        self.target = target.rstrip("/")
        self.exchanges: list[Exchange] = []
        self._client = httpx.AsyncClient(base_url=self.target, timeout=httpx.Timeout(900.0))
        self._server = LiveServer(self)

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> "RecordingRelay":
        self._server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._server.__exit__(*exc)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await self._client.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode(errors="replace")
        exchange = Exchange(scope["path"], parsed)
        if scope["method"] == "POST":
            self.exchanges.append(exchange)
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"]
                   if k.lower() not in (b"host", b"content-length", b"accept-encoding")]
        path = scope["path"] + (f"?{scope['query_string'].decode()}" if scope.get("query_string") else "")
        request = self._client.build_request(scope["method"], path, content=body, headers=headers)
        response = await self._client.send(request, stream=True)
        exchange.status = response.status_code
        await send({"type": "http.response.start", "status": response.status_code, "headers": [
            (k.encode(), v.encode()) for k, v in response.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection")
        ]})
        seen = b""
        try:
            async for chunk in response.aiter_raw():
                seen += chunk
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            await response.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        exchange.usage = _usage(seen)


def _usage(raw: bytes) -> dict[str, Any]:
    """The ``usage`` of a JSON answer, or of the last SSE frame that carries one."""
    try:
        answer = json.loads(raw)
        return answer.get("usage") or {} if isinstance(answer, dict) else {}
    except ValueError:
        pass
    usage: dict[str, Any] = {}
    for line in raw.decode(errors="replace").splitlines():
        if line.startswith("data:"):
            try:
                frame = json.loads(line[5:])
            except ValueError:
                continue
            if isinstance(frame, dict) and frame.get("usage"):
                usage = frame["usage"]
    return usage
