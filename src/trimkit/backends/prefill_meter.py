"""Measured prefill speed, smoothed into the profile that the budget stage reads."""

from __future__ import annotations

from ..profile import ModelProfile

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
