"""Where a model's files are, and what ``trimkit serve`` says while the model loads.

trimkit never downloads a model by itself: a model is a local directory or a
Hugging Face id already in the local cache, and anything else is a one-line error
naming the command that fetches it (``hf download MODEL``). Looking a model up
opens no connection.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

REINSTALL = "pip install --force-reinstall trimkit"


def download_command(model: str) -> str:
    return f"hf download {model}"


def is_hub_id(model: str) -> bool:
    """``owner/name`` that is not a path on this machine."""
    return model.count("/") == 1 and not model.startswith((".", "/", "~")) and not Path(model).expanduser().exists()


@dataclass(frozen=True)
class ModelLocation:
    """``path`` is set when the model is here; otherwise ``problem`` says why and ``fix`` what to run."""

    model: str
    path: Path | None
    cached: bool = False  # found in the Hugging Face cache rather than given as a directory
    problem: str | None = None
    fix: str | None = None

    @property
    def weights_bytes(self) -> int:
        if self.path is None:
            return 0
        return sum(p.stat().st_size for p in self.path.glob("*.safetensors"))


def locate_model(model: str) -> ModelLocation:
    """Find ``model`` on this machine without opening a connection (the MLX backend's own lookup)."""
    try:
        from .backends.mlx import ModelNotFoundError, resolve_model_path
    except ImportError as exc:
        return ModelLocation(model, None, problem=f"cannot look the model up: {exc}", fix=REINSTALL)
    try:
        path = resolve_model_path(model)
    except ModelNotFoundError as exc:
        if is_hub_id(model) and "local Hugging Face cache" in str(exc):
            return ModelLocation(model, None, problem=f"{model} is not in the local Hugging Face cache",
                                 fix=download_command(model))
        return ModelLocation(model, None, problem=str(exc))
    return ModelLocation(model, path, cached=not Path(model).expanduser().is_dir())


def missing_model(settings) -> str | None:
    """For the mlx backend: why the configured model cannot be loaded here, with the command to run."""
    if settings.backend != "mlx" or not settings.model:
        return None
    location = locate_model(settings.model)
    if location.path is not None:
        return None
    return f"{location.problem}; run: {location.fix}" if location.fix else location.problem


def model_context_window(model: str | None) -> int | None:
    """The context window in the model's ``config.json``, when the model is on this machine."""
    if not model:
        return None
    location = locate_model(model)
    if location.path is None:
        return None
    from .profile import ModelProfile

    try:
        return ModelProfile.from_model_dir(location.path).context_window
    except (OSError, ValueError):
        return None


def report_loading(backend, label: str, started: float, *, on_failure: Callable[[str], None],
                   stream: TextIO | None = None, interval: float = 0.2) -> threading.Thread:
    """Print ``LABEL ready in N s`` (counted from ``started``) once the backend is ready.

    Runs on a daemon thread. When loading fails, prints the reason as one line and
    calls ``on_failure`` with it (``trimkit serve`` keeps answering ``/health`` with
    the reason, so a supervisor or ``trimkit launch`` can show it).
    """
    out = stream or sys.stderr

    def watch() -> None:
        status = backend.status()
        while not status.ready:
            if status.failed:
                print(f"trimkit serve: {status.detail}", file=out, flush=True)
                on_failure(status.detail)
                return
            time.sleep(interval)
            status = backend.status()
        print(f"trimkit: {label} ready in {time.monotonic() - started:.1f} s", file=out, flush=True)

    thread = threading.Thread(target=watch, name="trimkit-loading", daemon=True)
    thread.start()
    return thread
