"""Backends turn rendered chat messages into a stream of model text.

:mod:`.base` declares what the server asks of every backend. :func:`make_backend`
builds the one the settings name, importing its module only then, so the MLX
backend (and MLX) or the upstream backends (and httpx) load only when chosen.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .base import Backend

if TYPE_CHECKING:
    from ..config.settings import ServerSettings

log = logging.getLogger("trimkit.backends")

BACKENDS = ("mlx", "replay", "openai", "anthropic")


def make_backend(settings: "ServerSettings") -> Backend:
    """The backend ``settings.backend`` names, built from the settings.

    Settings it cannot use are a :class:`~trimkit.errors.ConfigError`. An MLX model
    that cannot be loaded gives a :class:`~.failed.FailedBackend`, so the server
    still starts and says why.
    """
    if settings.backend == "replay":
        from .replay import ReplayBackend, load_script

        if not settings.script:
            raise ConfigError("the replay backend needs --script FILE (a JSON array of model turns)", key="script")
        return ReplayBackend(load_script(settings.script))
    if settings.backend == "mlx":
        if not settings.model:
            raise ConfigError("the mlx backend needs --model PATH_OR_ID", key="model")
        try:
            from .mlx import MLXBackend

            return MLXBackend(
                settings.model,
                max_cache_bytes=settings.prompt_cache_bytes,
                max_cache_entries=settings.prompt_cache_entries,
                memory_limit=settings.mlx_memory_limit,
                cache_limit=settings.mlx_cache_limit,
                allow_download=settings.download,
                grammar_cache_entries=settings.constrain_cache_entries,
            )
        except Exception as exc:  # a missing or broken model: keep serving /health with the reason
            from ..errors import ModelNotFoundError
            from .failed import GENERIC_FIX, FailedBackend

            fix = None if isinstance(exc, ModelNotFoundError) else GENERIC_FIX
            failed = FailedBackend("mlx", settings.model, f"{type(exc).__name__}: {exc}", fix)
            log.error("trimkit: %s", failed.reason)
            return failed
    if settings.backend in ("openai", "anthropic"):
        from .upstream import make_upstream_backend

        return make_upstream_backend(settings)
    raise ConfigError(f"unknown backend {settings.backend!r} (choose {', '.join(BACKENDS)})", key="backend")
