"""The server's own pipeline plugin: its settings and its backend reach the budget through the hooks.

The server decides nothing about token counts itself. Its overrides go where any
plugin's would: ``--tier``, ``--context-window`` and whether tools go through the
model's own template (``convention``) into the profile (``trimkit_prepare_profile``), ``max_output_tokens`` into the budget stage's options
(``trimkit_extra_options``, under the ``[stages.budget]`` table). The backend is
offered to the budget stage as two questions on the profile: how many tokens a
trimmed prompt really is (``count_prompt``) and how much of it the backend's
prefix cache already holds (``cached_prefix``); and the server keeps the budget's
recent cut points (``recent_cuts``), so a cut made for the prefill target stays
where the backend's cache holds it. The budget stage then fits the request and
chooses ``max_tokens`` in one run of the pipeline.

The backend tokenizes the rendered prompt (and only the pieces of it it has not
seen); the pipeline's report estimates its figures from characters
(``exact_report``), since tokenizing each stage's version of an 88 KB request
would cost more than the prompt's own tokenization.
"""

from __future__ import annotations

from typing import Any

from ..backends.base import Backend
from ..config.settings import ServerSettings
from ..hookspecs import hookimpl
from ..profile import ModelProfile, RecentCuts
from ..render import chat_for


class ServerPlugin:
    """Registered on the server's pipeline by :class:`~trimkit.server.messages.MessageService`."""

    def __init__(self, settings: ServerSettings, backend: Backend):
        self.settings = settings
        self.backend = backend
        self.recent_cuts = RecentCuts()

    def native_tools(self) -> bool:
        """Whether tools go through the model's own template (``convention``; see docs/config.md)."""
        return self.settings.convention != "xml" and self.backend.renders_tools

    @hookimpl
    def trimkit_prepare_profile(self, profile: ModelProfile) -> None:
        if self.settings.tier:
            profile.tier = self.settings.tier
        if self.settings.context_window:
            profile.context_window = self.settings.context_window
        profile.native_tools = native = self.native_tools()
        profile.count_prompt = lambda request: self.backend.count_tokens(chat_for(request, native))
        profile.cached_prefix = lambda request: self.backend.cached_prefix_tokens(chat_for(request, native))
        profile.recent_cuts = self.recent_cuts
        profile.exact_report = False

    @hookimpl
    def trimkit_extra_options(self) -> dict[str, dict[str, Any]]:
        if self.settings.max_output_tokens:
            return {"budget": {"max_output_tokens": self.settings.max_output_tokens}}
        return {}
