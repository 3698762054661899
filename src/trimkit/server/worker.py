"""The thread that prepares requests, so the event loop never waits on one.

Decoding a body, trimming it, rendering the chat and counting its tokens take CPU
time in proportion to the body: seconds for tens of megabytes. Run on the event
loop, that time would stall every other connection (``/health`` included). One
thread does it instead, one request at a time, so the stages and tokenizers never
run concurrently with themselves; generation keeps its own thread (the MLX
backend's) or runs on the loop (upstream engines, which only wait).
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")


class PreparationThread:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trimkit-prepare")

    async def run(self, work: Callable[..., T], *args, **kwargs) -> T:
        """``work(*args, **kwargs)`` on the thread; its exceptions are raised here."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(work, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
