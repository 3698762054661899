"""What ``trimkit serve`` says while the model loads."""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, TextIO


def report_loading(backend, label: str, started: float, *, on_failure: Callable[[str], None],
                   stream: TextIO | None = None, interval: float = 0.2) -> threading.Thread:
    """Print ``LABEL ready in N s`` (counted from ``started``) once the backend is ready.

    Runs on a daemon thread. When loading fails, prints the reason as one line and
    calls ``on_failure`` with it (``trimkit serve`` keeps answering ``/health`` with
    the reason, so a supervisor or ``trimkit launch`` can show it).
    """
    out = stream or sys.stderr

    def watch() -> None:
        status = backend.status()
        while not status.ready:
            if status.failed:
                print(f"trimkit serve: {status.detail}", file=out, flush=True)
                on_failure(status.detail)
                return
            time.sleep(interval)
            status = backend.status()
        print(f"trimkit: {label} ready in {time.monotonic() - started:.1f} s", file=out, flush=True)

    thread = threading.Thread(target=watch, name="trimkit-loading", daemon=True)
    thread.start()
    return thread
