"""Qwen3-Coder and Qwen3.5+: ``<tool_call>\\n<function=X>\\n<parameter=k>\\nv\\n</parameter>\\n</function>\\n</tool_call>``."""

from __future__ import annotations

from typing import Sequence

from .base import CONVENTION_OPENERS, CallGrammar, Marks, ToolSchema, literal, need_tools, raw_arguments
from .hermes import TOOL_CALL, TOOL_CALL_END

VALUE_END = "\n</parameter>"
CLOSERS = ("</parameter>", "</function>", TOOL_CALL_END)


class Qwen3Coder(CallGrammar):
    name = "qwen3_coder"
    opener = TOOL_CALL
    avoid = (*CONVENTION_OPENERS, "<function=")
    markers = (TOOL_CALL_END,)

    def rules(self, tools: Sequence[ToolSchema], parallel: bool, marks: Marks) -> str:
        """One ``<parameter=k>`` per argument, in the schema's order, each value on its own lines."""
        need_tools(tools)
        lines, names = [], []
        for i, tool in enumerate(tools):
            args, params = raw_arguments(f"q{i}", tool, marks, VALUE_END, CLOSERS,
                                         lambda name: literal(f"<parameter={name}>\n"), ' "\\n"')
            lines += [*args, f"q{i}: {literal(tool.name + '>' + chr(10))} {params} {literal('</function>' + chr(10))}"]
            names.append(f"q{i}")
        lines.append(f"qcall: {literal('<function=')} ({' | '.join(names)}) {marks(TOOL_CALL_END)}")
        more = f" ({marks.seq(chr(10), TOOL_CALL, chr(10))} qcall)*" if parallel else ""
        lines.append(f'calls: "\\n" qcall{more}')
        return "\n".join(lines)


QWEN3_CODER = Qwen3Coder()
