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
tier table. Options whose value is a table merge one level deep. Every stage's
options are converted to its options Struct and checked for every tier when the
pipeline is built (:mod:`trimkit.options`): a bad value is a :class:`ConfigError`
then, never during a trim.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Iterable, Mapping

import pluggy

from . import hookspecs
from .options import Layers, check_table, handed_to_stage, resolve
from .profile import TIERS, ModelProfile
from .measure import Measure
from .resources import builtin_plugins
from .stage import ConfigError, Size, Stage, StageReport, TrimReport, TrimResult, TrimState
from .wire import MessagesRequest, decode_request

RESERVED_KEYS = {"order", "disabled"}


def _laid_over(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``top``'s values, tables in both merged the same way, anything else replaced."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        merged[key] = _laid_over(below, value) if isinstance(below, Mapping) and isinstance(value, Mapping) else value
    return merged


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
        self._built_with = {"plugins": list(plugins), "block": list(block), "entry_points": entry_points,
                            "builtins": builtins}
        for plugin in self._built_with["plugins"]:
            self.pm.register(plugin)
        self.config = dict(config or {})
        self.stages = self._resolve_stages()

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
        self._found = found
        self._layers = self._option_layers(found.values())
        self._options = {key: resolve(layers) for key, layers in self._layers.items()}
        return [s for s in chosen if s.name not in disabled]

    def _option_layers(self, stages: Iterable[Stage]) -> dict[tuple[str, str], Layers]:
        """Each stage's option layers for every tier; plugins' extra options are asked once, here."""
        extras = [e for e in reversed(self.pm.hook.trimkit_extra_options()) if e]  # pluggy answers newest first
        layers = {}
        for stage in stages:
            table = self.config.get(stage.name) or {}
            check_table(stage, table)
            mine = [extra[stage.name] for extra in extras if stage.name in extra]
            if not all(isinstance(options, Mapping) for options in mine):
                raise ConfigError(
                    f"trimkit_extra_options: the options of {stage.name!r} must be a table", key=f"stages.{stage.name}"
                )
            for tier in TIERS:
                layers[(stage.name, tier)] = Layers.of(stage, tier, mine, table)
        return layers

    def with_plugins(self, *plugins: object, config: Mapping[str, Any] | None = None) -> "Pipeline":
        """A new pipeline built as this one was, with ``plugins`` registered after its own.

        For a caller that adds hooks to a pipeline it was handed (the server adds
        its own plugin, and its ``[stages]`` settings as ``config``); this one is left
        as it is. ``config`` is laid over this pipeline's configuration, tables merged
        key by key, so options given in either place apply.
        """
        built = self._built_with
        return Pipeline(_laid_over(self.config, config or {}), plugins=[*built["plugins"], *plugins],
                        block=built["block"], entry_points=built["entry_points"], builtins=built["builtins"])

    def options_for(self, stage: Stage | str, tier: str) -> Any:
        """A stage's options for a tier, as its options Struct (or a dict for an untyped stage)."""
        return self._options[(stage if isinstance(stage, str) else stage.name, tier)]

    # ------------------------------------------------------------------ running

    def profile_for(self, profile: ModelProfile | None = None) -> ModelProfile:
        """The profile a trim works with: a copy of ``profile`` after ``trimkit_prepare_profile``."""
        profile = replace(profile) if profile is not None else ModelProfile.for_tier("medium")
        self.pm.hook.trimkit_prepare_profile(profile=profile)
        return profile

    def trim(
        self,
        request: MessagesRequest | Mapping[str, Any] | bytes | str,
        profile: ModelProfile | None = None,
        *,
        cached_tokens: int = 0,
    ) -> TrimResult:
        """Run every stage on ``request``; the input is never modified."""
        result = self._run(self.stages, request, profile, cached_tokens)
        self.pm.hook.trimkit_trimmed(result=result)
        return result

    def run_stage(
        self,
        name: str,
        request: MessagesRequest | Mapping[str, Any] | bytes | str,
        profile: ModelProfile | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        cached_tokens: int = 0,
    ) -> TrimResult:
        """Run the one stage ``name`` on ``request``, exactly as :meth:`trim` would run it.

        The way to test a stage: it gets the options the configuration gives it for
        the profile's tier (with ``options`` laid over them, checked the same way),
        a fresh :class:`~trimkit.stage.TrimState` and the same measuring; the result
        reports that one stage. A stage left out by ``stages.order`` or
        ``stages.disabled`` can still be run this way. ``trimkit_trimmed`` observers
        are not called: no trim was finished.
        """
        if name not in self._found:
            raise ConfigError(f"no stage named {name!r} (there are {', '.join(sorted(self._found))})", key=name)
        return self._run([self._found[name]], request, profile, cached_tokens, options)

    def _run(
        self,
        stages: list[Stage],
        request: MessagesRequest | Mapping[str, Any] | bytes | str,
        profile: ModelProfile | None,
        cached_tokens: int,
        options: Mapping[str, Any] | None = None,
    ) -> TrimResult:
        original = decode_request(request)  # type: ignore[arg-type]
        profile = self.profile_for(profile)
        measure = Measure(profile, exact=profile.exact_report)
        state = TrimState(request=original, profile=profile, cached_tokens=cached_tokens, measure=measure)

        before = Size(*measure.request(original))
        chars, tokens = before.chars, before.tokens
        reports: list[StageReport] = []
        for stage in stages:
            if options:
                state.options = resolve(self._layers[(stage.name, profile.tier)].over(options))
            else:
                state.options = handed_to_stage(self.options_for(stage, profile.tier))
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
            exact_tokens=profile.exact_counts and profile.exact_report,
        )
        return TrimResult(request=state.request, report=report, original=original, profile=profile, carry=state.carry)


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
