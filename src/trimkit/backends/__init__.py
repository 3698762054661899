"""Backends turn rendered chat messages into a stream of model text.

:mod:`.base` declares what the server asks of every backend. :func:`make_backend`
builds the one the settings name, importing its module only then, so the MLX
backend (and MLX) or the upstream backends (and httpx) load only when chosen.
:func:`make_models` builds the server's models: that one backend, or, when the
settings name several MLX models, a :class:`~.residency.ModelSet` that loads them
on demand under a memory cap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .base import Backend

if TYPE_CHECKING:
    from ..config.settings import ServerSettings
    from .residency import ModelSet, Resident

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


def make_models(settings: "ServerSettings") -> "ModelSet":
    """The server's models: the one backend ``settings`` name, or several MLX models (see
    :func:`~.catalog.several_models`) under the memory cap, each loaded when first asked for.

    A model named in the settings that is not on this machine raises
    :class:`~trimkit.errors.ModelNotFoundError`; a cap that cannot be read, a
    :class:`~trimkit.errors.ConfigError`.
    """
    from .catalog import several_models
    from .mlx import mlx_memory
    from .residency import ModelSet

    if not several_models(settings):
        return ModelSet.single(make_backend(settings), settings)
    return model_set(settings, build=mlx_builder(settings), probe=lambda: mlx_memory().active)


def model_set(settings: "ServerSettings", *, strict: bool = True, build=None, probe=None) -> "ModelSet":
    """Several MLX models as ``settings`` name them, with their windows and shares of the cap;
    without ``build``, a plan only (``trimkit launch --print-env`` reads the names and windows).
    ``strict`` False keeps models that are not on this machine, without sizes."""
    from .catalog import Catalog
    from .memory import memory_cap_bytes
    from .footprint import scores_materialized
    from .residency import ModelSet

    cap = memory_cap_bytes(settings.memory_cap)
    return ModelSet(
        Catalog.from_settings(settings, cap=cap, strict=strict),
        build,
        cap=cap,
        idle_ttl=settings.model_idle_ttl,
        context_window=settings.context_window,
        prompt_cache_bytes=settings.prompt_cache_bytes,
        scores=scores_materialized(),
        probe=probe,
    )


def mlx_builder(settings: "ServerSettings"):
    """Makes one model's :class:`~.mlx.MLXBackend`, weights not loaded yet, named by its alias;
    a model that cannot be read gives a :class:`~.failed.FailedBackend` saying why."""

    def build(resident: "Resident") -> Backend:
        from .failed import FailedBackend
        from .locate import without_paths
        from .mlx import MLXBackend

        spec = resident.spec
        try:
            return MLXBackend(
                str(spec.path or spec.model),
                name=spec.alias,
                load=False,
                max_cache_bytes=resident.plan.cache_bytes,
                max_cache_entries=settings.prompt_cache_entries,
                memory_limit=settings.mlx_memory_limit,
                cache_limit=settings.mlx_cache_limit,
                grammar_cache_entries=settings.constrain_cache_entries,
            )
        except Exception as exc:  # unreadable files: the model fails, the others keep serving
            reason = without_paths(f"{type(exc).__name__}: {exc}", spec.model, spec.path)
            failed = FailedBackend("mlx", spec.alias, reason)
            log.error("trimkit: %s", failed.reason)
            return failed

    return build
