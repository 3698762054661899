"""Which models are in memory: loaded on demand, the least recently used unloaded to stay under a cap.

A :class:`ModelSet` holds one :class:`Resident` per offered model (:mod:`.catalog`).
A request takes a :class:`Lease` on its model when it takes its place in the queue,
and gives it back when its response is done. ``await lease.ready()`` returns once
the model is loaded and the lease admitted; an admitted lease keeps the model in
memory, so a model is never unloaded under a running or queued generation.

Memory is counted in reservations, each model's::

    weights + KV cache of its context window + its prefix cache's share + prefill working memory

The weights are the files' size until the model has loaded, then what loading it
measured: the parameters' bytes, or the growth of MLX's active memory around the
load when nothing else was running then. The context window is the configured one,
else the model's own, narrowed to what fits under the cap beside its weights. The
prefix cache's share is ``prompt_cache_bytes``, at most one window's KV cache.

Loading a model whose reservation does not fit beside the loaded ones first unloads
the least recently used idle model that is not pinned, and again, until it fits.
When the only models that could make room are busy, the least recently used of them
drains: it takes no new requests, its queued ones finish, and then it is unloaded
(requests for it wait, in turn, to load it again). Loads happen one at a time, in
the order they were asked for, each in a task of its own, so a client that goes
away does not stop a load halfway. A model whose reservation exceeds the cap alone,
or beside the pinned models, is refused with :class:`ModelTooBig`: a 400 that says
so and that no retry fixes, never an out-of-memory kill. ``model_idle_ttl``
unloads a model nobody used for that long; pinned models load at start and stay.

MLX's counters (``mlx.core.get_active_memory`` and friends, for the whole process)
are read around each load and unload, and before a load as a second opinion: when
MLX holds more than the reservations say, more idle models are unloaded.

The one-model server (:meth:`ModelSet.single`) has one resident, pinned, whose
backend loads by itself at start; nothing is ever unloaded and no cap applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..profile import DEFAULT_CONTEXT_WINDOW
from .base import Backend, BackendError, BackendStatus, Readiness
from .catalog import Catalog, ModelSpec
from .memory import gb

if TYPE_CHECKING:
    from ..config.settings import ServerSettings

log = logging.getLogger("trimkit.models")

WINDOW_STEP = 1024  # a narrowed context window is a multiple of this
MIN_WINDOW = 4096  # narrower than this, a model is too big instead
PREFILL_CHUNK = 2048  # tokens prefilled at once (the MLX backend's prefill_step_size)
LOAD_POLL_SECONDS = 0.02
EVENTS_KEPT = 1000


class ModelState(enum.Enum):
    """What ``/v1/models`` says of a model."""

    NOT_LOADED = "not_loaded"
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADING = "unloading"
    FAILED = "failed"


class ModelTooBig(BackendError):
    """A model that cannot fit under the memory cap: a 400 that says why, which no retry fixes."""

    def __init__(self, message: str):
        super().__init__(message, status=400, error_type="invalid_request_error", lasting=True)


@dataclass
class ModelStats:
    """Per-model counts since the server started (``/v1/models`` and ``/health`` show them)."""

    requests: int = 0
    loads: int = 0
    unloads: int = 0
    load_seconds: float | None = None
    unload_seconds: float | None = None
    load_memory: int | None = None
    """How much MLX's active memory grew while it last loaded."""
    freed_memory: int | None = None
    """How much it shrank when it was last unloaded."""


