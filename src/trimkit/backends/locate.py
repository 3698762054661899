"""Where a model's files are: a local directory or a Hugging Face id already in the local cache.

trimkit never downloads a model by itself: a model is a local directory or a
Hugging Face id already in the local cache, and anything else is a one-line error
naming the command that fetches it (``hf download MODEL``). Looking a model up
opens no connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelNotFoundError

if TYPE_CHECKING:
    from ..config.settings import ServerSettings

__all__ = [
    "ModelLocation",
    "ModelNotFoundError",
    "download_command",
    "locate_model",
    "missing_model",
    "model_context_window",
    "model_label",
    "resolve_model_path",
    "without_paths",
]


def is_local_path(model: str) -> bool:
    """Whether ``model`` names a directory on this machine rather than a Hugging Face id."""
    return model.startswith(("/", "~", ".", "\\")) or Path(model).expanduser().is_dir()


def model_label(model: str) -> str:
    """What a model is called where anyone may read it (``/health``, ``/v1/models``, errors).

    A Hugging Face id as it is; a local directory by its name only, since its full path
    tells whoever asks the user's name and how their disk is laid out.
    """
    if is_local_path(model):
        return Path(model.rstrip("/\\")).expanduser().name or model
    return model


def without_paths(text: str, model: str, path: Path | None = None) -> str:
    """``text`` (an error's message, say) with the model's directory written as its :func:`model_label`."""
    label = model_label(model)
    for shown in {str(path) if path else "", str(Path(model).expanduser()) if is_local_path(model) else "",
                  model if is_local_path(model) else ""} - {""}:
        text = text.replace(shown.rstrip("/"), label)
    return text


def download_command(model: str) -> str:
    return f"hf download {model}"


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
        path = resolve_model_path(model)
    except ModelNotFoundError as exc:
        return ModelLocation(model, None, problem=exc.problem, fix=exc.fix)
    return ModelLocation(model, path, cached=not Path(model).expanduser().is_dir())


def missing_model(settings: "ServerSettings") -> ModelNotFoundError | None:
    """For the mlx backend: why the configured model cannot be loaded here (the error names the fix)."""
    if settings.backend != "mlx" or not settings.model:
        return None
    try:
        resolve_model_path(settings.model)
    except ModelNotFoundError as exc:
        return exc
    return None


def model_context_window(model: str | None) -> int | None:
    """The context window in the model's ``config.json``, when the model is on this machine."""
    if not model:
        return None
    location = locate_model(model)
    if location.path is None:
        return None
    from ..profile import ModelProfile

    try:
        return ModelProfile.from_model_dir(location.path).context_window
    except (OSError, ValueError):
        return None


def resolve_model_path(model: str, *, allow_download: bool = False) -> Path:
    """A local directory for ``model``: a path, or a Hugging Face id already downloaded.

    Without ``allow_download`` this never opens a connection.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} is not a model directory: it has no config.json")
        return path
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise ModelNotFoundError(f"no model directory at {model} (and it is not a Hugging Face id)")

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
    from mlx_lm.utils import DEFAULT_ALLOW_PATTERNS

    try:
        return Path(
            snapshot_download(model, local_files_only=not allow_download, allow_patterns=DEFAULT_ALLOW_PATTERNS)
        )
    except HFValidationError:
        raise ModelNotFoundError(f"{model!r} is neither a model directory nor a Hugging Face model id") from None
    except LocalEntryNotFoundError:
        raise ModelNotFoundError(
            f"{model} is not in the local Hugging Face cache",
            fix=download_command(model),
        ) from None
    except Exception as exc:  # network and hub errors when downloading was allowed
        raise ModelNotFoundError(f"cannot download model {model!r}: {exc}") from None
