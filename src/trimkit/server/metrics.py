"""``/metrics``: what the server did, in the Prometheus text format (``prometheus-client``).

Each app has its own :class:`~prometheus_client.CollectorRegistry`, never the
process-wide default, so several apps in one process (tests, a proxy that mounts
trimkit) keep apart. Label values are bounded: endpoints are route templates,
error types the API's own (anything else is ``other``), models the configured
names, stages the pipeline's. No request id, prompt text, path or key is ever a
label.

What moves per request is counted when the request completes
(:meth:`ServerMetrics.observe`); what describes the server now (queue depth, the
model's state and load time) is read when Prometheus scrapes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from .. import __version__
from ..backends.base import Backend, Readiness
from .errors import ERROR_TYPES

if TYPE_CHECKING:
    from .gate import GenerationGate
    from .trace import RequestTrace

__all__ = ["METRICS_MEDIA_TYPE", "ServerMetrics", "bounded_error_type"]

METRICS_MEDIA_TYPE = "text/plain; version=0.0.4"
"""The text format every Prometheus reads (trimkit's names need nothing newer); Litestar adds the charset."""
KNOWN_ERROR_TYPES = frozenset(ERROR_TYPES.values())
SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)
TOKENS_PER_SECOND = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
PROMPT_TOKENS = tuple(2**n for n in range(8, 19))  # 256 … 262,144
TRIM_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


def bounded_error_type(error_type: str | None) -> str:
    """The error type as a label value: one of the API's, ``other``, or empty for none."""
    if not error_type:
        return ""
    return error_type if error_type in KNOWN_ERROR_TYPES else "other"


class _ServerState(Collector):
    """Read at scrape time: the queue and the model's state, load time and load progress."""

    def __init__(self, backend: Backend, gate: "GenerationGate", model: Callable[[], str]):
        self.backend = backend
        self.gate = gate
        self.model = model

    def collect(self) -> Iterator[GaugeMetricFamily]:
        model = self.model()
        queue = GaugeMetricFamily("trimkit_queue_depth", "Requests holding a generation slot (running) or waiting "
                                  "for one (waiting).", labels=["model", "state"])
        queue.add_metric([model, "running"], self.gate.running)
        queue.add_metric([model, "waiting"], self.gate.waiting)
        yield queue
        status = self.backend.status()
        state = GaugeMetricFamily("trimkit_model_state", "1 for the model's state now: loading, ok (serving) or "
                                  "error (failed to load).", labels=["model", "state"])
        for readiness in Readiness:
            state.add_metric([model, readiness.value], 1.0 if status.state is readiness else 0.0)
        yield state
        if self.backend.load_seconds is not None:
            yield _gauge("trimkit_model_load_seconds", "Seconds the model took to load.", model,
                         self.backend.load_seconds)
        if status.progress is not None:
            done, total = status.progress
            yield _gauge("trimkit_model_load_progress_ratio", "Share of the weights loaded so far.", model,
                         done / total if total else 0.0)


def _gauge(name: str, documentation: str, model: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation, labels=["model"])
    gauge.add_metric([model], value)
    return gauge


