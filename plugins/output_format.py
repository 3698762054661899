"""The output_format stage: teach a requested JSON output format in the prompt.

Clients ask for structured output with ``output_config.format`` (Claude Code's
title request sends ``{"type": "json_schema", "schema": {...}}``). This stage
states the schema in the system prompt, so the model knows what to write; on the
MLX backend a grammar also holds the output to the schema (:mod:`trimkit.constrain`),
and an upstream engine gets it as its structured-output field, but a model that
was told the schema writes better JSON than one that is only held to it.
Requests without a format pass through unchanged.
"""

from __future__ import annotations

import msgspec

from trimkit import Stage, hookimpl
from trimkit.rewrite import appended_system
from trimkit.wire import output_schema

INSTRUCTION = (
    "Reply with a single JSON object that matches this JSON Schema, and nothing else: "
    "no prose before or after it, no code fences."
)


def run(state) -> None:
    schema = output_schema(state.request)
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
