"""A fixed number of generations at once (one on a local model), with a bounded queue in front."""

from __future__ import annotations

import asyncio

from .errors import ApiError


class Ticket:
    """A place in the queue, taken at once (or refused with 529) and released exactly once."""

    def __init__(self, gate: "GenerationGate"):
        self._gate = gate
        self._holding = False
        self._released = False

    async def acquire(self) -> None:
        await self._gate._slots.acquire()
        self._holding = True

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._gate._tickets -= 1
        if self._holding:
            self._gate._slots.release()


class GenerationGate:
    def __init__(self, max_queue: int, slots: int = 1):
        self.max_queue = max(0, max_queue)
        self.slots = max(1, slots)
        self._slots = asyncio.Semaphore(self.slots)
        self._tickets = 0

    @property
    def busy(self) -> int:
        return self._tickets

    def reserve(self) -> Ticket:
        """Take a place: the running generations plus ``max_queue`` waiting ones."""
        if self._tickets >= self.slots + self.max_queue:
            raise ApiError(529, "Overloaded: too many requests are waiting for the model; retry shortly")
        self._tickets += 1
        return Ticket(self)
