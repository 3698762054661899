"""The tools stage: choose tools for the tier, compact them, teach them in the system prompt.

The JSON ``tools`` never reach the model. In their place a section is appended to the
system prompt as a new last text block: how to call a tool (the convention of
:mod:`trimkit.convention`, which is also how earlier ``tool_use``/``tool_result`` turns
are rendered) and a ``<tools>`` list of the chosen tools. ``tool_choice`` becomes a
sentence in that section and is removed from the request. ``state.carry.tool_names`` gets the names shown; the server
reads calls back against the original request's tools.

Options (``allow`` and ``deny`` take names or ``fnmatch`` patterns such as ``mcp__*``):

* ``allow``: tools to show when the client offers them; if it offers none of them, all
  are shown (the list was written for another client).
* ``deny``: tools never shown, unless ``tool_choice`` names one.
* ``max_description_chars``: a tool description is cut at a sentence end within this.
* ``max_parameter_description_chars``: a parameter gets its first sentence within this.
* ``max_optional_parameters``: optional parameters shown per tool (``-1``: all).
* ``include_examples``: keep ``<example>`` blocks in descriptions and schema examples.
* ``drop_restating_descriptions``: leave out a parameter description that only repeats
  the parameter's name and the tool's name and shown description ("The command to
  execute" for ``command``); see :func:`trimkit.plugins.tools.prose.restates`.

The modules of this package, in the order the work happens: :mod:`.choose` picks the
tools, :mod:`.compact` shortens each one (with :mod:`.schemas` for types and
:mod:`.prose` for descriptions), :mod:`.markup` writes the ``<tools>`` listing and
:mod:`.section` puts the section together and memoizes it on the tools' content, so a
repeated tool list costs a lookup.
"""

from __future__ import annotations

import msgspec

from trimkit import Stage, hookimpl
from trimkit.rewrite import appended_system
from .options import ToolOptions
from .section import tools_section

CORE_TOOLS = ["Read", "Write", "Edit", "Bash", "Glob", "Grep"]
MEDIUM_TOOLS = CORE_TOOLS + ["TodoWrite", "WebFetch"]


def run(state) -> None:
    request = state.request
    if not request.tools:
        return
    section = tools_section(request.tools, request.tool_choice, ToolOptions.from_mapping(state.options))
    system = appended_system(request, section.text) if section.text else request.system
    state.request = msgspec.structs.replace(request, system=system, tools=None, tool_choice=None)
    state.carry.tool_names = list(section.tool_names)
    state.removed("tools_dropped", section.dropped_chars)
    state.removed("tool_descriptions", section.description_chars)
    state.removed("tool_parameters", section.parameter_chars)


@hookimpl
def trimkit_register_stages():
    return [
        Stage(
            name="tools",
            run=run,
            order=400,
            options={
                "allow": ["*"],
                "deny": [],
                "max_description_chars": 1500,
                "max_parameter_description_chars": 200,
                "max_optional_parameters": -1,
                "include_examples": True,
                "drop_restating_descriptions": False,
            },
            tier_options={
                "small": {
                    "allow": CORE_TOOLS,
                    "max_description_chars": 90,
                    "max_parameter_description_chars": 80,
                    "max_optional_parameters": 0,
                    "include_examples": False,
                    "drop_restating_descriptions": True,
                },
                "medium": {
                    "allow": MEDIUM_TOOLS,
                    "max_description_chars": 250,
                    "max_parameter_description_chars": 80,
                    "max_optional_parameters": 2,
                    "include_examples": False,
                    "drop_restating_descriptions": True,
                },
            },
        )
    ]
