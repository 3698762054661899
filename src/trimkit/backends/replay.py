"""A backend that serves scripted model turns, for deterministic tests and bug reports.

The script is a JSON array of strings, each the raw text of one model turn
(tool-call markup included). Turns are served in order, each streamed in chunks
of ``chunk_chars`` characters; one chunk counts as one output token, so
``max_tokens`` cuts a turn the way it would cut a model.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import AsyncIterator

from ..errors import ConfigError
from ..profile import ModelProfile
from .base import (Backend, BackendError, BackendStatus, ChatMessages, Finished, GenerationEvent,
                   GenerationParams, Readiness, TextDelta)


def load_script(path: str | Path) -> list[str]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read replay script {path}: {exc}", key="script") from None
    if not isinstance(data, list) or not all(isinstance(turn, str) for turn in data):
        raise ConfigError(f"replay script {path} must be a JSON array of strings", key="script")
    return data


class ReplayBackend(Backend):
    name = "replay"

    def __init__(
        self,
        turns: list[str],
        *,
        profile: ModelProfile | None = None,
        chunk_chars: int = 4,
        delay: float = 0.0,
        loop: bool = False,
    ):
        self.turns = list(turns)
        self.profile = profile or ModelProfile(name="replay", context_window=200_000, tier="small")
        self.chunk_chars = max(1, chunk_chars)
        self.delay = delay
        self.loop = loop
        self._next = 0
        self._lock = threading.Lock()

    def status(self) -> BackendStatus:
        return BackendStatus(Readiness.READY, detail=f"replay: {len(self.turns)} turns, {self._next} served")

    def _take_turn(self) -> str:
        with self._lock:
            if self._next >= len(self.turns):
                if not self.loop or not self.turns:
                    raise BackendError(
                        f"replay script exhausted: all {len(self.turns)} turns were served and the client asked "
                        "for another; give --script a script with a turn for every request the client makes",
                        lasting=True,
                    )
                self._next = 0
            turn = self.turns[self._next]
            self._next += 1
            return turn

    async def generate(self, messages: ChatMessages, params: GenerationParams) -> AsyncIterator[GenerationEvent]:
        turn = self._take_turn()
        prompt_tokens = self.count_tokens(messages)
        chunks = [turn[i : i + self.chunk_chars] for i in range(0, len(turn), self.chunk_chars)]
        finish = "stop"
        if len(chunks) > params.max_tokens:
            chunks, finish = chunks[: params.max_tokens], "length"
        for chunk in chunks:
            if self.delay:
                await asyncio.sleep(self.delay)
            yield TextDelta(chunk)
        yield Finished(finish=finish, input_tokens=prompt_tokens, output_tokens=len(chunks))
