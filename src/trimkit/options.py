"""Stage options: the layers merged, converted to the stage's type and checked, once per tier.

A stage declares its options as a frozen :class:`msgspec.Struct` (the fields, their
types and defaults) and may give per-tier defaults. A pipeline resolves each
stage's options for every tier when it is built, so a bad value is a
:class:`~trimkit.stage.ConfigError` naming its key (``stages.budget.drop_step:
expected `int | float`, got `str```) before any request arrives, and a stage reads
typed attributes (``state.options.drop_step``) instead of looking keys up.

Layers, later winning: the Struct's field defaults, the stage's tier default,
``trimkit_extra_options`` from plugins, the ``[stages.NAME]`` table, the
``[stages.NAME.TIER]`` table. A table value merges one level deep into the table
it replaces (``[stages.reminders.actions]`` changes the actions it names and keeps
the others).

Checks across fields go in the Struct's ``__post_init__``; a ``ValueError`` whose
message starts with a field's name and a colon (``"template: no such template"``) is
reported under that field's key.

A stage may instead give its options as a plain mapping (the defaults) for a
third-party stage written before typed options: unknown keys are still refused at
build time, but values are not checked and the stage gets a fresh ``dict``.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Mapping

import msgspec

from .profile import TIERS
from .errors import ConfigError
from .stage import Stage

_AT = re.compile(r" - at `\$([^`]*)`$")
_STEP = re.compile(r"\.([^.\[]+)|(\[\d+\])")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]+)`")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`")
_FIELD_CHECK = re.compile(r"^([A-Za-z_]\w*): (.+)$", re.S)


def is_typed(stage: Stage) -> bool:
    """Whether the stage declares its options as a Struct type (rather than a plain mapping)."""
    return isinstance(stage.options, type) and issubclass(stage.options, msgspec.Struct)


def known_options(stage: Stage) -> set[str]:
    """The option names a configuration table may set for ``stage``."""
    if is_typed(stage):
        return set(stage.options.__struct_fields__)
    return set(stage.options).union(*(set(_as_mapping(v)) for v in stage.tier_options.values()))


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``: a table merges one level deep into the table it replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _as_mapping(value: Any) -> Mapping[str, Any]:
    return msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value


def check_table(stage: Stage, table: Any) -> None:
    """Refuse a ``[stages.NAME]`` table that is not a table or names options the stage lacks.

    Tier names are reserved: ``[stages.NAME.small]`` is always the small tier's table.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"stages.{stage.name} must be a table", key=f"stages.{stage.name}")
    known = known_options(stage)
    for key, value in table.items():
        path = f"stages.{stage.name}.{key}"
        if key in TIERS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path} must be a table", key=path)
            for sub in value:
                if sub not in known:
                    raise ConfigError(f"{path}.{sub}: unknown option", key=f"{path}.{sub}")
        elif key not in known:
            raise ConfigError(f"{path}: unknown option", key=path)


class Layers:
    """The option layers of one stage for one tier, each with the name it is reported under."""

    def __init__(self, stage: Stage, layers: list[tuple[str, Mapping[str, Any]]]):
        self.stage = stage
        self.layers = layers

    @classmethod
    def of(cls, stage: Stage, tier: str, extras: list[Mapping[str, Any]], table: Mapping[str, Any]) -> "Layers":
        return cls(stage, [
            ("the stage's defaults", {} if is_typed(stage) else stage.options),
            (f"the stage's {tier} defaults", _as_mapping(stage.tier_options.get(tier) or {})),
            *(("a plugin's trimkit_extra_options", extra) for extra in extras),
            (f"stages.{stage.name}", {k: v for k, v in table.items() if k not in TIERS}),
            (f"stages.{stage.name}.{tier}", table.get(tier) or {}),
        ])

    def over(self, options: Mapping[str, Any]) -> "Layers":
        """These layers with ``options`` laid over them, reported as ``stages.NAME`` keys."""
        return Layers(self.stage, [*self.layers, (f"stages.{self.stage.name}", options)])

    def merged(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        for _, layer in self.layers:
            options = merge(options, layer)
        return options

    def key(self, path: list[str]) -> tuple[str, str]:
        """An option's configuration key (the table that set it last, else the stage's) and
        how an error names it (with list indices, and the layer when no table set it)."""
        table = f"stages.{self.stage.name}"
        origin = ""
        for name, layer in reversed(self.layers):
            if path[0] in layer:
                table, origin = (name, "") if name.startswith("stages.") else (table, f" (from {name})")
                break
        key = ".".join([table, *(step for step in path if not step.startswith("["))])
        shown = table + "".join(step if step.startswith("[") else f".{step}" for step in path)
        return key, shown + origin


def resolve(layers: Layers) -> Any:
    """The stage's options for the tier: its Struct, converted and checked, or a plain dict."""
    merged = layers.merged()
    if not is_typed(layers.stage):
        return merged
    try:
        return msgspec.convert(merged, layers.stage.options, strict=True)
    except msgspec.ValidationError as exc:
        key, message = _explain(str(exc), layers)
        raise ConfigError(message, key=key) from None


def handed_to_stage(options: Any) -> Any:
    """What ``state.options`` gets: the shared frozen Struct, or a copy of a plain dict."""
    return copy.deepcopy(options) if isinstance(options, dict) else options


def _explain(message: str, layers: Layers) -> tuple[str, str]:
    """The key a msgspec validation message is about, and the message as ``stages.NAME.KEY: what is wrong``."""
    at = _AT.search(message)
    path = [name or index for name, index in _STEP.findall(at.group(1))] if at else []
    reason = message[: at.start()] if at else message
    if unknown := _UNKNOWN.match(reason):
        path.append(unknown.group(1))
        reason = "unknown option"
    elif missing := _MISSING.match(reason):
        path.append(missing.group(1))
        reason = "required option is missing"
    elif field_check := _FIELD_CHECK.match(reason):
        path.append(field_check.group(1))
        reason = field_check.group(2)
    else:
        reason = reason[:1].lower() + reason[1:]
    if not path:
        return f"stages.{layers.stage.name}", f"stages.{layers.stage.name}: {reason}"
    key, shown = layers.key(path)
    return key, f"{shown}: {reason}"
