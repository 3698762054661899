"""What the server shows of itself: one object behind ``/metrics`` and the live view.

The app asks it for a :class:`~.trace.RequestTrace` per Messages request
(:meth:`Observer.begin`) and installs :meth:`Observer.before_send` as a Litestar
``before_send`` hook, which sees every response's status (errors' types read from
their Anthropic-shaped bodies) and last byte, for every route. Completed traces go
to the metrics and to the live view's ring; pages listening get the changed rows as
HTML, rendered once whoever listens.

With ``metrics`` and ``live_view`` both off it is inactive: no hook, no traces.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import msgspec
from litestar import Request

from ..backends.base import Backend, Readiness
from .. import report_html
from ..config.settings import ServerSettings
from .activity import RecentRequests
from .gate import GenerationGate
from .metrics import ServerMetrics
from .trace import NO_TRACE, RequestTrace
from .user_agent import client_family

TRACE_KEY = "trimkit.trace"
ERROR_STATUS_KEY = "trimkit.error_status"
MAX_ERROR_BODY = 65536
STATE_TEXT = {Readiness.READY: "serving", Readiness.LOADING: "loading", Readiness.FAILED: "failed to load"}


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
                             served=self.model(), keep_texts=self.texts_shown)
        request.scope["state"][TRACE_KEY] = trace
        if self.recent is not None:
            self.recent.add(trace.view)
        return trace

    # ---------------------------------------------------------------- from traces

    def updated(self, trace: RequestTrace) -> None:
        self._tell(trace)

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
        """Send the request's row and the status bar to the pages listening, if any."""
        recent = self.recent
        if recent is None or not recent.listeners:
            return
        recent.tell_all("request", report_html.rows([trace.view]))
        recent.tell_all("status", report_html.status_bar(self.header()))

    # ---------------------------------------------------------------- the app's before_send hook

    async def before_send(self, message: Any, scope: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            status = message["status"]
            state = scope["state"]
            if status >= 400:
                state[ERROR_STATUS_KEY] = status  # counted with its type, read from the body that follows
                return
            if self.metrics is not None:
                self.metrics.request(_endpoint(scope), status, "")
            if (trace := state.get(TRACE_KEY)) is not None:
                trace.answered(status)
        elif kind == "http.response.body":
            state = scope["state"]
            status = state.pop(ERROR_STATUS_KEY, None)
            trace = state.get(TRACE_KEY)
            if status is not None:
                error_type, text = read_error(message.get("body", b""))
                if self.metrics is not None:
                    self.metrics.request(_endpoint(scope), status, error_type)
                if trace is not None:
                    trace.answered(status, error_type or "error", text)
            if trace is not None and not message.get("more_body", False):
                trace.complete()

    # ---------------------------------------------------------------- the live view's header

    def header(self) -> dict[str, Any]:
        status = self.backend.status()
        state_text = STATE_TEXT[status.state]
        if status.progress is not None and status.progress[1]:
            state_text += f" {100 * status.progress[0] / status.progress[1]:.0f} %"
        return {
            "model": self.model(),
            "backend": self.backend.name,
            "state": {Readiness.READY: "ok", Readiness.LOADING: "loading", Readiness.FAILED: "error"}[status.state],
            "state_text": state_text,
            "running": self.gate.running,
            "waiting": self.gate.waiting,
            "requests": self.recent.seen if self.recent is not None else 0,
            "keep": self.recent.keep if self.recent is not None else 0,
        }


def _endpoint(scope: Any) -> str:
    """The route's template (``/v1/models/{model_id}``), never the path itself: a bounded label."""
    return scope.get("path_template") or "unmatched"