@dataclass(frozen=True)
class Plan:
    """How a model will be served: its context window and its share of memory."""

    window: int
    cache_bytes: int
    working_bytes: int
    narrowed_from: int | None = None
    too_big: str | None = None

    @staticmethod
    def make(spec: ModelSpec, *, window: int | None, prompt_cache_bytes: int, cap: int | None,
             scores: bool) -> "Plan":
        """The window (configured, else the model's own narrowed to fit ``cap``) and the memory it takes."""
        footprint = spec.footprint
        configured = spec.context_window or window
        if footprint is None:
            return Plan(configured or DEFAULT_CONTEXT_WINDOW, prompt_cache_bytes, 0)

        def reservation(w: int) -> int:
            kv = footprint.kv_bytes(w)
            return (footprint.weights_bytes + kv + min(prompt_cache_bytes, kv)
                    + footprint.prefill_bytes(w, PREFILL_CHUNK, scores=scores))

        chosen, narrowed = configured or footprint.max_window, None
        if cap is not None and configured is None and reservation(chosen) > cap:
            fitting = [w for w in range(chosen // WINDOW_STEP * WINDOW_STEP, MIN_WINDOW - 1, -WINDOW_STEP)
                       if reservation(w) <= cap]
            if fitting:
                chosen, narrowed = fitting[0], chosen
        kv = footprint.kv_bytes(chosen)
        plan = Plan(chosen, min(prompt_cache_bytes, kv), footprint.prefill_bytes(chosen, PREFILL_CHUNK, scores=scores),
                    narrowed)
        need = footprint.weights_bytes + kv + plan.cache_bytes + plan.working_bytes
        if cap is not None and need > cap:
            fix = "raise memory_cap" + ("" if footprint.weights_bytes > cap else ", lower its context_window")
            plan = Plan(chosen, plan.cache_bytes, plan.working_bytes, narrowed, too_big=(
                f"model {spec.alias} needs about {gb(need)} (weights {gb(footprint.weights_bytes)}, "
                f"{chosen:,}-token context {gb(need - footprint.weights_bytes)}) and the memory cap is {gb(cap)}: "
                f"{fix}, or choose a smaller model"))
        return plan


class Resident:
    """One offered model: its backend (built on first use), whether it is in memory, who is using it."""

    def __init__(self, spec: ModelSpec, plan: Plan, backend: Backend | None = None):
        self.spec = spec
        self.plan = plan
        self.backend = backend
        self.users = 0
        """Admitted leases: requests queued for its slot or generating."""
        self.waiting: list[Lease] = []
        """Leases waiting for it to load: admitted by the load itself, so that another load
        cannot take it away before they are counted."""
        self.draining = False
        """Chosen to make room: admits no one until it has been unloaded."""
        self.last_used = 0.0
        self.weights_bytes: int | None = None
        """Measured when it loaded; until then the files' size stands in."""
        self.failure: str | None = None
        self.stats = ModelStats()
        self.phase: ModelState | None = None  # LOADING or UNLOADING while the set does one

    @property
    def name(self) -> str:
        return self.spec.alias

    @property
    def window(self) -> int:
        return self.plan.window

    @property
    def state(self) -> ModelState:
        if self.failure is not None or self.plan.too_big is not None:
            return ModelState.FAILED
        if self.phase is not None:
            return self.phase
        if self.backend is None:
            return ModelState.NOT_LOADED
        return {
            Readiness.READY: ModelState.LOADED,
            Readiness.LOADING: ModelState.LOADING,
            Readiness.FAILED: ModelState.FAILED,
            Readiness.UNLOADED: ModelState.NOT_LOADED,
        }[self.backend.status().state]

    @property
    def reason(self) -> str | None:
        """Why it cannot serve, when it cannot."""
        if self.plan.too_big is not None:
            return self.plan.too_big
        if self.failure is not None:
            return self.failure
        if self.backend is not None and (status := self.backend.status()).failed:
            return status.detail
        return None

    def reservation(self) -> int:
        """Bytes counted against the cap while it is loaded."""
        weights = self.weights_bytes if self.weights_bytes is not None else self.spec.weights_bytes
        kv = self.spec.footprint.kv_bytes(self.window) if self.spec.footprint else 0
        return weights + kv + self.plan.cache_bytes + self.plan.working_bytes


class Lease:
    """A request's hold on its model, from its place in the queue to the end of its response."""

    def __init__(self, models: "ModelSet", resident: Resident):
        self.models = models
        self.resident = resident
        self.admitted = False
        self.released = False

    async def ready(self) -> None:
        """Wait until the model is loaded and this request counted among its users.

        Raises :class:`ModelTooBig` or a lasting :class:`BackendError` when it cannot be.
        """
        if not self.admitted:
            await self.models._admit(self)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if self.admitted:
            self.resident.users -= 1
            self.resident.last_used = self.models.clock()
            self.models._changed()


class ModelSet:
    """The offered models and which of them are in memory (see the module's description)."""

    def __init__(
        self,
        catalog: Catalog,
        build: Callable[[Resident], Backend] | None = None,
        *,
        cap: int | None = None,
        idle_ttl: float | None = None,
        context_window: int | None = None,
        prompt_cache_bytes: int = 4 << 30,
        scores: bool = True,
        probe: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """``build`` makes a resident's backend, weights not loaded (the tokenizer is);
        ``probe`` reads MLX's active memory; ``scores``: attention scores are
        materialized when prefilling (MLX on the CPU)."""
        self.catalog = catalog
        self.build = build
        self.cap = cap if catalog.managed else None
        self.idle_ttl = idle_ttl if catalog.managed else None
        self.probe = probe
        self.clock = clock
        self.residents = [
            Resident(spec, Plan.make(spec, window=context_window, prompt_cache_bytes=prompt_cache_bytes,
                                     cap=self.cap, scores=scores))
            for spec in catalog.specs
        ]
        self._by_alias = {r.name: r for r in self.residents}
        self.events: deque[tuple[str, str]] = deque(maxlen=EVENTS_KEPT)
        """``("load" | "unload", alias)`` in the order they happened (tests and benchmarks read them)."""
        self.baseline = probe() if probe is not None else 0
        self._build_lock = threading.Lock()
        self._load_lock: asyncio.Lock | None = None
        self._loads: dict[str, asyncio.Future] = {}
        self._change = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._preloading: set[str] = set()
        if catalog.managed:
            pinned = [r for r in self.residents if r.spec.pinned]
            self._preload_order = pinned + [r for r in [self.default] if not r.spec.pinned]
            self._preloading = {r.name for r in self._preload_order}
            for r in self.residents:
                if r.plan.narrowed_from:
                    log.warning("trimkit: %s serves a %s-token context window: its own %s tokens do not fit the "
                                "%s memory cap beside its weights (set its context_window to choose)",
                                r.name, f"{r.window:,}", f"{r.plan.narrowed_from:,}", gb(self.cap or 0))
                if r.plan.too_big:
                    log.error("trimkit: %s", r.plan.too_big)

    @classmethod
    def single(cls, backend: Backend, settings: "ServerSettings") -> "ModelSet":
        """The one-model server around ``backend``, which loads by itself."""
        catalog = Catalog.single(backend.profile.name, settings)
        models = cls(catalog)
        resident = models.residents[0]
        resident.backend = backend
        resident.plan = Plan(settings.context_window or backend.profile.context_window, 0, 0)
        return models

    # ------------------------------------------------------------------ looking up

    @property
    def managed(self) -> bool:
        return self.catalog.managed

    @property
    def default(self) -> Resident:
        """The model ``model_patterns`` ids go to (the one ``opus`` maps to)."""
        return self._by_alias[self.catalog.default.alias]

    def route(self, requested: str) -> Resident | None:
        spec = self.catalog.route(requested)
        return self._by_alias[spec.alias] if spec is not None else None

    def family(self, family: str) -> Resident | None:
        spec = self.catalog.family(family)
        return self._by_alias[spec.alias] if spec is not None else None

    def backend(self, resident: Resident) -> Backend:
        """The resident's backend, built on first use (its tokenizer loads; its weights do not)."""
        if resident.backend is None:
            with self._build_lock:
                if resident.backend is None:
                    assert self.build is not None
                    resident.backend = self.build(resident)
        return resident.backend

    # ------------------------------------------------------------------ memory

    def committed(self, *, besides: Resident | None = None) -> int:
        """Reservations of the models in memory, or on their way in or out."""
        held = (ModelState.LOADED, ModelState.LOADING, ModelState.UNLOADING)
        return sum(r.reservation() for r in self.residents if r is not besides and r.state in held)

    def measured(self) -> int | None:
        """What MLX holds now beyond what it held when the set was made (None without a probe)."""
        return self.probe() - self.baseline if self.probe is not None else None

    # ------------------------------------------------------------------ leases

    def lease(self, resident: Resident) -> Lease:
        """A place for one request on ``resident``; admitted at once when it is loaded and not draining."""
        lease = Lease(self, resident)
        resident.stats.requests += 1
        if not self.managed or (resident.state is ModelState.LOADED and not resident.draining):
            self._admit_now(lease)
        return lease

    def _admit_now(self, lease: Lease) -> None:
        lease.admitted = True
        lease.resident.users += 1
        lease.resident.last_used = self.clock()

    async def _admit(self, lease: Lease) -> None:
        resident = lease.resident
        resident.waiting.append(lease)
        try:
            while not lease.admitted:
                state = resident.state
                if resident.plan.too_big is not None:
                    raise ModelTooBig(resident.plan.too_big)
                if state is ModelState.FAILED:
                    raise BackendError(resident.reason or f"model {resident.name} cannot be served", lasting=True)
                if state is ModelState.LOADED and not resident.draining:
                    self._admit_now(lease)
                elif state is ModelState.NOT_LOADED:
                    await asyncio.shield(self._bring_in(resident))
                else:
                    await self._wait_change()
        finally:
            if lease in resident.waiting:
                resident.waiting.remove(lease)

    def _bring_in(self, resident: Resident) -> asyncio.Future:
        """The load of ``resident``, started once however many requests wait for it."""
        future = self._loads.get(resident.name)
        if future is None or future.done():
            future = self._loads[resident.name] = asyncio.ensure_future(self._load_in_turn(resident))
            future.add_done_callback(_quiet)  # its waiters see the exception; none left is no error
        return future

    def _changed(self) -> None:
        """Wake everyone waiting for a model to change state or become idle."""
        self._change.set()
        self._change = asyncio.Event()

    async def _wait_change(self) -> None:
        await self._change.wait()

    # ------------------------------------------------------------------ loading and unloading

    def _lock(self) -> asyncio.Lock:
        if self._load_lock is None:
            self._load_lock = asyncio.Lock()
        return self._load_lock

    async def _load_in_turn(self, resident: Resident) -> None:
        if resident.plan.too_big is not None:
            raise ModelTooBig(resident.plan.too_big)
        async with self._lock():
            if resident.state is not ModelState.NOT_LOADED:
                return
            await self._make_room(resident)
            await self._load(resident)

    async def _make_room(self, resident: Resident) -> None:
        if self.cap is None:
            return
        need = resident.reservation()
        pinned = [r for r in self.residents if r is not resident and r.spec.pinned
                  and r.state in (ModelState.LOADED, ModelState.LOADING)]
        if pinned and sum(r.reservation() for r in pinned) + need > self.cap:
            names = ", ".join(r.name for r in pinned)
            raise ModelTooBig(f"model {resident.name} needs about {gb(need)} and does not fit the {gb(self.cap)} "
                              f"memory cap beside the pinned models ({names}): raise memory_cap or pin fewer models")
        while True:
            loaded = [r for r in self.residents if r is not resident and r.state is ModelState.LOADED]
            victims = sorted((r for r in loaded if not r.spec.pinned), key=lambda r: r.last_used)
            idle = [r for r in victims if r.users == 0]
            if self.committed(besides=resident) + need <= self.cap:
                measured = self.measured()
                if measured is None or measured + need <= self.cap or not idle:
                    return
                log.info("trimkit: MLX holds %s, more than the models' reservations: unloading %s too",
                         gb(measured), idle[0].name)
            if idle:
                await self._unload(idle[0], f"to make room for {resident.name}")
                continue
            if not victims:
                raise ModelTooBig(f"model {resident.name} needs about {gb(need)} and does not fit the "
                                  f"{gb(self.cap)} memory cap beside the models in memory: raise memory_cap")
            if not victims[0].draining:
                log.info("trimkit: %s will be unloaded for %s once its %d requests are done",
                         victims[0].name, resident.name, victims[0].users)
                victims[0].draining = True
            await self._wait_change()

    async def _load(self, resident: Resident) -> None:
        resident.phase = ModelState.LOADING
        self._changed()
        quiet = all(r.users == 0 for r in self.residents if r is not resident)
        started = self.clock()
        try:
            backend = await asyncio.to_thread(self.backend, resident)
            before = self.measured()
            await asyncio.to_thread(_load_blocking, backend)
        finally:
            resident.phase = None
            self._preloading.discard(resident.name)
        status = backend.status()
        if status.failed:
            resident.failure = status.detail
            log.error("trimkit: %s", status.detail)
        else:
            after = self.measured()
            grew = after - before if after is not None and before is not None else None
            weights = backend.memory_bytes()
            resident.weights_bytes = max(weights, grew or 0) if quiet else (weights or grew)
            resident.stats.loads += 1
            resident.stats.load_seconds = self.clock() - started
            resident.stats.load_memory = grew
            for lease in resident.waiting:
                self._admit_now(lease)
            resident.waiting.clear()
            resident.last_used = self.clock()
            self.events.append(("load", resident.name))
            log.info("trimkit: loaded %s in %.1f s (%s)", resident.name, resident.stats.load_seconds,
                     gb(resident.weights_bytes or 0))
        self._changed()

    async def _unload(self, resident: Resident, why: str) -> None:
        backend = resident.backend
        if backend is None:
            return
        resident.phase = ModelState.UNLOADING
        self._changed()
        before = self.measured()
        started = self.clock()
        try:
            await asyncio.to_thread(backend.unload)
        finally:
            resident.phase = None
            resident.draining = False
        after = self.measured()
        resident.stats.unloads += 1
        resident.stats.unload_seconds = self.clock() - started
        resident.stats.freed_memory = before - after if before is not None and after is not None else None
        self.events.append(("unload", resident.name))
        log.info("trimkit: unloaded %s %s", resident.name, why)
        self._changed()

    async def reap(self) -> list[str]:
        """Unload the models nobody used for ``idle_ttl`` seconds; their names."""
        if not self.idle_ttl:
            return []
        unloaded = []
        async with self._lock():
            for resident in self.residents:
                if (resident.state is ModelState.LOADED and not resident.spec.pinned and resident.users == 0
                        and self.clock() - resident.last_used >= self.idle_ttl):
                    await self._unload(resident, f"after {self.idle_ttl:g} s unused")
                    unloaded.append(resident.name)
        return unloaded

    async def preload(self) -> None:
        """Load the pinned models and the default one (the server's first act)."""
        for resident in list(self._preload_order):
            try:
                await asyncio.shield(self._bring_in(resident))
            except ModelTooBig as exc:
                log.error("trimkit: %s", exc)
                if resident.spec.pinned:
                    resident.failure = str(exc)
            finally:
                self._preloading.discard(resident.name)

    async def _reap_forever(self) -> None:
        assert self.idle_ttl
        while True:
            await asyncio.sleep(min(self.idle_ttl / 2, 10.0))
            await self.reap()

    def start(self) -> None:
        """Begin preloading, and the idle timer; on the server's event loop, when it starts."""
        if not self.managed:
            return
        self._tasks.append(asyncio.ensure_future(self.preload()))
        if self.idle_ttl:
            self._tasks.append(asyncio.ensure_future(self._reap_forever()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def close(self) -> None:
        """Free every model (when the server shuts down)."""
        for resident in self.residents:
            if resident.backend is not None:
                resident.backend.close()

    # ------------------------------------------------------------------ what it says

    def status(self) -> BackendStatus:
        """The server's readiness: the default model's (one that loads on demand counts as ready)."""
        resident = self.default
        if not self.managed:
            return self.backend(resident).status()
        state = resident.state
        if state is ModelState.FAILED:
            return BackendStatus(Readiness.FAILED, detail=resident.reason or "")
        if state is ModelState.LOADING or resident.name in self._preloading:
            return BackendStatus(Readiness.LOADING, detail=f"loading {resident.name}")
        return BackendStatus(Readiness.READY, detail=f"{len(self.residents)} models, loaded: "
                                                     f"{', '.join(self.loaded()) or 'none'}")

    def loaded(self) -> list[str]:
        """The aliases of the models in memory now."""
        return [r.name for r in self.residents if r.state is ModelState.LOADED]


def _load_blocking(backend: Backend) -> None:
    """Start the backend's load and wait until it has finished, either way."""
    backend.load()
    while backend.status().state is Readiness.LOADING:
        time.sleep(LOAD_POLL_SECONDS)


def _quiet(future: asyncio.Future) -> None:
    with contextlib.suppress(asyncio.CancelledError, Exception):
        future.exception()
