"""Sending a stream's frames apart from making them.

A stream's frames are made by a task of their own (generation, the response
reader, the SSE framing) and queued; the response sends them as the client reads.
So the generation slot is freed when generation ends, however slowly the client
reads, or if it never does: a client that stops reading holds its connection (until
the write timeout of :mod:`.listen` closes it) and its queued frames (no more than
its own ``max_tokens`` of output), never the model.

The sending side also pings: whenever ``ping_interval`` passes without a frame,
for whatever reason (a long prefill, a queue, the reader holding back text that may
be a tool call), an SSE ``ping`` goes out, so clients and proxies never see a silent
connection. And when the server shuts down, the stream ends with an
``overloaded_error`` event.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from . import sse
from .shutdown import MESSAGE, Shutdown

_END = object()


async def delivered(first: bytes, frames: AsyncIterator[bytes], *, ping_interval: float,
                    shutdown: Shutdown) -> AsyncIterator[bytes]:
    """``first`` (which opened the stream), then ``frames`` made by a task of their own, with pings in silences."""
    queue: asyncio.Queue = asyncio.Queue()

    async def make() -> None:
        try:
            async for frame in frames:
                queue.put_nowait(frame)
        finally:
            queue.put_nowait(_END)

    maker = asyncio.ensure_future(make())
    stopping = asyncio.ensure_future(shutdown.stopping.wait())
    try:
        yield first
        while True:
            getting = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getting, stopping}, timeout=ping_interval,
                                         return_when=asyncio.FIRST_COMPLETED)
            if getting not in done:
                getting.cancel()
                await asyncio.gather(getting, return_exceptions=True)
                if stopping in done:
                    yield sse.error("overloaded_error", MESSAGE)
                    return
                yield sse.PING
                continue
            frame = getting.result()
            if frame is _END:
                break
            yield frame
        await maker  # raises what the maker raised, if anything
    finally:
        for task in (maker, stopping):
            if not task.done():
                task.cancel()
        await asyncio.gather(maker, stopping, return_exceptions=True)
