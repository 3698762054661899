"""ASGI middleware that trims Anthropic Messages requests before the app sees them.

Wrap any ASGI app that serves ``POST /v1/messages`` (a Starlette, FastAPI or
Litestar proxy, trimkit's own server)::

    from trimkit.integrations.asgi import TrimMiddleware

    app = TrimMiddleware(app, models={"claude-*": {"model": "Qwen3-Coder-30B-A3B-Instruct-4bit",
                                                    "convention": "native"}})

or, in Starlette and FastAPI, ``app.add_middleware(TrimMiddleware, models=...)``.
The options are :class:`~trimkit.forward.Forwarder`'s; ``convention`` defaults to
``native`` here, since the middleware leaves the response alone (see below).

What it does, for each ``POST`` to one of ``paths`` (``/v1/messages`` and
``/v1/messages/count_tokens``, query strings such as ``?beta=true`` allowed):

* reads the body whole, up to ``max_body_bytes`` (32 MiB by default): a larger
  body (by its ``content-length``, or as it arrives) is answered with an
  Anthropic-shaped 413 ``request_too_large`` and never reaches the app;
* trims it when its ``model`` is one the middleware is configured for, and hands
  the app the trimmed body, with ``content-length`` set to its new size (and any
  ``transfer-encoding`` or ``content-encoding`` header dropped, since the new body
  is plain JSON of a known length);
* answers a request that does not fit the model's window even trimmed with an
  Anthropic-shaped 400 in the wording clients react to
  (``prompt is too long: N tokens > M maximum``), since the app cannot know it.

Everything else reaches the app exactly as it came, so the app's own answers stay
what its clients know: other methods and paths, other models, and bodies that are
not a Messages request (not JSON, a block type the API does not know, a missing
field). The middleware only ever changes a request it has read and understood.

The response is never touched: streaming or not, it goes from the app to the
client as the app sends it. So tools keep reaching the model as tools (the
``native`` convention, compacted), and the app's upstream turns the model's calls
into ``tool_use`` blocks as it always did. With ``convention: "xml"`` the calls
come back as text, for an app that reads them itself
(:class:`trimkit.toolcalls.messages.MessageStreamReader`).

``on_trim(forwarded)`` is called with each :class:`~trimkit.forward.Forwarded`
(the report is ``forwarded.result.report``); every trim is also logged at INFO on
the ``trimkit.integrations`` logger. Imports no web framework.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Iterable, Mapping, MutableMapping

import msgspec

from ..errors import PromptTooLong, RequestDecodeError
from ..forward import Forwarded, Forwarder, ModelOptions
from ..wire import ErrorDetail, ErrorResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("trimkit.integrations")

PATHS = ("/v1/messages", "/v1/messages/count_tokens")
MAX_BODY_BYTES = 32 * 1024 * 1024
DROPPED_HEADERS = {b"content-length", b"transfer-encoding", b"content-encoding"}


class TrimMiddleware:
    """Trims ``/v1/messages`` request bodies for the configured models; see the module docstring.

    Give either ``forwarder`` or ``models`` (with ``stages``, the ``[stages]``
    table); the options of a model given as a mapping default to the ``native``
    convention. A configuration that cannot be used raises
    :class:`~trimkit.errors.ConfigError` here, not at the first request.
    """

    def __init__(
        self,
        app: ASGIApp,
        forwarder: Forwarder | None = None,
        *,
        models: Mapping[str, ModelOptions | Mapping[str, Any]] | None = None,
        stages: Mapping[str, Any] | None = None,
        paths: Iterable[str] = PATHS,
        max_body_bytes: int = MAX_BODY_BYTES,
        on_trim: Callable[[Forwarded], None] | None = None,
    ):
        if forwarder is None:
            models = {name: ({"convention": "native", **options} if isinstance(options, Mapping) else options)
                      for name, options in (models or {}).items()}
            forwarder = Forwarder(models, stages=stages)
        self.app = app
        self.forwarder = forwarder
        self.paths = frozenset(paths)
        self.max_body_bytes = max_body_bytes
        self.on_trim = on_trim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _error(send, 413, "request_too_large", f"request body is larger than {self.max_body_bytes} bytes")
            return
        body = await self._read(receive)
        if body is None:
            return  # the client left before it finished sending
        if len(body) > self.max_body_bytes:
            await _error(send, 413, "request_too_large", f"request body is larger than {self.max_body_bytes} bytes")
            return
        try:
            forwarded = self._trim(body)
        except PromptTooLong as exc:
            await _error(send, 400, "invalid_request_error", str(exc))
            return
        if forwarded is None:
            await self.app(scope, _replay(body, receive), send)
            return
        new_body = msgspec.json.encode(forwarded.body)
        headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() not in DROPPED_HEADERS]
        headers.append((b"content-length", str(len(new_body)).encode()))
        log.info("trimmed a request for %s: %s", forwarded.result.request.model, forwarded.result.report.summary())
        if self.on_trim is not None:
            self.on_trim(forwarded)
        await self.app({**scope, "headers": headers}, _replay(new_body, receive), send)

    def _trim(self, body: bytes) -> Forwarded | None:
        """The trimmed request, or None when the body is to reach the app as it came."""
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        if not isinstance(parsed, dict):
            return None
        try:
            return self.forwarder.trim(parsed)
        except (RequestDecodeError, RecursionError):
            return None

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, reading no further than one chunk past the limit; None on a disconnect."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body_bytes or not message.get("more_body", False):
                return b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then whatever the client sends next (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _error(send: Send, status: int, error_type: str, message: str) -> None:
    """An Anthropic-shaped error; ``x-should-retry: false``, since the same request will fail again."""
    body = msgspec.json.encode(ErrorResponse(error=ErrorDetail(type=error_type, message=message)))
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-should-retry", b"false"),
    ]})
    await send({"type": "http.response.body", "body": body})
