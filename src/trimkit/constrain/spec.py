"""What a request asks of the model's output, as one typed value: :class:`Constraint`.

The server builds it from the client's request (``tools``, ``tool_choice``,
``output_config.format``) and the settings that turn each kind off; a backend
enforces it the way its engine can: the MLX backend with a grammar
(:func:`trimkit.constrain.lark_grammar`), an upstream engine through its own
``tool_choice`` and structured-output fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

from .dialects import ToolSchema
from .values import Schema

Choice = Literal["auto", "any", "tool", "none"]


@dataclass(frozen=True)
class ConstraintKinds:
    """Which kinds of constraint are applied (the ``constrain_*`` settings).

    ``tool_calls``: a call the model opens on its own (``tool_choice`` auto) must be
    well formed. ``tool_choice``: ``any`` and a named tool force a call from the first
    token, ``none`` forbids one. ``json_output``: ``output_config.format`` is enforced.
    """

    tool_calls: bool = True
    tool_choice: bool = True
    json_output: bool = True


@dataclass(frozen=True)
class Constraint:
    """The shape the output must have.

    ``tools`` are the tools a call may name (the client's names and full input
    schemas); ``choice`` is the client's ``tool_choice`` type and ``name`` the
    tool it names; ``parallel`` allows several calls in one block; ``dialect``
    is the tool-call format the prompt is written in. ``output_schema`` is a JSON
    schema the text must match. ``thinking_open`` says the prompt leaves the
    model inside a ``<think>`` section, which a forced call or JSON then follows.
    """

    tools: tuple[ToolSchema, ...] = ()
    choice: Choice = "auto"
    name: str | None = None
    parallel: bool = True
    dialect: str = "xml"
    output_schema: Schema | None = None
    thinking_open: bool = False
    constrain_auto_calls: bool = True

    @property
    def forced(self) -> bool:
        """A call must come first: ``any``, or a tool named."""
        return bool(self.tools) and self.choice in ("any", "tool")

    @property
    def calls_allowed(self) -> bool:
        """Whether the grammar includes calls at all."""
        if not self.tools or self.choice == "none":
            return False
        return self.forced or self.constrain_auto_calls

    @property
    def callable_tools(self) -> tuple[ToolSchema, ...]:
        """The tools a call may name: the one named, when ``tool_choice`` names one that is offered."""
        if self.choice == "tool":
            named = tuple(t for t in self.tools if t.name == self.name)
            if named:
                return named
        return self.tools

    @property
    def kinds(self) -> list[str]:
        """What this constrains, for logs: ``tool_choice=any``, ``tool_calls``, ``json_output``."""
        out = []
        if self.choice != "auto" and (self.tools or self.choice == "none"):
            out.append(f"tool_choice={self.choice}")
        elif self.calls_allowed:
            out.append("tool_calls")
        if self.output_schema is not None:
            out.append("json_output")
        return out

    def key(self) -> tuple[Any, ...]:
        """Everything the grammar depends on, as plain data (for caches)."""
        return (
            self.dialect,
            self.choice,
            self.name if self.choice == "tool" else None,
            self.parallel,
            self.thinking_open,
            self.constrain_auto_calls,
            self.output_schema,
            [(t.name, t.schema) for t in self.tools],
        )


def constraint_for(
    tools: Sequence[Any] | None,
    tool_choice: Any,
    output_schema: Schema | None,
    *,
    shown: Sequence[str] | None = None,
    kinds: ConstraintKinds = ConstraintKinds(),
    dialect: str = "xml",
    thinking_open: bool = False,
) -> Constraint | None:
    """The constraint for a request, or None when there is nothing to constrain.

    ``tools`` and ``tool_choice`` are the client's (``wire.Tool`` and
    ``wire.ToolChoice``); ``shown`` the names the prompt teaches the model (a
    call may name only those; None: all). Tools without an input schema
    (server tools such as web search) are never callable by the model. A named
    tool that is not offered counts as ``any``, as in the prompt.
    """
    choice: Choice = getattr(tool_choice, "type", None) or "auto"
    name = getattr(tool_choice, "name", None)
    declared = [tool for tool in tools or () if tool.type in (None, "custom")]
    visible = tuple(
        ToolSchema(tool.name, tool.input_schema) for tool in declared if shown is None or tool.name in shown
    )
    if choice == "tool" and name not in {t.name for t in visible}:
        choice = "any"
    if choice != "auto" and not kinds.tool_choice:
        choice = "auto"
    if choice == "none" and not declared:
        choice = "auto"  # nothing the model could call
    constraint = Constraint(
        tools=() if choice == "none" else visible,
        choice=choice if visible or choice == "none" else "auto",
        name=name if choice == "tool" else None,
        parallel=not getattr(tool_choice, "disable_parallel_tool_use", False),
        dialect=dialect,
        output_schema=output_schema if kinds.json_output else None,
        thinking_open=thinking_open,
        constrain_auto_calls=kinds.tool_calls,
    )
    if constraint.kinds:
        return constraint
    return None
