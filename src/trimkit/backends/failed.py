"""A stand-in for a backend that could not be built, so the server runs and ``/health`` says why.

A model that is missing or fails to load must not take the server down: a
supervisor, ``trimkit launch`` and the user's client all learn the reason from
``/health`` (``status: error``) and from each request's 500, which no retry fixes.
"""

from __future__ import annotations

from ..profile import ModelProfile
from .base import Backend, BackendError, BackendStatus, Readiness
from .locate import model_label, without_paths


GENERIC_FIX = "check the model's files, or serve another model with --model MODEL (`trimkit doctor` suggests one)"


class FailedBackend(Backend):
    """``fix`` ends the reason, so a client that shows only the message still says what to do;
    ``None`` when the reason names the fix already (a missing model's ``hf download``)."""

    def __init__(self, name: str, model: str, reason: str, fix: str | None = GENERIC_FIX):
        self.name = name
        self.profile = ModelProfile(name=model_label(model))
        reason = without_paths(f"failed to load model {model}: {reason}", model)
        self.reason = reason + (f"; fix: {fix}" if fix else "")

    def status(self) -> BackendStatus:
        return BackendStatus(Readiness.FAILED, detail=self.reason)

    async def generate(self, messages, params):
        raise BackendError(self.reason, lasting=True)
        yield  # an async generator, like every backend's
