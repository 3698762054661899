"""The ``trimkit`` command: serve, inspect, config, launch, doctor."""

from .main import main

__all__ = ["main"]
