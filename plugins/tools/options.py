"""The tools stage's options: how to choose and compact tools."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple


class ToolOptions(NamedTuple):
    """How to choose and compact tools; the ``tools`` stage's options, typed.

    ``allow`` and ``deny`` are names or ``fnmatch`` patterns, matched case-sensitively.
    A negative ``max_optional_parameters`` keeps every optional parameter.
    ``drop_restating_descriptions`` leaves out parameter descriptions that only repeat
    the names and the tool description (see :func:`restates`).
    """

    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()
    max_description_chars: int = 1500
    max_parameter_description_chars: int = 200
    max_optional_parameters: int = -1
    include_examples: bool = True
    drop_restating_descriptions: bool = False

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> "ToolOptions":
        base = cls()
        return cls(
            allow=_names(options.get("allow", base.allow)),
            deny=_names(options.get("deny", base.deny)),
            max_description_chars=int(options.get("max_description_chars", base.max_description_chars)),
            max_parameter_description_chars=int(
                options.get("max_parameter_description_chars", base.max_parameter_description_chars)
            ),
            max_optional_parameters=int(
                options.get("max_optional_parameters", base.max_optional_parameters)
            ),
            include_examples=bool(options.get("include_examples", base.include_examples)),
            drop_restating_descriptions=bool(
                options.get("drop_restating_descriptions", base.drop_restating_descriptions)
            ),
        )


def _names(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)
