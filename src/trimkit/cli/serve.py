"""``trimkit serve``: the Anthropic Messages API on a local model, or in front of an engine."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time

from .errors import CommandError, Exit
from .main import REINSTALL, _config


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound here so that a taken port is a one-line error rather than uvicorn's log."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", Exit.USAGE) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise CommandError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another port with --port PORT)",
            Exit.USAGE,
        ) from None
    return sock


LOG_LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING,
              "info": logging.INFO, "debug": logging.DEBUG, "trace": logging.DEBUG}


def configure_logging(level: str) -> None:
    """trimkit's own lines on stderr at ``log_level``; progress lines (the model loading, a long
    prefill: ``trimkit.progress``) at every level but ``error`` and ``critical``. Called again (a
    second server in one process), it replaces its handler rather than adding one."""
    logger = logging.getLogger("trimkit")
    for handler in [h for h in logger.handlers if getattr(h, "trimkit_serve", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("trimkit: %(message)s"))
    handler.trimkit_serve = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(LOG_LEVELS.get(level.lower(), logging.WARNING))
    logger.propagate = False
    progress = logging.INFO if logger.level <= logging.WARNING else logging.NOTSET
    logging.getLogger("trimkit.progress").setLevel(progress)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..backends.locate import missing_model
    from .progress import report_loading

    try:
        from ..backends import make_models
        from ..backends.catalog import several_models
        from ..server import create_app
        from ..server.listen import raise_descriptor_limit, uvicorn_server
    except ImportError as exc:
        raise CommandError(f"{exc}; install the server with: {REINSTALL}", Exit.NOT_INSTALLED) from None
    settings = _config(args).settings
    started = time.monotonic()
    label = settings.model or f"{settings.backend} backend"
    settings.check_bind()
    if settings.download and settings.backend == "mlx" and settings.model:
        from ..backends.locate import resolve_model_path

        print(f"trimkit: fetching {settings.model} unless it is cached…", file=sys.stderr, flush=True)
        resolve_model_path(settings.model, allow_download=True)
    elif (missing := missing_model(settings)) is not None:
        raise missing
    configure_logging(settings.log_level)  # only once it will serve: a refusal leaves the process's logging alone
    raise_descriptor_limit()
    several = several_models(settings)
    sock = listening_socket(settings.host, settings.port)
    if settings.backend == "mlx" and settings.model and not several:  # the one backend that takes a while to build
        print(f"trimkit: loading {label}…", file=sys.stderr, flush=True)
    try:
        models = make_models(settings)
        app = create_app(settings, models=models)
    except ImportError as exc:
        sock.close()
        raise CommandError(
            f"the {settings.backend} backend needs {exc.name or exc}: {REINSTALL}", Exit.NOT_INSTALLED
        ) from None
    except BaseException:
        sock.close()
        raise
    if several:
        label = models.default.name
        describe_models(models)
        print(f"trimkit: loading {label}…", file=sys.stderr, flush=True)
    print(f"trimkit: serving {settings.backend} backend on http://{settings.host}:{settings.port}", file=sys.stderr)
    if settings.live_view:
        print(f"trimkit: live view at http://{settings.host}:{settings.port}/ui", file=sys.stderr)
    server = uvicorn_server(app, settings)

    def keep_serving(reason: str) -> None:
        print("trimkit: still serving: /health answers 503 with the reason", file=sys.stderr, flush=True)

    report_loading(models, label, started, on_failure=keep_serving)
    try:
        server.run(sockets=[sock])
    finally:
        models.close()
        sock.close()
    return 0


def describe_models(models) -> None:
    """One line per offered model, and the memory cap they share."""
    from ..backends.memory import gb
    from ..config.settings import FAMILIES

    cap = f"a memory cap of {gb(models.cap)}" if models.cap else "no memory cap"
    print(f"trimkit: {len(models.residents)} models under {cap}:", file=sys.stderr)
    for resident in models.residents:
        spec = resident.spec
        families = ", ".join(f for f in FAMILIES if f in spec.families) or "by name"
        pinned = ", pinned" if spec.pinned else ""
        print(f"trimkit:   {spec.alias} ({families}{pinned}): {resident.window:,}-token window, "
              f"about {gb(resident.reservation())}, {spec.path or spec.model}", file=sys.stderr)
