"""The output_format stage: teach a requested JSON output format in the prompt.

Clients ask for structured output with ``output_config.format`` (Claude Code's
title request sends ``{"type": "json_schema", "schema": {...}}``). A local model
has no constrained decoding behind that field, so this stage states the schema in
the system prompt instead. Requests without a format pass through unchanged.
"""

from __future__ import annotations

from typing import Any

import msgspec

from trimkit import Stage, hookimpl
from trimkit.rewrite import appended_system

INSTRUCTION = (
    "Reply with a single JSON object that matches this JSON Schema, and nothing else: "
    "no prose before or after it, no code fences."
)


def requested_schema(output_config: Any) -> dict | None:
    if not isinstance(output_config, dict):
        return None
    fmt = output_config.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return fmt["schema"]
    return None


def run(state) -> None:
    schema = requested_schema(state.request.output_config)
    if schema is None:
        return
    text = f"{INSTRUCTION}\n{msgspec.json.encode(schema).decode()}"
    state.request = msgspec.structs.replace(state.request, system=appended_system(state.request, text))


@hookimpl
def trimkit_register_stages():
    return [
        Stage(
            name="output_format",
            run=run,
            order=450,
        )
    ]
