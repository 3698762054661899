"""What ``trimkit serve`` says while the model loads: a progress bar on a terminal, plain lines in a log.

A model of tens of gigabytes takes from seconds to minutes to read. On a terminal
a rich progress bar shows the bytes read (the MLX backend reports them); when
stderr is a file or a pipe (a service's log, ``trimkit launch``'s log file) a bar
would be noise, so a plain line is written every quarter of the way, and at least
every ``PLAIN_EVERY`` seconds while nothing is known.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, TextIO

PLAIN_EVERY = 15.0
PLAIN_STEPS = 4


def _size(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.1f} MB"


class PlainLines:
    """Lines for a log: ``trimkit: loading LABEL: 50 % (3.4 of 6.9 GB, 12 s)``, every quarter or so."""

    def __init__(self, out: TextIO, label: str, started: float, every: float | None = None):
        self.out = out
        self.label = label
        self.started = started
        self.every = PLAIN_EVERY if every is None else every
        self._last = time.monotonic()
        self._step = 0

    def update(self, progress: tuple[int, int] | None) -> None:
        now = time.monotonic()
        step = PLAIN_STEPS * progress[0] // progress[1] if progress and progress[1] else self._step
        if (self._step < step < PLAIN_STEPS) or now - self._last >= self.every:
            self._step, self._last = max(step, self._step), now
            done = f": {100 * progress[0] // progress[1]} % ({_size(progress[0])} of {_size(progress[1])}, " \
                if progress and progress[1] else " ("
            print(f"trimkit: loading {self.label}{done}{now - self.started:.0f} s)", file=self.out, flush=True)

    def close(self) -> None:
        pass


class Bar:
    """A rich progress bar on the terminal (``out`` is one: :func:`loading_display` decides), cleared when the
    model is ready."""

    def __init__(self, out: TextIO, label: str):
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("loading {task.description}"), BarColumn(), DownloadColumn(),
                                 TimeElapsedColumn(), console=Console(file=out, force_terminal=True),
                                 transient=True)
        self.task = self.progress.add_task(label, total=None)
        self.progress.start()

    def update(self, progress: tuple[int, int] | None) -> None:
        if progress is not None:
            self.progress.update(self.task, completed=progress[0], total=progress[1])

    def close(self) -> None:
        self.progress.stop()


def loading_display(out: TextIO, label: str, started: float, *, bar: bool | None = None):
    """A :class:`Bar` on a terminal (when rich is installed), else :class:`PlainLines`."""
    if bar is None:
        bar = out.isatty()
    if bar:
        try:
            return Bar(out, label)
        except ImportError:
            pass
    return PlainLines(out, label, started)


def report_loading(backend, label: str, started: float, *, on_failure: Callable[[str], None],
                   stream: TextIO | None = None, interval: float = 0.2, bar: bool | None = None) -> threading.Thread:
    """Show the model loading, then print ``LABEL ready in N s`` (counted from ``started``).

    Runs on a daemon thread. When loading fails, prints the reason as one line and
    calls ``on_failure`` with it (``trimkit serve`` keeps answering ``/health`` with
    the reason, so a supervisor or ``trimkit launch`` can show it).
    """
    out = stream or sys.stderr

    def watch() -> None:
        status = backend.status()
        display = None if status.ready or status.failed else loading_display(out, label, started, bar=bar)
        try:
            while not status.ready:
                if status.failed:
                    if display is not None:
                        display.close()
                        display = None
                    print(f"trimkit serve: {status.detail}", file=out, flush=True)
                    on_failure(status.detail)
                    return
                display.update(status.progress)
                time.sleep(interval)
                status = backend.status()
        finally:
            if display is not None:
                display.close()
        print(f"trimkit: {label} ready in {time.monotonic() - started:.1f} s", file=out, flush=True)

    thread = threading.Thread(target=watch, name="trimkit-loading", daemon=True)
    thread.start()
    return thread
