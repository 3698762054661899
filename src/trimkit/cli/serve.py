"""``trimkit serve``: the Anthropic Messages API on a local model, or in front of an engine."""

from __future__ import annotations

import argparse
import sys
import time

from .main import REINSTALL, _config


def cmd_serve(args: argparse.Namespace) -> int:
    from ..backends.locate import missing_model
    from .progress import report_loading

    try:
        import uvicorn

        from ..backends.base import BackendError
        from ..server import create_app
        from ..server.app import make_backend
    except ImportError as exc:
        print(f"trimkit serve: {exc}; install the server with: {REINSTALL}", file=sys.stderr)
        return 2
    settings = _config(args).settings
    started = time.monotonic()
    label = settings.model or f"{settings.backend} backend"
    try:
        settings.check_bind()
        if settings.download and settings.backend == "mlx" and settings.model:
            from ..backends.locate import resolve_model_path

            print(f"trimkit: fetching {settings.model} unless it is cached…", file=sys.stderr, flush=True)
            resolve_model_path(settings.model, allow_download=True)
        elif problem := missing_model(settings):
            raise ValueError(problem)
        print(f"trimkit: loading {label}…", file=sys.stderr, flush=True)
        backend = make_backend(settings)
        app = create_app(settings, backend=backend)
    except (ValueError, FileNotFoundError, BackendError) as exc:
        print(f"trimkit serve: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"trimkit serve: the {settings.backend} backend needs {exc.name or exc}: {REINSTALL}", file=sys.stderr)
        return 2
    print(f"trimkit: serving {settings.backend} backend on http://{settings.host}:{settings.port}", file=sys.stderr)
    server = uvicorn.Server(uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level, timeout_graceful_shutdown=2
    ))

    def keep_serving(reason: str) -> None:
        print("trimkit: still serving: /health answers 503 with the reason", file=sys.stderr, flush=True)

    report_loading(backend, label, started, on_failure=keep_serving)
    try:
        server.run()
    finally:
        backend.close()
    return 0
