"""Server settings. Every field can come from trimkit.toml, a TRIMKIT_* variable or a flag.

Each field's type carries its range (:data:`Port`, :data:`Seconds`, …), so a value
out of range is refused when the configuration is loaded, with the key's name and
where it was set, rather than failing later inside the server; :meth:`ServerSettings.problems`
checks what a type cannot say (that an upstream is a usable URL).
"""

from __future__ import annotations

import fnmatch
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from ..errors import ConfigError

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
LOOPBACK_NAMES = ["localhost", "*.localhost", "127.0.0.1", "::1"]
"""Host names a server without a key answers to (see ``allowed_hosts``)."""

Port = Annotated[int, Meta(ge=0, le=65535)]
Count = Annotated[int, Meta(ge=1)]
Size = Annotated[int, Meta(ge=0)]
Seconds = Annotated[float, Meta(gt=0, le=1e6)]
Interval = Annotated[float, Meta(ge=0.1, le=1e6)]
"""A repeated action's period: a tenth of a second at least, so no setting can make a busy loop."""
Text = Annotated[str, Meta(min_length=1)]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]

Family = Literal["opus", "sonnet", "haiku"]
FAMILIES: tuple[Family, ...] = ("opus", "sonnet", "haiku")
"""Claude's model families: Claude Code asks for each by an id that contains its name."""


class ModelSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One model of a server that offers several: an entry of ``[[models]]`` in trimkit.toml.

    ``model`` is a directory or a Hugging Face id already in the local cache; ``alias``
    the name clients ask for (by default the directory's or the id's last part), which
    is also its name on ``/v1/models``, ``/health`` and in the logs. Requests for an id
    that contains one of ``families`` (``claude-haiku-4-5`` is ``haiku``) or matches
    one of ``patterns`` come here. A ``pinned`` model is loaded at start and never
    unloaded. ``tier`` and ``context_window`` override the model's own for the pipeline.
    """

    model: Annotated[str, msgspec.Meta(min_length=1)]
    alias: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    families: list[Family] = msgspec.field(default_factory=list)
    patterns: list[str] = msgspec.field(default_factory=list)
    pinned: bool = False
    tier: Literal["small", "medium", "large"] | None = None
    context_window: Annotated[int, msgspec.Meta(ge=1)] | None = None


class ServerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: Text = "127.0.0.1"
    port: Port = 8787
    api_key: str | None = None
    backend: str = "mlx"
    model: str | None = None
    models: list[ModelSettings | str] = msgspec.field(default_factory=list)
    model_dirs: list[str] = msgspec.field(default_factory=list)
    memory_cap: int | str | None = None
    model_idle_ttl: Annotated[float, msgspec.Meta(gt=0)] | None = None
    download: bool = False
    script: str | None = None
    upstream: str | None = None
    upstreams: list[str] = msgspec.field(default_factory=list)
    upstream_model: str | None = None
    upstream_api_key: str | None = None
    upstream_auth: Literal["auto", "bearer", "x-api-key", "both"] = "auto"
    upstream_timeout: Seconds = 300.0
    upstream_connect_timeout: Seconds = 5.0
    upstream_tokenizer: str | None = None
    upstream_concurrency: Count = 4
    max_body_bytes: Count = 32 * 1024 * 1024
    max_queue: Size = 8
    max_output_tokens: Count | None = None
    prompt_cache_bytes: Size = 4 * 1024**3
    prompt_cache_entries: Size = 4
    mlx_memory_limit: Count | None = None
    mlx_cache_limit: Size | None = None
    ping_interval: Interval = 10.0
    quick_titles: bool = False
    model_patterns: list[str] = msgspec.field(default_factory=lambda: ["claude-*"])
    opus_model: str | None = None
    sonnet_model: str | None = None
    haiku_model: str | None = None
    tier: Literal["small", "medium", "large"] | None = None
    context_window: Count | None = None
    convention: Literal["auto", "native", "xml"] = "auto"
    retry_tool_calls: bool = True
    stages: dict[str, Any] = msgspec.field(default_factory=dict)
    constrain_tool_calls: bool = True
    constrain_tool_choice: bool = True
    constrain_json_output: bool = True
    constrain_cache_entries: int = 16
    capture_dir: str | None = None
    capture_keep: Count = 50
    metrics: bool = True
    live_view: bool = True
    live_view_keep: Count = 200
    log_level: LogLevel = "warning"
    header_timeout: Seconds = 10.0
    body_timeout: Seconds = 60.0
    write_timeout: Seconds = 60.0
    idle_timeout: Annotated[float, Meta(ge=1, le=1e6)] = 5.0
    max_connections: Count = 128
    allowed_hosts: list[str] = msgspec.field(default_factory=lambda: list(LOOPBACK_NAMES))

    def problems(self) -> list[tuple[str, str]]:
        """``(key, what is wrong)`` for each value its type cannot check."""
        found = []
        for key, url in [("upstream", self.upstream), *(("upstreams", u) for u in self.upstreams)]:
            if url is not None and (problem := url_problem(url)):
                found.append((key, f"{url!r} {problem}"))
        return found

    def check_bind(self) -> None:
        """Refuse to listen beyond loopback without an API key."""
        if self.host not in LOOPBACK_HOSTS and not self.api_key:
            raise ConfigError(
                f"refusing to listen on {self.host} without an API key: "
                "set --api-key (or TRIMKIT_API_KEY), or bind 127.0.0.1",
                key="host",
            )

    def accepts_model(self, requested: str, served: set[str]) -> bool:
        """Whether a requested model id maps to the loaded model."""
        if requested in served:
            return True
        lowered = requested.lower()
        for family in ("opus", "sonnet", "haiku"):
            if family in lowered:
                target = getattr(self, f"{family}_model")
                if target is not None:
                    return target in served or target == "*"
        return any(fnmatch.fnmatchcase(requested, pattern) for pattern in self.model_patterns)


def url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as an engine's base URL, or None."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # raises for a port that is not a number or out of range
    except ValueError as exc:
        return f"is not a valid URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "is not an http:// or https:// URL"
    if not parts.hostname:
        return "names no host"
    return None
