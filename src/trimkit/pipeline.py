"""The pipeline: find stages through pluggy, order them, run them, report.

Configuration (a mapping, usually the ``[stages]`` table of ``trimkit.toml``)::

    order = ["client_noise", "system_prompt", "reminders", "tools", "budget"]
    disabled = ["reminders"]

    [tools]                 # options of one stage, for every tier
    allow = ["Read", "Bash"]

    [tools.small]           # options of one stage for one tier
    allow = ["Read"]

Options merge in this order, later winning: the stage's defaults, its per-tier
defaults, ``trimkit_extra_options`` from plugins, the stage's table, the stage's
tier table. Options whose value is a table merge one level deep.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Iterable, Mapping

import pluggy

from . import hookspecs
from .profile import TIERS, ModelProfile
from .measure import Measure
from .resources import builtin_plugins
from .stage import ConfigError, Size, Stage, StageReport, TrimReport, TrimResult, TrimState
from .wire import MessagesRequest, decode_request

RESERVED_KEYS = {"order", "disabled"}


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


class Pipeline:
    """An ordered set of stages built from plugins and configuration.

    ``plugins`` are registered after the built-ins and entry points; ``block``
    names plugins (built-in stage names or entry-point names) not to register.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        plugins: Iterable[object] = (),
        block: Iterable[str] = (),
        entry_points: bool = True,
        builtins: bool = True,
    ):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        for name in block:
            self.pm.set_blocked(name)
        if builtins:
            for name, module in builtin_plugins():
                if not self.pm.is_blocked(name):
                    self.pm.register(module, name=name)
        if entry_points:
            self.pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        for plugin in plugins:
            self.pm.register(plugin)
        self.config = dict(config or {})
        self.stages = self._resolve_stages()
        self._options_cache: dict[tuple[str, str], dict[str, Any]] = {}

    # ------------------------------------------------------------------ setup

    def _resolve_stages(self) -> list[Stage]:
        found: dict[str, Stage] = {}
        for stages in self.pm.hook.trimkit_register_stages():
            for stage in stages or ():
                if stage.name in found:
                    raise ConfigError(
                        f"two plugins provide a stage named {stage.name!r}; block one of them"
                    )
                found[stage.name] = stage
        for key in RESERVED_KEYS:
            if isinstance(self.config.get(key), (str, Mapping)):
                raise ConfigError(f"stages.{key} must be a list of stage names", key=f"stages.{key}")
        order = self.config.get("order")
        if order is not None:
            unknown = [name for name in order if name not in found]
            if unknown:
                raise ConfigError(f"stages.order names unknown stage(s): {', '.join(unknown)}", key="stages.order")
            repeated = sorted({name for name in order if order.count(name) > 1})
            if repeated:
                raise ConfigError(f"stages.order names {', '.join(map(repr, repeated))} twice", key="stages.order")
            chosen = [found[name] for name in order]
        else:
            chosen = sorted(found.values(), key=lambda s: (s.order, s.name))
        disabled = set(self.config.get("disabled") or ())
        unknown = disabled - set(found)
        if unknown:
            raise ConfigError(
                f"stages.disabled names unknown stage(s): {', '.join(sorted(unknown))}", key="stages.disabled"
            )
        for key in self.config:
            if key not in RESERVED_KEYS and key not in found:
                raise ConfigError(f"stages.{key}: no stage of that name", key=f"stages.{key}")
        for stage in found.values():
            self._check_options(stage)
        return [s for s in chosen if s.name not in disabled]

    def _check_options(self, stage: Stage) -> None:
        known = set(stage.options).union(*(set(v) for v in stage.tier_options.values()))
        table = self.config.get(stage.name) or {}
        if not isinstance(table, Mapping):
            raise ConfigError(f"stages.{stage.name} must be a table", key=f"stages.{stage.name}")
        for key, value in table.items():
            if key in TIERS and isinstance(value, Mapping):
                for sub in value:
                    if sub not in known:
                        path = f"stages.{stage.name}.{key}.{sub}"
                        raise ConfigError(f"{path}: unknown option", key=path)
            elif key not in known:
                raise ConfigError(f"stages.{stage.name}.{key}: unknown option", key=f"stages.{stage.name}.{key}")

    def options_for(self, stage: Stage, tier: str) -> dict[str, Any]:
        cached = self._options_cache.get((stage.name, tier))
        if cached is not None:
            return cached
        options = _merge(dict(stage.options), stage.tier_options.get(tier, {}))
        for extra in reversed(self.pm.hook.trimkit_extra_options()):  # pluggy answers newest first
            if extra and stage.name in extra:
                options = _merge(options, extra[stage.name])
        table = self.config.get(stage.name) or {}
        options = _merge(options, {k: v for k, v in table.items() if k not in TIERS})
        options = _merge(options, table.get(tier) or {})
        self._options_cache[(stage.name, tier)] = options
        return options

    # ------------------------------------------------------------------ running

    def trim(
        self,
        request: MessagesRequest | Mapping[str, Any] | bytes | str,
        profile: ModelProfile | None = None,
        *,
        cached_tokens: int = 0,
    ) -> TrimResult:
        """Run every stage on ``request``; the input is never modified."""
        original = decode_request(request)  # type: ignore[arg-type]
        profile = replace(profile) if profile is not None else ModelProfile.for_tier("medium")
        self.pm.hook.trimkit_prepare_profile(profile=profile)
        measure = Measure(profile)
        state = TrimState(request=original, profile=profile, cached_tokens=cached_tokens, measure=measure)

        before = Size(*measure.request(original))
        chars, tokens = before.chars, before.tokens
        reports: list[StageReport] = []
        for stage in self.stages:
            state.options = dict(self.options_for(stage, profile.tier))  # a stage may not change the shared one
            state._removed = {}
            started = time.perf_counter()
            stage.run(state)
            ms = (time.perf_counter() - started) * 1000
            new_chars, new_tokens = measure.request(state.request)
            reports.append(
                StageReport(
                    name=stage.name,
                    chars_before=chars,
                    chars_after=new_chars,
                    tokens_before=tokens,
                    tokens_after=new_tokens,
                    ms=round(ms, 4),
                    removed=dict(state._removed),
                )
            )
            chars, tokens = new_chars, new_tokens
        report = TrimReport(
            before=before,
            after=Size(chars, tokens),
            stages=reports,
            tier=profile.tier,
            exact_tokens=profile.exact_counts,
        )
        result = TrimResult(
            request=state.request, report=report, original=original, profile=profile, carry=state.carry
        )
        self.pm.hook.trimkit_trimmed(result=result)
        return result


_default: Pipeline | None = None


def default_pipeline() -> Pipeline:
    global _default
    if _default is None:
        _default = Pipeline()
    return _default


def trim(
    request: MessagesRequest | Mapping[str, Any] | bytes | str,
    profile: ModelProfile | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    cached_tokens: int = 0,
) -> TrimResult:
    """Trim one request with the built-in stages (and any from entry points).

    With ``config``, a new :class:`Pipeline` is built for this call; keep a
    ``Pipeline`` yourself to trim many requests with one configuration.
    """
    pipeline = Pipeline(config) if config is not None else default_pipeline()
    return pipeline.trim(request, profile, cached_tokens=cached_tokens)
