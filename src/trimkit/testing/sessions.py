"""A long agent session, scripted, to see how a real client compacts on a small window.

:class:`ReadingSession` is a backend that plays a model working through ``steps``
files, one ``Read`` call per turn in trimkit's tool-call convention, and answers the
client's compaction requests (:func:`trimkit.request_kind.classify` on the rendered
chat's last turn) with a short summary of where it is. It keeps its own step count, so
the work goes on from where it was after each compaction. :func:`data_files` writes the
files: deterministic words, about ``tokens`` each, large enough that a few turns fill a
32 K window. :func:`run_session` runs the real client on it through trimkit and says
what happened.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

from ..backends.base import Backend, BackendStatus, Finished, GenerationEvent, GenerationParams, Readiness, TextDelta
from ..profile import ModelProfile
from ..request_kind import RequestKind, classify

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()
COMPACTION_MARKERS = ("your task is to create a detailed summary of the conversation so far",)


def data_files(directory: Path, count: int, tokens: int = 3_000, seed: int = 7) -> list[Path]:
    """``count`` text files of about ``tokens`` tokens each (twelve words a line)."""
    rng = random.Random(seed)
    paths = []
    for index in range(count):
        path = directory / f"data_{index:02d}.txt"
        lines = max(1, tokens // 14)
        path.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(lines)) + "\n")
        paths.append(path)
    return paths


class ReadingSession(Backend):
    """Reads ``files`` one per turn, then says it is done; summarises when asked to compact."""

    name = "replay"

    def __init__(self, files: list[Path], window: int):
        self.files = files
        self.profile = ModelProfile(name="replay", context_window=window, tier="small", prefill_tps=1e9)
        self.step = 0
        self.log: list[RequestKind] = []
        self.prompt_tokens: list[int] = []

    def status(self) -> BackendStatus:
        return BackendStatus(Readiness.READY, detail=f"reading session: step {self.step} of {len(self.files)}")

    async def generate(self, messages, params: GenerationParams) -> AsyncIterator[GenerationEvent]:
        last = messages[-1]["content"].lower() if messages else ""
        self.prompt_tokens.append(self.count_tokens(messages))
        if any(marker in last for marker in COMPACTION_MARKERS):
            self.log.append(RequestKind.COMPACTION)
            text = (f"<analysis>Reading the files in order.</analysis>\n<summary>1. Primary Request and Intent: read "
                    f"the {len(self.files)} data files, one per turn.\n7. Pending Tasks: the files after file "
                    f"{self.step}.\n8. Current Work: file {self.step} of {len(self.files)} was read.</summary>")
        elif self.step < len(self.files):
            path = self.files[self.step]
            self.step += 1
            self.log.append(RequestKind.MAIN)
            text = (f"Reading file {self.step}.\n<function_calls>\n<invoke name=\"Read\">\n"
                    f"<parameter name=\"file_path\">{path}</parameter>\n</invoke>\n</function_calls>")
        else:
            self.log.append(RequestKind.MAIN)
            text = "All files read."
        yield TextDelta(text)
        yield Finished(finish="stop", input_tokens=self.prompt_tokens[-1], output_tokens=len(text) // 4)


@dataclass
class SessionRun:
    """What a session did: what the model was asked, in order (with each prompt's size in
    tokens), how far the work got and how the client ended."""

    kinds: list[RequestKind] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)
    steps_read: int = 0
    exit_status: int | None = None
    output: str = ""

    @property
    def compactions(self) -> int:
        return self.kinds.count(RequestKind.COMPACTION)

    @property
    def back_to_back(self) -> bool:
        """Whether a compaction came right after another, with no turn of work between."""
        return any(a is b is RequestKind.COMPACTION for a, b in zip(self.kinds, self.kinds[1:]))


def run_session(client: Path, env: dict[str, str], steps: int, window: int, *,
                stages: dict[str, Any] | None = None, tokens: int = 3_000) -> SessionRun:
    """Claude Code (``client``, with ``env`` over a clean environment; ``{url}`` in a value
    becomes the server's) reads ``steps`` files through a trimkit server whose model has
    ``window`` tokens; ``stages`` configures the pipeline."""
    import trimkit
    from ..server import ServerSettings, create_app
    from .servers import LiveServer

    with tempfile.TemporaryDirectory(prefix="trimkit-session-", ignore_cleanup_errors=True) as tmp:
        work, home = Path(tmp) / "work", Path(tmp) / "home"
        work.mkdir()
        home.mkdir()
        backend = ReadingSession(data_files(work, steps, tokens), window)
        app = create_app(ServerSettings(backend="replay"), backend=backend, pipeline=trimkit.Pipeline(stages or {}))
        with LiveServer(app) as server:
            clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
            full = {**clean, "HOME": str(home), "PWD": str(work), "DISABLE_AUTOUPDATER": "1",
                    **{k: v.replace("{url}", server.url) for k, v in env.items()}}
            done = subprocess.run([str(client), "-p", f"Read the {steps} data files one per turn, in order.",
                                   "--allowedTools", "Read"], cwd=work, env=full, capture_output=True, text=True,
                                  timeout=1800, stdin=subprocess.DEVNULL)
    return SessionRun(kinds=backend.log, prompt_tokens=backend.prompt_tokens, steps_read=backend.step,
                      exit_status=done.returncode, output=(done.stdout + done.stderr).strip())
