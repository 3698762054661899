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
from ..backends import make_models
from ..backends.base import Backend
from ..backends.residency import ModelSet, ModelState, Resident
from ..pipeline import Pipeline
from ..wire import Health, MemoryHealth, ModelHealth, encode
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


def model_health(service: MessageService, resident: Resident) -> ModelHealth:
    """What ``/health`` and ``/v1/models`` say of one model: its state, window and counts."""
    stats = resident.stats
    return ModelHealth(
        name=resident.name,
        state=resident.state.value,
        pinned=resident.spec.pinned and service.models.managed,
        families=sorted(resident.spec.families),
        context_window=resident.window,
        users=resident.users,
        requests=stats.requests,
        loads=stats.loads,
        unloads=stats.unloads,
        memory_bytes=resident.reservation() if service.models.managed else resident.backend.memory_bytes()
        if resident.backend is not None else 0,
        detail=resident.reason or "",
    )


def memory_health(models: ModelSet) -> MemoryHealth | None:
    """The memory cap and what is held under it, for a server of several models."""
    if not models.managed or models.cap is None:
        return None
    active = models.probe() if models.probe is not None else None
    return MemoryHealth(cap=models.cap, reserved=models.committed(), mlx_active=active,
                        mlx_baseline=models.baseline, loaded=models.loaded())


def create_app(
    settings: ServerSettings,
    backend: Backend | None = None,
    pipeline: Pipeline | None = None,
    *,
    models: ModelSet | None = None,
) -> Litestar:
    """The app for ``settings``: on ``models`` (or the one ``backend``) when given, which stay
    the caller's to close, else on the models the settings name."""
    owns_models = backend is None and models is None
    if models is None:
        models = ModelSet.single(backend, settings) if backend is not None else make_models(settings)
    service = MessageService(settings, models, pipeline)
    preparing = PreparationThread()
    default_lane = service.default_lane  # the one model, or the one model_patterns ids go to
    observer = Observer(settings, default_lane.backend, default_lane.gate)
    expected = settings.api_key.encode() if settings.api_key else None

    def require_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        if expected is None:
            return
        key = presented_key(connection)
        if key is None:
            raise ApiError(401, "x-api-key header is required")
        if not hmac.compare_digest(key.encode(), expected):
            raise ApiError(401, "invalid x-api-key")

    def model_info(model_id: str, resident: Resident) -> dict[str, Any]:
        """The API's model object, with what trimkit knows of the model: its state and counts."""
        window = service.lane(resident).profile().context_window if not models.managed else resident.window
        health = model_health(service, resident)
        return {
            "type": "model",
            "id": model_id,
            "display_name": model_id,
            "created_at": MODEL_CREATED_AT,
            "lifecycle": "active",
            "max_input_tokens": window,
            "max_tokens": window,
            "served_by": resident.name,
            "state": health.state,
            "context_window": window,
            "pinned": health.pinned,
            "families": health.families,
            "requests": health.requests,
            "loads": health.loads,
            "unloads": health.unloads,
        }

    async def prepared(request: Request, **options: Any):
        """The request prepared on the preparation thread (see :mod:`.worker`).

        The backend's status is read here first, on the event loop, where a backend
        may start background work (an upstream re-probes an engine it lost).
        """
        body = await request.body()
        models.status()
        return await preparing.run(service.prepare, body, **options)

    def listed() -> list[tuple[str, Resident]]:
        """Every model by its alias; the one-model server under each of its names, as it always was."""
        return [(name, models.route(name) or models.default) for name in models.catalog.listed]

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
        data = [model_info(name, resident) for name, resident in listed()]
        return {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}

    @get("/v1/models/{model_id:path}", guards=[require_key])
    async def get_model(model_id: FromPath[str]) -> dict[str, Any]:
        model_id = model_id.lstrip("/")
        resident = models.route(model_id)
        if resident is None:
            raise ApiError(404, f"model: {model_id} is not served here")
        return model_info(model_id, resident)

    @get("/", include_in_schema=False)
    async def root() -> dict[str, str]:
        return {"name": "trimkit", "messages": "/v1/messages", "health": "/health"}

    @head("/", include_in_schema=False)
    async def root_head() -> None:
        return None

    @get("/health")
    async def health() -> Response:
        status = models.status()
        resident = models.default
        ready = resident.backend is not None and resident.state is not ModelState.FAILED
        lane = service.lane(resident) if ready or not models.managed else None
        profile = lane.profile() if lane is not None else None
        backend = lane.backend if lane is not None else None
        body = Health(
            status="ok" if status.ready else ("error" if status.failed else "loading"),
            backend=backend.name if backend is not None else settings.backend,
            model=backend.profile.name if backend is not None else resident.name,
            detail=status.detail,
            queue=sum(lane.gate.busy for lane in service.built_lanes()),
            tier=profile.tier if profile is not None else (resident.spec.tier or ""),
            context_window=profile.context_window if profile is not None else resident.window,
            prefill_tps=round(backend.profile.prefill_tps, 1) if backend is not None else 0.0,
            convention=("native" if profile.native_tools else "xml") if profile is not None else "",
            tool_format=lane.dialect.name if lane is not None else "",
            upstreams=status.extra.get("upstreams", []),
            models=[model_health(service, r) for r in models.residents],
            memory=memory_health(models),
        )
        return Response(content=encode(body), media_type="application/json", status_code=200 if status.ready else 503)

    async def on_startup() -> None:
        models.start()

    async def on_shutdown() -> None:
        preparing.close()
        await models.stop()
        if owns_models:  # models handed in belong to the caller, who may share them
            models.close()

    return Litestar(
        route_handlers=[create_message, Router("/", route_handlers=[  # Messages requests are counted by their traces
            root, root_head, count_tokens, list_models, get_model, health, *metrics_routes(observer, [require_key]),
            *live_view_routes(observer, UiAccess(settings.api_key, presented_key)),
        ], middleware=[observer.middleware] if observer.active else [])],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        after_exception=[observer.after_exception] if observer.active else [],
        request_max_body_size=settings.max_body_bytes,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        state=State({"shutdown": service.shutdown}),
        middleware=[] if settings.api_key else [local_only(settings)],
        openapi_config=openapi_config(__version__),
        logging_config=None,
    )
