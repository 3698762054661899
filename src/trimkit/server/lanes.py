"""Each model as the server serves it: its backend, the pipeline that trims for it, its queue.

A server of several models gives each its own :class:`Lane`: requests routed to a
model are trimmed with that model's tier, window and tokenizer (the server's plugin
on a pipeline of the lane's own), wait in that model's queue for its generation
slot, and are read back in that model's tool-call dialect. One model's long answer
holds only its own slot. The one-model server has one lane, built as the server
always was.
"""

from __future__ import annotations

import msgspec

from ..backends.base import Backend
from ..backends.residency import Lease, Resident
from ..config.settings import ServerSettings
from ..pipeline import Pipeline
from ..profile import ModelProfile
from ..toolcalls.dialects import dialect_for
from .gate import GenerationGate, Ticket
from .plugin import ServerPlugin


class Lane:
    """One model's backend, pipeline, generation gate and dialect."""

    def __init__(self, resident: Resident, backend: Backend, settings: ServerSettings,
                 pipeline: Pipeline | None, *, managed: bool):
        """``managed``: one of several models, whose tier and window are its own (its
        ``[[models]]`` entry's, else the settings', else the model's, narrowed to the cap)."""
        self.resident = resident
        self.backend = backend
        if managed:
            settings = msgspec.structs.replace(settings, tier=resident.spec.tier or settings.tier,
                                               context_window=resident.window)
        self.plugin = ServerPlugin(settings, backend)
        self.pipeline = (
            pipeline.with_plugins(self.plugin, config=settings.stages) if pipeline
            else Pipeline(settings.stages, plugins=[self.plugin])
        )
        self.gate = GenerationGate(settings.max_queue, backend.max_concurrency)
        self.dialect = dialect_for(backend.chat_template, backend.vocab)

    def profile(self) -> ModelProfile:
        """The profile requests are trimmed with: the backend's, with the settings' overrides."""
        return self.pipeline.profile_for(self.backend.profile)


class Place:
    """A request's place: in its model's queue (a gate :class:`~.gate.Ticket`) and on the model
    (a :class:`~trimkit.backends.residency.Lease`, which keeps it in memory until released)."""

    def __init__(self, ticket: Ticket, lease: Lease):
        self.ticket = ticket
        self.lease = lease

    @property
    def urgent(self) -> bool:
        return self.ticket.urgent

    @property
    def yield_requested(self):
        return self.ticket.yield_requested

    async def acquire(self) -> None:
        """Wait for the model to be loaded, then for its slot."""
        await self.lease.ready()
        await self.ticket.acquire()

    def step_aside(self) -> None:
        self.ticket.step_aside()

    def release(self) -> None:
        self.ticket.release()
        self.lease.release()
