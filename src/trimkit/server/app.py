"""The Litestar application: routes, auth and error mapping around :class:`MessageService`."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any, Awaitable, TypeVar

from litestar import Litestar, Request, Response, Router, get, head, post
from litestar.datastructures import State
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath
from litestar.response import Stream

from .. import __version__
from ..backends import make_backend
from ..backends.base import Backend
from ..pipeline import Pipeline
from ..wire import Health, encode
from .errors import EXCEPTION_HANDLERS, ApiError
from .live_view import UiAccess, live_view_routes, metrics_routes
from .messages import MessageService
from .observer import TRACED, Observer
from .openapi import ERROR_RESPONSES, CountTokensOperation, MessagesOperation, openapi_config
from .local_only import LocalOnly
from .shutdown import MESSAGE as SHUTTING_DOWN, Shutdown
from .worker import PreparationThread
from ..config.settings import ServerSettings

MODEL_CREATED_AT = "2025-01-01T00:00:00Z"
T = TypeVar("T")


async def until_disconnect(request: Request, work: Awaitable[T], shutdown: Shutdown) -> T:
    """Await ``work``, cancelling it if the client goes away or the server stops first.

    Litestar watches for a disconnect only while streaming; without this a client
    that gave up on a non-streaming request would hold the model until
    ``max_tokens``. Once the body has been read, the next ASGI message can only be
    ``http.disconnect``. A server that stops answers the request a 529.
    """

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(disconnected())
    stopping = asyncio.ensure_future(shutdown.stopping.wait())
    try:
        await asyncio.wait({task, watcher, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, watcher, stopping):
            if not pending.done():
                pending.cancel()
        await asyncio.gather(task, watcher, stopping, return_exceptions=True)
    if task.cancelled():
        if shutdown.begun:
            raise ApiError(529, SHUTTING_DOWN)
        raise ApiError(400, "client disconnected before the response was ready")
    return task.result()


def local_only(settings: ServerSettings):
    """The middleware of :mod:`.local_only` for a server without a key: its allowed hosts and its own address."""
    hosts = [*settings.allowed_hosts, settings.host]
    return lambda app: LocalOnly(app, hosts)


def presented_key(connection: ASGIConnection) -> str | None:
    key = connection.headers.get("x-api-key")
    if key:
        return key
    auth = connection.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def create_app(
    settings: ServerSettings,
    backend: Backend | None = None,
    pipeline: Pipeline | None = None,
) -> Litestar:
    owns_backend = backend is None
    backend = backend or make_backend(settings)
    service = MessageService(settings, backend, pipeline)
    preparing = PreparationThread()
    observer = Observer(settings, backend, service.gate)
    expected = settings.api_key.encode() if settings.api_key else None

    def require_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        if expected is None:
            return
        key = presented_key(connection)
        if key is None:
            raise ApiError(401, "x-api-key header is required")
        if not hmac.compare_digest(key.encode(), expected):
            raise ApiError(401, "invalid x-api-key")

    def model_info(model_id: str) -> dict[str, Any]:
        profile = service.profile()
        return {
            "type": "model",
            "id": model_id,
            "display_name": model_id,
            "created_at": MODEL_CREATED_AT,
            "lifecycle": "active",
            "max_input_tokens": profile.context_window,
            "max_tokens": profile.context_window,
        }

    async def prepared(request: Request, **options: Any):
        """The request prepared on the preparation thread (see :mod:`.worker`).

        The backend's status is read here first, on the event loop, where a backend
        may start background work (an upstream re-probes an engine it lost).
        """
        body = await request.body()
        backend.status()
        return await preparing.run(service.prepare, body, **options)

    @post("/v1/messages", status_code=200, guards=[require_key], operation_class=MessagesOperation,
          responses=ERROR_RESPONSES, opt={TRACED: True})
    async def create_message(request: Request) -> Response:
        prep = await prepared(request, trace=observer.begin(request))
        if prep.request.stream:
            return Stream(
                await until_disconnect(request, service.open_stream(prep), service.shutdown),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            )
        message = await until_disconnect(request, service.create(prep), service.shutdown)
        return Response(content=encode(message), media_type="application/json")

    @post("/v1/messages/count_tokens", status_code=200, guards=[require_key], operation_class=CountTokensOperation,
          responses=ERROR_RESPONSES)
    async def count_tokens(request: Request) -> dict[str, int]:
        return {"input_tokens": (await prepared(request, needs_max_tokens=False)).prompt_tokens}

    @get("/v1/models", guards=[require_key])
    async def list_models() -> dict[str, Any]:
        ids = sorted(service.served_models())
        return {"data": [model_info(i) for i in ids], "has_more": False, "first_id": ids[0], "last_id": ids[-1]}

    @get("/v1/models/{model_id:path}", guards=[require_key])
    async def get_model(model_id: FromPath[str]) -> dict[str, Any]:
        model_id = model_id.lstrip("/")
        if not settings.accepts_model(model_id, service.accepted_models()):
            raise ApiError(404, f"model: {model_id} is not served here")
        return model_info(model_id)

    @get("/", include_in_schema=False)
    async def root() -> dict[str, str]:
        return {"name": "trimkit", "messages": "/v1/messages", "health": "/health"}

    @head("/", include_in_schema=False)
    async def root_head() -> None:
        return None

    @get("/health")
    async def health() -> Response:
        status = backend.status()
        profile = service.profile()
        body = Health(
            status=status.state.value,
            backend=backend.name,
            model=backend.profile.name,
            detail=status.detail,
            queue=service.gate.busy,
            tier=profile.tier,
            context_window=profile.context_window,
            prefill_tps=round(backend.profile.prefill_tps, 1),
            convention="native" if profile.native_tools else "xml",
            tool_format=service.dialect.name,
            upstreams=status.extra.get("upstreams", []),
        )
        return Response(content=encode(body), media_type="application/json", status_code=200 if status.ready else 503)

    def on_shutdown() -> None:
        preparing.close()
        if owns_backend:  # a backend handed in belongs to the caller, who may share it
            backend.close()

    return Litestar(
        route_handlers=[create_message, Router("/", route_handlers=[  # Messages requests are counted by their traces
            root, root_head, count_tokens, list_models, get_model, health, *metrics_routes(observer, [require_key]),
            *live_view_routes(observer, UiAccess(settings.api_key, presented_key)),
        ], middleware=[observer.middleware] if observer.active else [])],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        after_exception=[observer.after_exception] if observer.active else [],
        request_max_body_size=settings.max_body_bytes,
        on_shutdown=[on_shutdown],
        state=State({"shutdown": service.shutdown}),
        middleware=[] if settings.api_key else [local_only(settings)],
        openapi_config=openapi_config(__version__),
        logging_config=None,
    )
