"""A constraint in the request fields of the engines trimkit forwards to.

An upstream engine renders the prompt it is sent and has its own constrained
decoding, reached through its API's fields. trimkit sends the tools in the
system prompt as text, so nothing constrains an engine's output unless the
request says so: these functions give the fields to add.

* OpenAI-compatible (vLLM, SGLang, llama.cpp's server): ``tool_choice``
  ``"required"`` or a named function, with the tools as ``tools`` (the engine
  then returns ``tool_calls``, which trimkit reads back like the model's text);
  ``response_format`` of type ``json_schema`` for JSON output.
* Anthropic-compatible (another trimkit, vLLM's ``/v1/messages``): ``tools``
  with ``tool_choice`` ``any`` or ``tool``; ``output_config.format`` for JSON.

``tool_choice: auto`` and ``none`` add nothing: the engine sees no tools and
writes text, and the prompt already says what to do. Engines that ignore these
fields (Ollama, ``mlx_lm.server``) answer as before.
"""

from __future__ import annotations

from typing import Any

from .spec import Constraint


def openai_fields(constraint: Constraint | None) -> dict[str, Any]:
    """``tools``/``tool_choice``/``parallel_tool_calls`` or ``response_format`` for ``/v1/chat/completions``."""
    if constraint is None:
        return {}
    if constraint.forced:
        tools = constraint.callable_tools
        choice: Any = "required"
        if constraint.choice == "tool":
            choice = {"type": "function", "function": {"name": tools[0].name}}
        return {
            "tools": [{"type": "function", "function": {"name": t.name, "parameters": t.schema}} for t in tools],
            "tool_choice": choice,
            "parallel_tool_calls": constraint.parallel,
        }
    if constraint.output_schema is not None:
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": constraint.output_schema, "strict": True},
            }
        }
    return {}


def anthropic_fields(constraint: Constraint | None) -> dict[str, Any]:
    """``tools``/``tool_choice`` or ``output_config`` for ``/v1/messages``."""
    if constraint is None:
        return {}
    if constraint.forced:
        tools = constraint.callable_tools
        choice: dict[str, Any] = {"type": "any"}
        if constraint.choice == "tool":
            choice = {"type": "tool", "name": tools[0].name}
        if not constraint.parallel:
            choice["disable_parallel_tool_use"] = True
        return {"tools": [{"name": t.name, "input_schema": t.schema} for t in tools], "tool_choice": choice}
    if constraint.output_schema is not None:
        return {"output_config": {"format": {"type": "json_schema", "schema": constraint.output_schema}}}
    return {}
