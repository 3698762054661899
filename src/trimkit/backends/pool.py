"""Several engines serving the same model behind one trimkit (``upstreams`` in the settings).

Each engine is an ordinary upstream backend (:mod:`.openai` or
:mod:`.anthropic_upstream`); the pool sends each generation to the engine in
service with the fewest generations in flight (least outstanding requests: a
slow or busy engine gets less, and a batch-hungry one is not starved), taking
turns on ties.

An engine that cannot be reached, or whose stream breaks, is taken out of service:
its backend marks itself not ready and probes its model listing again every
couple of seconds while requests come, and the pool uses it again once a probe
succeeds. A failure before anything was streamed (connection refused, 503/529)
moves the request to the next engine, so the client never sees it; a stream that
breaks halfway cannot be replayed and ends with the error, as it would with one
engine.

The window and tier are the most cautious of the engines in service, so a
request fits whichever engine gets it.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace
from typing import AsyncIterator

from ..profile import ModelProfile
from ..wire import UpstreamHealth
from .base import Backend, BackendError, BackendStatus, ChatMessages, GenerationEvent, GenerationParams, Readiness
from .upstream import UpstreamBackend

log = logging.getLogger("trimkit.upstream")
RETRYABLE = (529,)  # unreachable, or the engine said it is busy or starting: nothing has been sent


class UpstreamPool(Backend):
    """A backend over several upstream backends of one kind."""

    def __init__(self, members: list[UpstreamBackend]):
        if not members:
            raise ValueError("an upstream pool needs at least one engine")
        self.members = members
        self.name = members[0].name
        self.max_concurrency = sum(member.max_concurrency for member in members)
        self._turns = itertools.count()

    # ------------------------------------------------------------------ the shared view

    def in_service(self) -> list[UpstreamBackend]:
        return [member for member in self.members if member.status().ready]

    @property
    def profile(self) -> ModelProfile:
        serving = self.in_service() or self.members
        first = serving[0].profile
        window = min(member.profile.context_window for member in serving)
        return first if window == first.context_window else replace(first, context_window=window)

    def status(self) -> BackendStatus:
        statuses = [member.status() for member in self.members]
        ready = [s for s in statuses if s.ready]
        engines = [
            UpstreamHealth(upstream=member.shown, ready=s.ready, outstanding=member.outstanding, detail=s.detail)
            for member, s in zip(self.members, statuses)
        ]
        detail = f"{len(ready)} of {len(self.members)} upstreams in service"
        if not ready:
            detail += ": " + "; ".join(s.detail for s in statuses)
        if ready:
            state = Readiness.READY
        else:
            state = Readiness.FAILED if all(s.failed for s in statuses) else Readiness.LOADING
        answers = {s.answer for s in statuses}
        return BackendStatus(state, detail=detail, extra={"upstreams": engines},
                             answer=answers.pop() if len(answers) == 1 else None)

    def count_tokens(self, messages: ChatMessages) -> int:
        return (self.in_service() or self.members)[0].count_tokens(messages)

    # ------------------------------------------------------------------ generating

    def _choose(self, tried: set[int]) -> UpstreamBackend | None:
        candidates = [m for m in self.in_service() if id(m) not in tried]
        if not candidates:
            return None
        fewest = min(member.outstanding for member in candidates)
        tied = [member for member in candidates if member.outstanding == fewest]
        return tied[next(self._turns) % len(tied)]

    async def generate(self, messages: ChatMessages, params: GenerationParams) -> AsyncIterator[GenerationEvent]:
        tried: set[int] = set()
        last_error: BackendError | None = None
        while (member := self._choose(tried)) is not None:
            tried.add(id(member))
            started = False
            try:
                async for event in member.generate(messages, params):
                    started = True
                    yield event
                return
            except BackendError as exc:
                if exc.status >= 500 or exc.status in RETRYABLE:
                    member.take_out_of_service(str(exc))
                if started or exc.status not in RETRYABLE:
                    raise
                log.warning("upstream %s failed before answering (%s); trying another", member.shown, exc)
                last_error = exc
        if last_error is not None:
            raise last_error
        raise BackendError(f"no upstream is in service: {self.status().detail}", status=529,
                           error_type="overloaded_error")

    def close(self) -> None:
        for member in self.members:
            member.close()
