"""Which of the offered tools the model is shown.

``allow`` and ``deny`` hold names or ``fnmatch`` patterns (``mcp__*``), compiled
once per list. ``tool_choice`` can force a tool in (``{"type": "tool"}``) or
every tool out (``{"type": "none"}``).
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache
from typing import Sequence

from trimkit.wire import Tool, ToolChoice
from .options import ToolOptions

PATTERN_LISTS_CACHED = 64
CUSTOM_TOOL_TYPES = (None, "custom")


class _Patterns:
    """A list of names and ``fnmatch`` patterns, compiled once: plain names go in a set."""

    def __init__(self, patterns: tuple[str, ...]):
        self.names = frozenset(p for p in patterns if not any(c in p for c in "*?["))
        globs = [p for p in patterns if p not in self.names]
        self.regex = re.compile("|".join(fnmatch.translate(g) for g in globs)) if globs else None

    def __call__(self, name: str) -> bool:
        return name in self.names or (self.regex is not None and self.regex.match(name) is not None)


@lru_cache(maxsize=PATTERN_LISTS_CACHED)
def _patterns(patterns: tuple[str, ...]) -> _Patterns:
    return _Patterns(patterns)


def select_tools(tools: Sequence[Tool], options: ToolOptions, forced: str | None = None) -> list[Tool]:
    """The tools to show, in the client's order.

    A tool is kept when ``allow`` matches it and ``deny`` does not; ``forced`` (the
    tool ``tool_choice`` names) is kept regardless. Server-side tools (a ``type``
    other than ``custom``) are never kept: a local model cannot run them. When
    ``allow`` matches none of the offered tools, the allow list was written for
    another client (say, Claude Code's names against an SDK user's own tools), and
    every tool ``deny`` lets through is kept rather than leaving the model none.
    """
    allow, deny = _patterns(options.allow), _patterns(options.deny)
    offered = [tool for tool in tools if tool.type in CUSTOM_TOOL_TYPES]
    allowed = [tool for tool in offered if allow(tool.name)] or offered
    if forced is None and not options.deny:
        return allowed
    allowed_ids = {id(tool) for tool in allowed}
    return [
        tool
        for tool in offered
        if tool.name == forced or (id(tool) in allowed_ids and not deny(tool.name))
    ]


def kept_tools(tools: Sequence[Tool], choice: ToolChoice | None, options: ToolOptions) -> list[Tool]:
    """:func:`select_tools` under ``tool_choice``: none for ``none``, the named tool forced in for ``tool``."""
    if choice is not None and choice.type == "none":
        return []
    return select_tools(tools, options, choice.name if choice is not None and choice.type == "tool" else None)
