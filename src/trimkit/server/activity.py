"""The live view's memory: the newest requests in a ring, and the pages listening for news.

Bounded everywhere: ``keep`` requests (numbers and names only), the newest
``TEXTS_KEPT`` of them with their prompt diff and response when captures are on,
and each listener's queue. A listener that falls behind is not waited for: its
queue is emptied and it is told to reload the whole list (``reset``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from typing import TYPE_CHECKING

from ..render import prompt_text
from ..report_html import RequestTexts, RequestView, prompt_texts

if TYPE_CHECKING:
    from ..stage import TrimResult

TEXTS_KEPT = 20
LISTENER_QUEUE = 256


class Listener:
    """One page's stream of (event, data) pairs."""

    def __init__(self):
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(LISTENER_QUEUE)

    def tell(self, event: str, data: str) -> None:
        try:
            self.queue.put_nowait((event, data))
        except asyncio.QueueFull:  # behind: drop what it missed, and have it reload the list
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(("reset", ""))

    async def next(self, timeout: float) -> tuple[str, str] | None:
        """The next event, or None after ``timeout`` seconds of quiet."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None


class RecentRequests:
    def __init__(self, keep: int):
        self.keep = max(1, keep)
        self._views: deque[RequestView] = deque()
        self._by_id: dict[int, RequestView] = {}
        self._trims: OrderedDict[int, "TrimResult | None"] = OrderedDict()
        self.listeners: set[Listener] = set()
        self.seen = 0

    def add(self, view: RequestView) -> None:
        self.seen += 1
        self._views.append(view)
        self._by_id[view.id] = view
        while len(self._views) > self.keep:
            old = self._views.popleft()
            self._by_id.pop(old.id, None)
            self._trims.pop(old.id, None)

    def newest(self) -> list[RequestView]:
        return list(reversed(self._views))

    def get(self, request_id: int) -> RequestView | None:
        return self._by_id.get(request_id)

    def keep_texts(self, view: RequestView, trimmed: "TrimResult | None") -> None:
        """Hold ``view``'s texts (and the trim its diff is made from); the oldest beyond ``TEXTS_KEPT`` let go."""
        if view.id not in self._by_id:
            return
        if view.texts is None:
            view.texts = RequestTexts()
        self._trims[view.id] = trimmed
        while len(self._trims) > TEXTS_KEPT:
            old_id, _ = self._trims.popitem(last=False)
            if (old := self._by_id.get(old_id)) is not None:
                old.texts = None

    async def texts(self, view: RequestView) -> RequestTexts | None:
        """``view``'s texts, its prompt diff made on first asking (off the event loop: a diff of a
        large prompt takes a while)."""
        texts = view.texts
        trimmed = self._trims.get(view.id)
        if texts is not None and trimmed is not None:
            made = await asyncio.to_thread(prompt_texts, prompt_text(trimmed.original), prompt_text(trimmed.request))
            texts.diff, texts.prompt = made.diff, made.prompt
            self._trims[view.id] = None  # the diff is made: the requests themselves can go
        return texts

    # ---------------------------------------------------------------- listeners

    def tell_all(self, event: str, data: str) -> None:
        for listener in list(self.listeners):
            listener.tell(event, data)

    def listener(self) -> Listener:
        listener = Listener()
        self.listeners.add(listener)
        return listener

    def forget(self, listener: Listener) -> None:
        self.listeners.discard(listener)
