"""trimkit's plugin API: every hook a plugin may implement.

A plugin is any module or object with functions decorated by ``trimkit.hookimpl``
whose names match the specs below. Plugins are found three ways:

* the built-in stages in ``plugins/``, each registered under its stage name
  (``client_noise``, ``system_prompt``, ``reminders``, ``tools``,
  ``output_format``, ``budget``);
* modules named by an entry point in the ``trimkit`` group of an installed package;
* objects passed to ``Pipeline(plugins=[...])``.

How stages run
--------------
pluggy calls every implementation of a hook, newest registration first, and
collects their return values in a list; it never feeds one result into the next.
So trimkit does not use the hook call itself as the pipeline. Instead each plugin
*declares* its stages through :func:`trimkit_register_stages`, and the pipeline
orders them explicitly: by ``stages.order`` in the configuration when it is set,
otherwise by each stage's ``order`` number (built-ins use 100, 200, ... 900;
a third-party stage defaults to 500). Each stage then gets the same
:class:`~trimkit.stage.TrimState` in turn and hands over to the next by changing
it: ``state.request`` is the request so far and ``state.carry`` holds facts one
stage leaves for a later one.

Options
-------
A stage declares its options as a frozen :class:`msgspec.Struct` type in
``Stage(options=...)``, with per-tier defaults in ``tier_options``::

    class HouseRuleOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
        rule: str = "Answer in English."
        max_rules: Annotated[int, msgspec.Meta(ge=0)] = 3

    Stage(name="house_rules", run=run, options=HouseRuleOptions,
          tier_options={"small": HouseRuleOptions(max_rules=1)})

The pipeline merges the stage's defaults, its tier's defaults,
:func:`trimkit_extra_options` and the ``[stages.house_rules]`` tables, then converts
the result to the Struct for every tier *when it is built*: a wrong type, a value
out of range or an unknown key is a :class:`~trimkit.stage.ConfigError` naming the
key (``stages.house_rules.max_rules: expected `int` >= 0``) before any request. The
stage reads ``state.options.max_rules``; the instance is shared and frozen.
:mod:`trimkit.options` has the details (checks across fields in ``__post_init__``).

A plain dict of defaults is still accepted in ``options``, so stages written before
typed options keep working: their keys are checked, their values are not, and
each run gets a fresh copy. New stages should declare a Struct.

Running one stage
-----------------
:meth:`Pipeline.run_stage(name, request, profile, options=...)
<trimkit.pipeline.Pipeline.run_stage>` runs a single stage exactly as a trim would
(its options for the profile's tier, a fresh state, the same measuring, the
profile after :func:`trimkit_prepare_profile`) and returns a
:class:`~trimkit.stage.TrimResult` whose report has that one stage. It is how a
stage is tested, built-in or not.

Replacing a stage
-----------------
Block the built-in plugin by its name and register one that provides a stage of
the same name::

    pipeline = Pipeline(block=["reminders"], plugins=[MyReminders()])

Or disable a stage without replacing it: ``stages.disabled = ["reminders"]``.

What a stage may import
-----------------------
The built-in stages are written on the public library only, as a third-party
stage would be: ``trimkit`` itself, :mod:`trimkit.wire` (the request's Structs),
:mod:`trimkit.rewrite` (editing text and the system prompt), :mod:`trimkit.convention`,
:mod:`trimkit.render`, :mod:`trimkit.measure`, :mod:`trimkit.templates` and
:mod:`trimkit.agent_context` (the environment and the agents' own lines, in any form).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .stage import Stage, TrimResult
    from .profile import ModelProfile

PROJECT = "trimkit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def trimkit_register_stages() -> "list[Stage]":
    """Return the pipeline stages this plugin provides.

    Each :class:`~trimkit.stage.Stage` has a unique ``name``, a ``run(state)``
    callable, an ``options`` Struct type (set per stage from the configuration
    table ``[stages.NAME]``, see *Options* above) and an ``order`` number. A stage
    whose name is already taken by another plugin is an error, so a replacement
    must block the plugin it replaces.
    """


@hookspec
def trimkit_prepare_profile(profile: "ModelProfile") -> None:
    """Adjust the model profile before a request is trimmed.

    Called once per :meth:`Pipeline.trim` with the profile the caller passed
    (a copy: changes stay within this trim). Use it to override the tier or the
    context window for particular model names.
    """


@hookspec
def trimkit_trimmed(result: "TrimResult") -> None:
    """Called after every trim with the finished :class:`~trimkit.stage.TrimResult`.

    For observers: logging, metrics, captures. The result must not be changed.
    """


@hookspec
def trimkit_extra_options() -> "dict[str, dict[str, Any]]":
    """Return default options for stages by stage name, merged under the configuration.

    Lets a plugin tune a built-in stage (for example the tool allow-list of
    the ``tools`` stage) without replacing it. Later registrations win. Called
    once, when the pipeline is built; the values are checked like the
    configuration's (a bad one is a :class:`~trimkit.stage.ConfigError` naming
    this hook).
    """
