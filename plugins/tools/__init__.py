"""The tools stage: choose tools for the tier, compact them, teach them in the system prompt.

The JSON ``tools`` never reach the model. In their place a section is appended to the
system prompt as a new last text block: how to call a tool (the convention of
:mod:`trimkit.convention`, which is also how earlier ``tool_use``/``tool_result`` turns
are rendered) and a ``<tools>`` list of the chosen tools. ``tool_choice`` becomes a
sentence in that section and is removed from the request. ``state.carry.tool_names``
gets the names shown; the server reads calls back against the original request's tools.

Options: :class:`~trimkit.plugins.tools.options.ToolOptions`; the small and medium
tiers show the core tools only, with short descriptions.

The modules of this package, in the order the work happens: :mod:`.choose` picks the
tools, :mod:`.compact` shortens each one (with :mod:`.schemas` for types and
:mod:`.prose` for descriptions), :mod:`.markup` writes the ``<tools>`` listing and
:mod:`.section` puts the section together and memoizes it on the tools' content, so a
repeated tool list costs a lookup.

When the model's chat template renders tools itself (``profile.native_tools``), the same
tools, compacted the same way, stay in ``tools`` as JSON Schema for the template to write
in the model's own format (:mod:`.native`); only a ``tool_choice`` sentence, if any,
joins the system prompt.
"""

from __future__ import annotations

import msgspec

from trimkit import Stage, hookimpl
from trimkit.rewrite import appended_system
from .native import native_tools
from .options import TIER_OPTIONS, ToolOptions
from .section import tools_section


def run(state) -> None:
    request = state.request
    if not request.tools:
        return
    if state.profile.native_tools:
        run_native(state)
        return
    section = tools_section(request.tools, request.tool_choice, state.options)
    system = appended_system(request, section.text) if section.text else request.system
    state.request = msgspec.structs.replace(request, system=system, tools=None, tool_choice=None)
    state.carry.tool_names = list(section.tool_names)
    state.removed("tools_dropped", section.dropped_chars)
    state.removed("tool_descriptions", section.description_chars)
    state.removed("tool_parameters", section.parameter_chars)


def run_native(state) -> None:
    request = state.request
    native = native_tools(request.tools, request.tool_choice, state.options)
    system = appended_system(request, native.choice) if native.choice else request.system
    state.request = msgspec.structs.replace(
        request, system=system, tools=list(native.tools) or None, tool_choice=None
    )
    state.carry.tool_names = [tool.name for tool in native.tools]
    state.removed("tools_dropped", native.dropped_chars)
    state.removed("tool_descriptions", native.description_chars)
    state.removed("tool_parameters", native.parameter_chars)


@hookimpl
def trimkit_register_stages():
    return [Stage(name="tools", run=run, order=400, options=ToolOptions, tier_options=TIER_OPTIONS)]
