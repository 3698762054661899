"""A fixed number of generations at once (one on a local model), with a bounded queue in front.

The queue serves the user's turn first. A ticket is ``urgent`` (the agent loop: the
user's turn, a tool round trip, a compaction) or not (a side request: a session
title, a suggested next prompt). Slots go to urgent tickets before the others, each
kind in arrival order. And since a client sends its side request a moment before the
user's turn, an urgent ticket that finds every slot held by side requests asks one of
them to step aside (:attr:`Ticket.yield_requested`): the side request stops its
generation, gives the slot back and queues again behind the user's turn. It has
shown its client nothing yet (side requests are answered whole), so starting it over
later costs only its own small prefill.
"""

from __future__ import annotations

import asyncio
import itertools

from .errors import ApiError


class Ticket:
    """A place in the queue, taken at once (or refused with 529) and released exactly once."""

    def __init__(self, gate: "GenerationGate", urgent: bool, order: int):
        self._gate = gate
        self.urgent = urgent
        self._order = order
        self._holding = False
        self._released = False
        self._granted: asyncio.Future[None] | None = None
        self.yield_requested = asyncio.Event()
        """Set when an urgent ticket is waiting for the slot this side request holds."""

    @property
    def holding(self) -> bool:
        return self._holding

    def _rank(self) -> tuple[int, int]:
        return (0 if self.urgent else 1, self._order)

    async def acquire(self) -> None:
        """Wait for a slot (urgent tickets first); a side request may be asked to give it back."""
        if self._holding:
            return
        self.yield_requested.clear()
        self._granted = asyncio.get_running_loop().create_future()
        self._gate._waiting.append(self)
        self._gate._dispatch()
        try:
            await self._granted
        except asyncio.CancelledError:
            if self._granted.done() and not self._granted.cancelled():
                self._gate._give_back(self)  # granted just as the waiter went away
            elif self in self._gate._waiting:
                self._gate._waiting.remove(self)
            raise

    def step_aside(self) -> None:
        """Give the slot back but keep the place in the queue (to acquire again later)."""
        if self._holding:
            self._gate._give_back(self)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._gate._tickets -= 1
        if self in self._gate._waiting:
            self._gate._waiting.remove(self)
        if self._holding:
            self._gate._give_back(self)


class GenerationGate:
    def __init__(self, max_queue: int, slots: int = 1):
        self.max_queue = max(0, max_queue)
        self.slots = max(1, slots)
        self._tickets = 0
        self._holders: list[Ticket] = []
        self._waiting: list[Ticket] = []
        self._arrivals = itertools.count()

    @property
    def busy(self) -> int:
        return self._tickets

    @property
    def running(self) -> int:
        """Tickets holding a slot now."""
        return len(self._holders)

    @property
    def waiting(self) -> int:
        """Tickets with a place in the queue and no slot yet."""
        return self._tickets - len(self._holders)

    def reserve(self, *, urgent: bool = True) -> Ticket:
        """Take a place: the running generations plus ``max_queue`` waiting ones."""
        if self._tickets >= self.slots + self.max_queue:
            raise ApiError(529, "Overloaded: too many requests are waiting for the model; retry shortly")
        self._tickets += 1
        return Ticket(self, urgent, next(self._arrivals))

    def _give_back(self, ticket: Ticket) -> None:
        ticket._holding = False
        if ticket in self._holders:
            self._holders.remove(ticket)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free slots to the best-ranked waiters; ask a side request to step aside for an urgent one."""
        self._waiting.sort(key=Ticket._rank)
        while self._waiting and len(self._holders) < self.slots:
            ticket = self._waiting.pop(0)
            if ticket._granted is None or ticket._granted.done():
                continue
            ticket._holding = True
            self._holders.append(ticket)
            ticket._granted.set_result(None)
        if self._waiting and self._waiting[0].urgent:
            sides = [t for t in self._holders if not t.urgent and not t.yield_requested.is_set()]
            if sides and len(self._holders) >= self.slots:
                max(sides, key=Ticket._rank).yield_requested.set()
