"""What the server shows of itself: one object behind ``/metrics`` and the live view.

The Messages route asks it for a :class:`~.trace.RequestTrace` per request
(:meth:`Observer.begin`); the request path tells the trace how it goes, and the
trace counts the request when it is answered. That route has no middleware, so a
stream's thousands of chunks pass through nothing of this. Every other route is
wrapped by :meth:`Observer.middleware`, which counts its response's status (an
error's type read from its Anthropic-shaped body). :meth:`Observer.after_exception`
counts what fails before a route answers: the Messages route's errors (with its
trace) and paths no route serves. Completed traces go to the metrics and to the
live view's ring; pages listening are told which rows changed, and render them a
few times a second at most (:mod:`.activity`).

With ``metrics`` and ``live_view`` both off it is inactive: no middleware, no traces.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import msgspec
from litestar import Request

from ..backends.base import Backend, Readiness
from ..config.settings import ServerSettings
from .activity import RecentRequests
from .errors import ERROR_TYPES, ApiError
from .gate import GenerationGate
from .metrics import ServerMetrics
from .trace import NO_TRACE, RequestTrace
from .user_agent import client_family

TRACE_KEY = "trimkit.trace"
TRACED = "trimkit_traced"
"""A route handler's ``opt`` key: its requests are counted by their traces (the Messages route)."""
MAX_ERROR_BODY = 65536
STATE_TEXT = {Readiness.READY: "serving", Readiness.LOADING: "loading", Readiness.FAILED: "failed to load",
              Readiness.UNLOADED: "not loaded (loads when asked for)"}


def read_error(body: bytes) -> tuple[str, str]:
    """(type, message) of an Anthropic-shaped error body; empty strings for anything else."""
    if len(body) > MAX_ERROR_BODY:
        return "", ""
    try:
        error = msgspec.json.decode(body).get("error") or {}
        return str(error.get("type") or ""), str(error.get("message") or "")
    except (msgspec.DecodeError, AttributeError):
        return "", ""


class Observer:
    def __init__(self, settings: ServerSettings, backend: Backend, gate: GenerationGate,
                 model: Callable[[], str] | None = None):
        self.backend = backend
        self.gate = gate
        self.model = model or (lambda: backend.profile.name)
        self.metrics = ServerMetrics(backend, gate, self.model) if settings.metrics else None
        self.recent = RecentRequests(settings.live_view_keep) if settings.live_view else None
        self.texts_shown = self.recent is not None and bool(settings.capture_dir)
        """Captures are on: the live view may show prompts and responses."""
        self._ids = itertools.count(1)

    @property
    def active(self) -> bool:
        return self.metrics is not None or self.recent is not None

    def begin(self, request: Request) -> Any:
        """The trace of one Messages request (``NO_TRACE`` when nobody observes)."""
        if not self.active:
            return NO_TRACE
        trace = RequestTrace(self, next(self._ids), client=client_family(request.headers.get("user-agent")),
                             served=self.model(), keep_texts=self.texts_shown,
                             endpoint=_endpoint(request.scope))
        request.scope["state"][TRACE_KEY] = trace
        if self.recent is not None:
            self.recent.add(trace.view)
        return trace

    # ---------------------------------------------------------------- from traces

    def updated(self, trace: RequestTrace) -> None:
        self._tell(trace)

    def answered(self, trace: RequestTrace, status: int, error_type: str) -> None:
        if self.metrics is not None:
            self.metrics.request(trace.endpoint, status, error_type)

    def completed(self, trace: RequestTrace) -> None:
        if self.metrics is not None:
            self.metrics.observe(trace)
        if self.recent is not None and trace.keep_texts:
            self.recent.keep_texts(trace.view, trace.trimmed)
        trace.trimmed = None
        self._tell(trace)

    def stream_error(self, trace: RequestTrace, error_type: str) -> None:
        if self.metrics is not None:
            self.metrics.stream_error(trace.view.served, error_type)

    def _tell(self, trace: RequestTrace) -> None:
        """Tell the pages listening, if any, that this request's row changed (they render it themselves)."""
        if self.recent is not None:
            self.recent.changed(trace.view)

    # ---------------------------------------------------------------- watching responses

    @property
    def middleware(self) -> Callable[[Any], Any]:
        """Litestar middleware for every route but the Messages one: counts the response's status,
        reading an error's type from its body. A plain function (Litestar copies the routers it is given,
        and the observer, which holds locks, must not be copied)."""
        metrics = self.metrics

        def wrap(app: Any) -> Any:
            async def observed(scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] != "http" or metrics is None:
                    await app(scope, receive, send)
                    return
                answer = _Answer(metrics, scope)

                async def watched(message: Any) -> None:
                    if not message.get("more_body"):  # the live view's events pass with one lookup each
                        answer.look(message)
                    await send(message)

                await app(scope, receive, watched)

            return observed

        return wrap

    async def after_exception(self, exception: Exception, scope: Any) -> None:
        """Count what the middleware does not see: the Messages route's errors, and unknown paths."""
        status, error_type, message = _error_of(exception)
        if (trace := scope.get("state", {}).get(TRACE_KEY)) is not None:
            trace.answered(status, error_type, message)
            trace.complete()
            return
        handler = scope.get("route_handler")
        traced = handler is not None and bool(getattr(handler, "opt", {}).get(TRACED))
        if self.metrics is not None and (traced or not scope.get("path_template")):
            self.metrics.request(_endpoint(scope), status, error_type)

    # ---------------------------------------------------------------- the live view's header

    def header(self) -> dict[str, Any]:
        status = self.backend.status()
        state_text = STATE_TEXT[status.state]
        if status.progress is not None and status.progress[1]:
            state_text += f" {100 * status.progress[0] / status.progress[1]:.0f} %"
        return {
            "model": self.model(),
            "backend": self.backend.name,
            "state": {Readiness.READY: "ok", Readiness.LOADING: "loading", Readiness.FAILED: "error",
                      Readiness.UNLOADED: "ok"}[status.state],
            "state_text": state_text,
            "running": self.gate.running,
            "waiting": self.gate.waiting,
            "requests": self.recent.seen if self.recent is not None else 0,
            "keep": self.recent.keep if self.recent is not None else 0,
        }


def _endpoint(scope: Any) -> str:
    """The route's template (``/v1/models/{model_id}``), never the path itself: a bounded label."""
    return scope.get("path_template") or "unmatched"


class _Answer:
    """One response as the middleware sees it: its status, then its body (an error's type is in it)."""

    __slots__ = ("metrics", "scope", "status")

    def __init__(self, metrics: ServerMetrics, scope: Any):
        self.metrics, self.scope, self.status = metrics, scope, 0

    def look(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if self.status < 400:
                self.metrics.request(_endpoint(self.scope), self.status, "")
        elif message["type"] == "http.response.body" and self.status >= 400:
            self.metrics.request(_endpoint(self.scope), self.status, read_error(message.get("body", b""))[0])
            self.status = 0


def _error_of(exception: Exception) -> tuple[int, str, str]:
    """(status, error type, message) of an exception as the app's handlers answer it."""
    if isinstance(exception, ApiError):
        return exception.status, exception.error_type, exception.message
    status = getattr(exception, "status_code", 500)
    if not isinstance(status, int):
        status = 500
    detail = getattr(exception, "detail", "") if status < 500 else ""
    return status, ERROR_TYPES.get(status, "api_error"), str(detail or "")
