"""The server's stop, as the requests still open see it.

When the server is told to stop (SIGTERM, Ctrl-C), it stops accepting, lets open
requests run for a grace period, then sets :attr:`Shutdown.stopping`: every
request still waiting or streaming ends at once with an Anthropic
``overloaded_error`` (a 529, or an SSE ``error`` event), which clients retry
against the next server, instead of a connection cut mid-stream or a plain-text 500
after a logged traceback.
"""

from __future__ import annotations

import asyncio

MESSAGE = "trimkit is shutting down; retry in a moment"


class Shutdown:
    """Set once, when the grace period for open requests is over."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()

    def begin(self) -> None:
        self.stopping.set()

    @property
    def begun(self) -> bool:
        return self.stopping.is_set()
