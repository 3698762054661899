"""Helpers for tests and benchmarks: live servers on 127.0.0.1 and a tiny random MLX model.

Importing this package loads nothing heavy; :mod:`~trimkit.testing.tinymodel`
imports MLX only when a model is built.
"""

from .servers import (
    LiveServer,
    free_port,
    live_app,
    spawn_and_wait,
    spawn_mlx_lm_server,
    spawn_server,
    stop_server,
    wait_for_health,
)

__all__ = [
    "LiveServer",
    "free_port",
    "live_app",
    "spawn_and_wait",
    "spawn_mlx_lm_server",
    "spawn_server",
    "stop_server",
    "wait_for_health",
]
