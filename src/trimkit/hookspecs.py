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

Replacing a stage
-----------------
Block the built-in plugin by its name and register one that provides a stage of
the same name::

    pipeline = Pipeline(block=["reminders"], plugins=[MyReminders()])

Or disable a stage without replacing it: ``stages.disabled = ["reminders"]``.
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
    callable, default ``options`` (overridden per stage from the configuration
    table ``[stages.NAME]``) and an ``order`` number. A stage whose name is
    already taken by another plugin is an error, so a replacement must block
    the plugin it replaces.
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
    the ``tools`` stage) without replacing it. Later registrations win.
    """
