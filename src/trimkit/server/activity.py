"""The live view's memory: the newest requests in a ring, and the pages listening for news.

Bounded everywhere: ``keep`` requests (numbers and names only), the newest
``TEXTS_KEPT`` of them with their prompt diff and response when captures are on,
and what each listener is owed (the ids of changed requests, or "reload the list").
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
COALESCE_SECONDS = 0.25


class Listener:
    """One page's news: which requests changed since it was last sent rows, or that it must reload them all.

    Telling it costs a set insertion, whatever the page does; the page's stream
    renders the changed rows itself, at most every ``COALESCE_SECONDS``, so a busy
    server renders each row a few times a second at most, never once per event.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.changed: set[int] = set()
        self.reset = False
        self.news = asyncio.Event()

    def tell(self, request_id: int) -> None:
        if len(self.changed) >= self.limit:  # behind by more than the list holds: send the list again
            self.changed.clear()
            self.reset = True
        else:
            self.changed.add(request_id)
        self.news.set()

    async def wait(self, timeout: float) -> bool:
        """Whether there is news within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self.news.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def take(self) -> tuple[list[int], bool]:
        """The changed requests, newest first, and whether to send the whole list instead."""
        changed, reset = sorted(self.changed, reverse=True), self.reset
        self.changed, self.reset = set(), False
        self.news.clear()
        return changed, reset


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

    def changed(self, view: RequestView) -> None:
        for listener in self.listeners:
            listener.tell(view.id)

    def listener(self) -> Listener:
        listener = Listener(self.keep)
        self.listeners.add(listener)
        return listener

    def forget(self, listener: Listener) -> None:
        self.listeners.discard(listener)
