"""The tool-calling convention trimkit teaches a model, in one place.

The tools stage teaches it in the system prompt, the renderer writes earlier
``tool_use``/``tool_result`` turns in it, and the response parser reads it back,
so all three agree by construction. It is the XML form that Anthropic models
were trained on and that most open models follow well::

    <function_calls>
    <invoke name="Write">
    <parameter name="file_path">/tmp/hello.txt</parameter>
    <parameter name="content">hello world</parameter>
    </invoke>
    </function_calls>

String values are written raw; every other value as compact JSON. Names in
attributes have ``&``, ``<`` and ``"`` escaped (:func:`quote_attr`); a reader undoes
that with :func:`unquote_attr`, the one inverse, which also reads the other XML
entities a model may write (``&gt;``, ``&apos;``, ``&#39;``). Names of real clients
contain none of them, so they appear exactly as declared.
"""

from __future__ import annotations

from typing import Any

import msgspec

CALLS_OPEN = "<function_calls>"
CALLS_CLOSE = "</function_calls>"
RESULTS_OPEN = "<function_results>"
RESULTS_CLOSE = "</function_results>"


def quote_attr(value: str) -> str:
    """An attribute value with ``&``, ``<`` and ``"`` escaped."""
    if "&" in value or "<" in value or '"' in value:
        return value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    return value


_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&#39;", "'"))


def unquote_attr(value: str) -> str:
    """The inverse of :func:`quote_attr`; ``&amp;`` is undone last, so ``&amp;lt;`` reads ``&lt;``."""
    if "&" not in value:
        return value
    for entity, char in _ENTITIES:
        value = value.replace(entity, char)
    return value.replace("&amp;", "&")


def format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def format_invoke(name: str, arguments: dict[str, Any]) -> str:
    params = "".join(
        f'<parameter name="{quote_attr(key)}">{format_value(value)}</parameter>\n'
        for key, value in arguments.items()
    )
    return f'<invoke name="{quote_attr(name)}">\n{params}</invoke>'


def format_calls(calls: list[tuple[str, dict[str, Any]]]) -> str:
    """One ``<function_calls>`` block holding every call of an assistant turn."""
    body = "\n".join(format_invoke(name, args if isinstance(args, dict) else {}) for name, args in calls)
    return f"{CALLS_OPEN}\n{body}\n{CALLS_CLOSE}"


def format_result(name: str, content: str, is_error: bool = False) -> str:
    tag = "error" if is_error else "result"
    return f'<{tag} name="{quote_attr(name)}">\n{content}\n</{tag}>'


def format_results(results: list[tuple[str, str, bool]]) -> str:
    """One ``<function_results>`` block holding the results of a user turn."""
    body = "\n".join(format_result(name, content, err) for name, content, err in results)
    return f"{RESULTS_OPEN}\n{body}\n{RESULTS_CLOSE}"


EXAMPLE_CALL = format_calls([("TOOL_NAME", {"PARAMETER_NAME": "value"})])
