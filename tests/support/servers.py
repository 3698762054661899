"""Live trimkit servers on scripted backends, as most server tests want them."""

from __future__ import annotations

from typing import Sequence

from trimkit.backends.replay import ReplayBackend
from trimkit.profile import ModelProfile
from trimkit.testing import LiveServer, live_app


def replay_backend(turns: Sequence[str] = (), *, window: int = 200_000, name: str = "replay-model",
                   tier: str = "small", **options) -> ReplayBackend:
    """A replay backend answering ``turns`` in order, as a model ``name`` of ``window`` tokens and ``tier``."""
    return ReplayBackend(list(turns), profile=ModelProfile(name=name, context_window=window, tier=tier), **options)


def replay_server(turns: Sequence[str] = (), *, backend: ReplayBackend | None = None, window: int = 200_000,
                  name: str = "replay-model", tier: str = "small", pipeline=None, **settings) -> LiveServer:
    """``with replay_server(["Hello."]) as server:`` — trimkit on a replay backend, on a free port.

    ``backend`` replaces the one built from ``turns``, ``window``, ``name`` and ``tier``;
    ``settings`` are server settings (``api_key=``, ``max_queue=``…).
    """
    backend = backend or replay_backend(turns, window=window, name=name, tier=tier)
    return live_app("replay", backend, pipeline=pipeline, **settings)