class ServerMetrics:
    """The server's metrics in a registry of their own; :meth:`exposition` is the ``/metrics`` body."""

    def __init__(self, backend: Backend, gate: "GenerationGate", model: Callable[[], str]):
        self.registry = CollectorRegistry()
        r = self.registry
        Info("trimkit", "The trimkit version and backend.", registry=r).info(
            {"version": __version__, "backend": backend.name})
        self.requests = Counter("trimkit_requests", "HTTP requests answered, by route, status and error type.",
                                ["endpoint", "status", "error_type"], registry=r)
        self.stream_errors = Counter("trimkit_stream_errors", "Streams that ended with an error event after they "
                                     "began (their status was already 200).", ["model", "error_type"], registry=r)
        self.cancelled = Counter("trimkit_generations_cancelled", "Generations stopped because the client went "
                                 "away, while queued or generating.", ["model", "reason"], registry=r)
        self.ttft = Histogram("trimkit_time_to_first_token_seconds", "From the request's arrival to the model's "
                              "first token (queue, trimming and prefill included).", ["model"], buckets=SECONDS,
                              registry=r)
        self.queue_wait = Histogram("trimkit_queue_wait_seconds", "Time waiting for a generation slot.", ["model"],
                                    buckets=SECONDS, registry=r)
        self.prefill_tps = Histogram("trimkit_prefill_tokens_per_second", "Prompt tokens prefilled per second, as "
                                     "the backend measured it.", ["model"], buckets=TOKENS_PER_SECOND, registry=r)
        self.decode_tps = Histogram("trimkit_decode_tokens_per_second", "Output tokens per second after the first.",
                                    ["model"], buckets=TOKENS_PER_SECOND, registry=r)
        self.prompt_tokens = Histogram("trimkit_prompt_tokens", "Prompt tokens per request as received and as "
                                       "trimmed.", ["model", "when"], buckets=PROMPT_TOKENS, registry=r)
        self.stage_tokens = Counter("trimkit_stage_prompt_tokens", "Prompt tokens going into (before) and coming "
                                    "out of (after) each pipeline stage.", ["model", "stage", "when"], registry=r)
        self.trim_seconds = Histogram("trimkit_trim_seconds", "Time the pipeline took to trim a request.", ["model"],
                                      buckets=TRIM_SECONDS, registry=r)
        self.cached_tokens = Counter("trimkit_prompt_tokens_cached", "Prompt tokens read from the prefix cache "
                                     "instead of prefilled.", ["model"], registry=r)
        self.prefilled_tokens = Counter("trimkit_prompt_tokens_prefilled", "Prompt tokens prefilled.", ["model"],
                                        registry=r)
        self.output_tokens = Counter("trimkit_output_tokens", "Tokens generated.", ["model"], registry=r)
        self.tool_calls = Counter("trimkit_tool_calls", "tool_use blocks sent back to clients.", ["model"],
                                  registry=r)
        r.register(_ServerState(backend, gate, model))
        self._models: dict[str, _ModelMetrics] = {}

    def request(self, endpoint: str, status: int, error_type: str) -> None:
        self.requests.labels(endpoint, str(status), bounded_error_type(error_type)).inc()

    def stream_error(self, model: str, error_type: str) -> None:
        self.stream_errors.labels(model, bounded_error_type(error_type)).inc()

    def _for(self, model: str) -> "_ModelMetrics":
        children = self._models.get(model)
        if children is None:
            children = self._models[model] = _ModelMetrics(self, model)
        return children

    def observe(self, trace: "RequestTrace") -> None:
        """Count one completed Messages request."""
        view = trace.view
        m = self._for(view.served)
        if trace.disconnected:
            m.cancelled.inc()
        if view.report is not None:
            report = view.report
            m.received.observe(report.before.tokens)
            m.trimmed.observe(report.after.tokens)
            m.trim_seconds.observe(report.ms / 1000)
            for stage in report.stages:
                before, after = m.stage(stage.name)
                before.inc(stage.tokens_before)
                after.inc(stage.tokens_after)
        for histogram, value in ((m.queue_wait, view.queue_wait), (m.ttft, view.ttft),
                                 (m.prefill_tps, view.prefill_tps), (m.decode_tps, view.decode_tps)):
            if value is not None:
                histogram.observe(value)
        for counter, value in ((m.cached_tokens, view.cached_tokens), (m.prefilled_tokens, view.prefilled_tokens),
                               (m.output_tokens, view.output_tokens), (m.tool_calls, len(view.tool_calls))):
            if value:
                counter.inc(value)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ModelMetrics:
    """One model's children of the per-request metrics, looked up once (``labels()`` takes a lock each time)."""

    def __init__(self, metrics: ServerMetrics, model: str):
        self.metrics, self.model = metrics, model
        self.cancelled = metrics.cancelled.labels(model, "disconnect")
        self.received = metrics.prompt_tokens.labels(model, "received")
        self.trimmed = metrics.prompt_tokens.labels(model, "trimmed")
        self.trim_seconds = metrics.trim_seconds.labels(model)
        self.queue_wait = metrics.queue_wait.labels(model)
        self.ttft = metrics.ttft.labels(model)
        self.prefill_tps = metrics.prefill_tps.labels(model)
        self.decode_tps = metrics.decode_tps.labels(model)
        self.cached_tokens = metrics.cached_tokens.labels(model)
        self.prefilled_tokens = metrics.prefilled_tokens.labels(model)
        self.output_tokens = metrics.output_tokens.labels(model)
        self.tool_calls = metrics.tool_calls.labels(model)
        self._stages: dict[str, tuple[Counter, Counter]] = {}

    def stage(self, name: str) -> tuple[Counter, Counter]:
        pair = self._stages.get(name)
        if pair is None:
            tokens = self.metrics.stage_tokens
            pair = self._stages[name] = (tokens.labels(self.model, name, "before"), tokens.labels(self.model, name, "after"))
        return pair
