"""GLM-4.5 to 4.7: ``<tool_call>X<arg_key>k</arg_key><arg_value>v</arg_value>…</tool_call>``.

Written as GLM-4.7's template writes calls, without separators; string values raw,
others as JSON (the reader types them by the schema). The turn ends after the last
call with ``<|observation|>``, an end-of-turn token.
"""

from __future__ import annotations

from typing import Sequence

from .base import CONVENTION_OPENERS, CallGrammar, Marks, ToolSchema, literal, need_tools, raw_arguments
from .hermes import TOOL_CALL, TOOL_CALL_END

ARG_KEY, ARG_KEY_END, ARG_VALUE, ARG_VALUE_END = "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>"


class Glm47(CallGrammar):
    name = "glm47"
    opener = TOOL_CALL
    avoid = (*CONVENTION_OPENERS, "<function=")
    markers = (TOOL_CALL_END, ARG_KEY, ARG_KEY_END, ARG_VALUE, ARG_VALUE_END)

    def rules(self, tools: Sequence[ToolSchema], parallel: bool, marks: Marks) -> str:
        need_tools(tools)
        lines, names = [], []
        for i, tool in enumerate(tools):
            args, params = raw_arguments(f"g{i}", tool, marks, ARG_VALUE_END, (ARG_VALUE_END,),
                                         lambda name: marks.seq(ARG_KEY, name, ARG_KEY_END, ARG_VALUE))
            lines += [*args, f"g{i}: {literal(tool.name)} {params}"]
            names.append(f"g{i}")
        lines.append(f"gcall: ({' | '.join(names)}) {marks(TOOL_CALL_END)}")
        lines.append(f"calls: gcall{f' ({marks(TOOL_CALL)} gcall)*' if parallel else ''}")
        return "\n".join(lines)


GLM47 = Glm47()
