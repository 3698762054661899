"""Measured prefill speed, smoothed into the profile that the budget stage reads; a long prefill's progress, logged."""

from __future__ import annotations

import logging
import time

from ..profile import ModelProfile

progress_log = logging.getLogger("trimkit.progress")
PREFILL_REPORT_SECONDS = 5.0
"""A prefill says how far it got after this long, and again each time this long has passed."""

MIN_PREFILL_FOR_MEASUREMENT = 256  # shorter prefills say more about fixed overheads than about speed
PREFILL_TPS_SMOOTHING = 0.5  # weight of the newest measurement


class PrefillMeter:
    """Keeps ``profile.prefill_tps`` close to what the backend really achieves.

    The first long enough measurement replaces the estimate outright (estimates
    can be off by an order of magnitude); later ones are blended in.
    """

    def __init__(self, profile: ModelProfile):
        self.profile = profile
        self.last_tps: float | None = None
        self._measured = False

    def record(self, prefilled: int, tps: float) -> None:
        self.last_tps = tps
        if prefilled < MIN_PREFILL_FOR_MEASUREMENT:
            return
        if self._measured:
            tps = PREFILL_TPS_SMOOTHING * tps + (1 - PREFILL_TPS_SMOOTHING) * self.profile.prefill_tps
        self.profile.prefill_tps = tps
        self._measured = True


class PrefillProgress:
    """Log lines for a prefill that takes a while: how far it got, then how long it took.

    A prefill shorter than ``every`` seconds logs nothing, so a busy log stays quiet;
    one of a long prompt on a slow machine (minutes, untrimmed) shows it is moving.
    """

    def __init__(self, prompt_tokens: int, cached_tokens: int, every: float = PREFILL_REPORT_SECONDS):
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = cached_tokens
        self.every = every
        self.started = self._last = time.perf_counter()
        self.reported = False

    def step(self, done: int, total: int) -> None:
        """``done`` of ``total`` new tokens are prefilled (mlx-lm's prompt progress callback)."""
        now = time.perf_counter()
        if done >= total or now - self._last < self.every:
            return
        self._last, self.reported = now, True
        rate = done / max(now - self.started, 1e-9)
        progress_log.info("prefill: %s of %s prompt tokens (%d %%), %s tokens/s, about %.0f s to go",
                          f"{done:,}", f"{total:,}", 100 * done // max(total, 1), f"{rate:,.0f}",
                          (total - done) / max(rate, 1e-9))

    def finished(self, prefilled: int) -> None:
        """The first token came: a line with the whole prefill's time, if it was a long one."""
        seconds = time.perf_counter() - self.started
        if self.reported or seconds >= self.every:
            progress_log.info("prefill: %s prompt tokens in %.1f s (%s tokens/s), %s more from the cache",
                              f"{prefilled:,}", seconds, f"{prefilled / max(seconds, 1e-9):,.0f}",
                              f"{self.cached_tokens:,}")
