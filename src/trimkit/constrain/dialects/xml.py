"""trimkit's XML convention: ``<function_calls>``, one ``<invoke>`` per call, raw string values.

Layout follows what the renderer writes (:mod:`trimkit.convention`): a model sees
its earlier calls in exactly this form, and a constrained model writes its new
ones the same way. The ``<invoke>`` rules serve MiniMax-M2 too.
"""

from __future__ import annotations

from typing import Sequence

from ... import convention
from .base import CONVENTION_OPENERS, PREFIX, QWEN_OPENERS, CallGrammar, Marks, ToolSchema, literal, need_tools, \
    raw_arguments

VALUE_END = "</parameter>"
CLOSERS = (VALUE_END, f"</{PREFIX}parameter>")
"""What ends a value for the reader (with and without the prefix): no value may hold either."""


def invoke_rules(tools: Sequence[ToolSchema], marks: Marks, prefix: str = "t") -> list[str]:
    """Rules defining ``invoke``: one ``<invoke name="…">`` element to one of ``tools``, then a newline.

    Arguments come in the schema's order, each required one present, each on its
    own line; their rule names start with ``prefix``.
    """
    need_tools(tools)
    lines, names = [], []
    for i, tool in enumerate(tools):
        args, params = raw_arguments(
            f"{prefix}{i}", tool, marks, VALUE_END, CLOSERS,
            lambda name: literal(f'<parameter name="{convention.quote_attr(name)}">'), ' "\\n"',
        )
        head = literal(f'{convention.quote_attr(tool.name)}">\n')
        lines += [*args, f"{prefix}{i}: {head} {params} {literal('</invoke>' + chr(10))}"]
        names.append(f"{prefix}{i}")
    lines.append(f"invoke: {literal('<invoke name=' + chr(34))} ({' | '.join(names)})")
    return lines


class Xml(CallGrammar):
    name = "xml"
    opener = convention.CALLS_OPEN
    avoid = (*CONVENTION_OPENERS[1:], *QWEN_OPENERS)

    def rules(self, tools: Sequence[ToolSchema], parallel: bool, marks: Marks) -> str:
        lines = invoke_rules(tools, marks)
        # Each literal ends where the next may begin with something else: the engine's
        # lexer does not back up, so "\n" then "\n</function_calls>" would never end a call.
        lines.append(f'calls: "\\n" invoke{"+" if parallel else ""} {literal(convention.CALLS_CLOSE)}')
        return "\n".join(lines)


XML = Xml()
