"""The ``<tools>`` listing a model reads, one ``<tool>`` element per tool::

    <tools>
    <tool name="Read">
    Reads a file from the local filesystem.
    <parameter name="file_path" type="string" required="true">The absolute path to the file to read</parameter>
    <parameter name="limit" type="number">The number of lines to read.</parameter>
    </tool>
    </tools>

Tool and parameter names are the client's, character for character. In attribute
values ``&``, ``<`` and ``"`` are escaped by :func:`trimkit.convention.quote_attr` (the
convention escapes names in ``<invoke>`` the same way, and a response parser undoes it
with :func:`trimkit.convention.unquote_attr`); names of real clients never contain them.
Element text (descriptions) is written raw: only a model reads it, and entities would
cost tokens and read worse.

What every parameter shown has in common is said once instead of on each one
(:class:`Implied`): with only required parameters shown (as on the small tier) none is
marked ``required="true"``, and when all are strings none has ``type="string"``.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple, Sequence

import msgspec

from trimkit import convention
from trimkit.convention import quote_attr
from .compact import CompactParameter, CompactTool


def _enum_attr(values: tuple[Any, ...]) -> str:
    formatted = [convention.format_value(v) for v in values]
    if any("|" in v for v in formatted):
        return msgspec.json.encode(list(values)).decode()
    return "|".join(formatted)


class Implied(NamedTuple):
    """What every parameter shown has in common, said once by the section instead of on
    each ``<parameter>``: all are required (``required="true"`` left out), all are
    strings (``type="string"`` left out)."""

    required: bool = False
    string: bool = False

    @classmethod
    def of(cls, tools: Iterable[CompactTool]) -> "Implied":
        parameters = [p for t in tools for p in t.parameters]
        if not parameters:
            return cls()
        return cls(
            required=all(p.required for p in parameters),
            string=all(p.type == "string" for p in parameters),
        )


def parameter_xml(param: CompactParameter, implied: Implied = Implied()) -> str:
    attrs = f'name="{quote_attr(param.name)}"'
    if not implied.string:
        attrs += f' type="{quote_attr(param.type)}"'
    if param.required and not implied.required:
        attrs += ' required="true"'
    if param.enum:
        attrs += f' enum="{quote_attr(_enum_attr(param.enum))}"'
    if param.default is not None:
        attrs += f' default="{quote_attr(param.default)}"'
    if not param.description:
        return f"<parameter {attrs}/>"
    return f"<parameter {attrs}>{param.description}</parameter>"


def tool_xml(tool: CompactTool, implied: Implied = Implied()) -> str:
    lines = [f'<tool name="{quote_attr(tool.name)}">']
    if tool.description:
        lines.append(tool.description)
    lines.extend(parameter_xml(p, implied) for p in tool.parameters)
    lines.append("</tool>")
    return "\n".join(lines)


def tools_xml(tools: Sequence[CompactTool], implied: Implied = Implied()) -> str:
    """The ``<tools>`` element listing every tool."""
    return "\n".join(["<tools>", *(tool_xml(t, implied) for t in tools), "</tools>"])
