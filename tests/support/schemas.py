"""JSON Schema checks of the arguments and JSON a model wrote under constrained decoding."""

from __future__ import annotations

from typing import Any


def schema_errors(schema: dict, value: Any) -> list[str]:
    """Why ``value`` breaks ``schema`` (Draft 7, formats checked); empty when it fits.

    jsonschema is imported here, not at the top, so test modules that skip without it
    (``pytest.importorskip``) can import this first."""
    import jsonschema

    checker = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    return [error.message for error in checker.iter_errors(value)]
