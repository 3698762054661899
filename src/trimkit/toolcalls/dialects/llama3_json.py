"""Llama 3.x: a JSON call ``{"name": "X", "parameters": {…}}`` at the start of the turn, or after ``<|python_tag|>``."""

from __future__ import annotations

from typing import Collection

from .base import Dialect
from .legacy import legacy_reader

PYTHON_TAG = "<|python_tag|>"


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return PYTHON_TAG in chat_template or '"parameters": dictionary of argument name' in chat_template


DIALECT = Dialect(
    name="llama3_json",
    detect=detect,
    call_markers=(PYTHON_TAG, "{"),
    reasoning_markers=(),
    make_reader=legacy_reader,
)
