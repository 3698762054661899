"""The Anthropic Messages API server (Litestar). Importing this package loads Litestar."""

from ..config.settings import ServerSettings
from .app import create_app

__all__ = ["ServerSettings", "create_app"]
