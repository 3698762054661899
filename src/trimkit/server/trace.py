"""One Messages request followed from arrival to its answer, for ``/metrics`` and the live view.

The request path calls a trace at a few points (prepared, waiting, running,
generated, answered, a stream error, a disconnect, complete); the app's
``after_exception`` hook tells it an error it was answered with. It counts the
request once, with the status of its answer, and fills a
:class:`~trimkit.report_html.RequestView` as it goes and hands itself to its
observer once, when the request is done. :data:`NO_TRACE` stands in when metrics
and the live view are both off, so the request path never asks whether to call.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from ..report_html import RequestTexts, RequestView, response_text
from ..wire import ToolUseBlock, to_builtins

if TYPE_CHECKING:
    from ..backends.base import Finished
    from ..stage import TrimResult
    from ..toolcalls.response import ResponseBuilder
    from ..wire import MessagesRequest


class Generated(Protocol):
    """What the trace reads of one generation attempt (``messages._Attempt``)."""

    first_at: float | None
    ended_at: float | None
    finished: "Finished | None"


class TraceSink(Protocol):
    """Where a trace reports (the server's :class:`~trimkit.server.observer.Observer`)."""

    def updated(self, trace: "RequestTrace") -> None: ...

    def answered(self, trace: "RequestTrace", status: int, error_type: str) -> None: ...

    def completed(self, trace: "RequestTrace") -> None: ...

    def stream_error(self, trace: "RequestTrace", error_type: str) -> None: ...


class RequestTrace:
    def __init__(self, sink: TraceSink, request_id: int, *, client: str, served: str, keep_texts: bool,
                 endpoint: str = "/v1/messages"):
        self.sink = sink
        self.endpoint = endpoint
        self.started = time.perf_counter()
        self.view = RequestView(id=request_id, at=time.time(), client=client, served=served)
        self.keep_texts = keep_texts
        self.trimmed: "TrimResult | None" = None
        """The trim (original and trimmed request), kept only when texts may be shown, for the diff."""
        self.disconnected = False
        self.counted = False
        self.done = False
        self._waiting_since: float | None = None

    # ---------------------------------------------------------------- called by the request path

    def prepared(self, request: "MessagesRequest", trimmed: "TrimResult", kind: str) -> None:
        view = self.view
        view.model, view.stream, view.kind = request.model, bool(request.stream), kind
        view.served = trimmed.profile.name  # the model it was routed to, on a server of several
        view.report, view.tier = trimmed.report, trimmed.report.tier
        view.tools_offered = list(trimmed.carry.tool_names)
        if self.keep_texts:
            self.trimmed = trimmed

    def waiting(self) -> None:
        """Waiting for a generation slot: its row can show the trim now (``prepared`` runs on the
        preparation thread, so the pages hear of it from here, on the event loop)."""
        self._waiting_since = time.perf_counter()
        self.sink.updated(self)

    def running(self) -> None:
        if self._waiting_since is not None:
            self.view.queue_wait = (self.view.queue_wait or 0.0) + time.perf_counter() - self._waiting_since
            self._waiting_since = None

    def generated(self, attempts: Sequence[Generated], builder: "ResponseBuilder", usage: Any) -> None:
        """The generation is over: its speed, its tokens and what the response holds."""
        view = self.view
        firsts = [a.first_at for a in attempts if a.first_at is not None]
        if firsts:
            view.ttft = firsts[0] - self.started
        decoded, decoding = 0, 0.0
        for attempt in attempts:
            finished = attempt.finished
            if finished is None or attempt.first_at is None or attempt.ended_at is None:
                continue
            if finished.prefill_tps and view.prefill_tps is None:
                view.prefill_tps = finished.prefill_tps
            decoded += max(finished.output_tokens - 1, 0)
            decoding += attempt.ended_at - attempt.first_at
        if decoded and decoding > 0:
            view.decode_tps = decoded / decoding
        view.prefilled_tokens = usage.input_tokens
        view.cached_tokens = usage.cache_read_input_tokens or 0
        view.output_tokens = usage.output_tokens
        view.stop_reason = builder.stop_reason or ""
        view.tool_calls = [b.name for b in builder.content if isinstance(b, ToolUseBlock)]
        if self.keep_texts:
            view.texts = RequestTexts(response=response_text(to_builtins(builder.content)))

    def stream_failed(self, error_type: str, message: str) -> None:
        """The stream ended with an ``error`` event after it began (its status was 200)."""
        self.view.error_type, self.view.error = error_type, message
        self.sink.stream_error(self, error_type)

    def client_left(self) -> None:
        """The client went away before the response was done; the generation was stopped."""
        self.disconnected = self.view.cancelled = True
        self.complete()

    def answered(self, status: int, error_type: str = "", message: str = "") -> None:
        """The answer's status (200 once a response or a stream begins), counted once; an error's type and words."""
        view = self.view
        view.status = status
        if error_type:
            view.error_type, view.error = error_type, message
        if not self.counted:
            self.counted = True
            self.sink.answered(self, status, error_type)
        if self.done:  # a disconnected non-streaming request is answered (to nobody) after it was counted
            self.sink.updated(self)

    def complete(self) -> None:
        if not self.done:
            self.done = True
            self.sink.completed(self)


class _NoTrace:
    """Accepts every call and keeps nothing: the request path's trace when nobody observes."""

    def prepared(self, request, trimmed, kind) -> None: ...

    def waiting(self) -> None: ...

    def running(self) -> None: ...

    def generated(self, attempts, builder, usage) -> None: ...

    def stream_failed(self, error_type, message) -> None: ...

    def client_left(self) -> None: ...

    def answered(self, status, error_type="", message="") -> None: ...

    def complete(self) -> None: ...


NO_TRACE: Any = _NoTrace()
