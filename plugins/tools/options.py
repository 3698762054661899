"""The tools stage's options, and each tier's defaults."""

from __future__ import annotations

from typing import Annotated

import msgspec

CORE_TOOLS = ("Read", "Write", "Edit", "Bash", "Glob", "Grep", "read", "write", "edit", "bash", "glob", "grep")
"""The tools a small model gets, under Claude Code's names and OpenCode's lowercase ones."""
MEDIUM_TOOLS = (*CORE_TOOLS, "TodoWrite", "WebFetch", "todowrite", "webfetch")

Chars = Annotated[int, msgspec.Meta(ge=0)]


class ToolOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to choose and compact tools (``[stages.tools]``).

    * ``allow``: names or ``fnmatch`` patterns (``mcp__*``, case-sensitive) of the tools
      to show when the client offers them; if it offers none of them, all are shown
      (the list was written for another client).
    * ``deny``: tools never shown, unless ``tool_choice`` names one.
    * ``max_description_chars``: a tool description is cut at a sentence end within this.
    * ``max_parameter_description_chars``: a parameter gets its first sentence within this.
    * ``max_optional_parameters``: optional parameters shown per tool (``-1``: all).
    * ``include_examples``: keep ``<example>`` blocks in descriptions and schema examples.
    * ``drop_restating_descriptions``: leave out a parameter description that only
      repeats the parameter's name and the tool's name and shown description ("The
      command to execute" for ``command``); see :func:`trimkit.plugins.tools.prose.restates`.
    """

    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()
    max_description_chars: Chars = 1500
    max_parameter_description_chars: Chars = 200
    max_optional_parameters: Annotated[int, msgspec.Meta(ge=-1)] = -1
    include_examples: bool = True
    drop_restating_descriptions: bool = False


SMALL = ToolOptions(
    allow=CORE_TOOLS,
    max_description_chars=90,
    max_parameter_description_chars=80,
    max_optional_parameters=0,
    include_examples=False,
    drop_restating_descriptions=True,
)
MEDIUM = msgspec.structs.replace(SMALL, allow=MEDIUM_TOOLS, max_description_chars=250, max_optional_parameters=2)
TIER_OPTIONS = {"small": SMALL, "medium": MEDIUM}
