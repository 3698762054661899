"""Waiting for a condition without making its timing part of the test."""

from __future__ import annotations

import time
from typing import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until it holds; False once ``timeout`` seconds have passed.

    The timeout only bounds a hang, so make it generous: a loaded machine is slow, and
    a test must not fail because of it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
