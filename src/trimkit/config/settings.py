"""Server settings. Every field can come from trimkit.toml, a TRIMKIT_* variable or a flag.

Each field's type carries its range (:data:`Port`, :data:`Seconds`, …), so a value
out of range is refused when the configuration is loaded, with the key's name and
where it was set, rather than failing later inside the server; :meth:`ServerSettings.problems`
checks what a type cannot say (that an upstream is a usable URL).
"""

from __future__ import annotations

import re
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

    model: Text
    alias: Text | None = None
    families: list[Family] = msgspec.field(default_factory=list)
    patterns: list[str] = msgspec.field(default_factory=list)
    pinned: bool = False
    tier: Literal["small", "medium", "large"] | None = None
    context_window: Count | None = None


class ServerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: Text = "127.0.0.1"
    port: Port = 8787
    api_key: str | None = None
    backend: str = "mlx"
    model: str | None = None
    models: list[ModelSettings | str] = msgspec.field(default_factory=list)
    model_dirs: list[Text] = msgspec.field(default_factory=list)
    memory_cap: Count | str | None = None
    model_idle_ttl: Seconds | None = None
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
        if isinstance(self.memory_cap, str):
            try:
                size_in_bytes(self.memory_cap, total=1)
            except ValueError as exc:
                found.append(("memory_cap", str(exc)))
        return found

    def check_bind(self) -> None:
        """Refuse to listen beyond loopback without an API key."""
        if self.host not in LOOPBACK_HOSTS and not self.api_key:
            raise ConfigError(
                f"refusing to listen on {self.host} without an API key: "
                "set --api-key (or TRIMKIT_API_KEY), or bind 127.0.0.1",
                key="host",
            )


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


UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
         "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*|%)\s*", re.IGNORECASE)


def size_in_bytes(value: int | str, total: int | None) -> int:
    """A size as bytes: a number of bytes, ``24GB``, ``24 GiB``, ``512MB``, or ``60%`` of ``total``.

    Raises ``ValueError`` saying what is wrong (a share with ``total`` unknown included).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"must be positive, got {value}")
        return value
    found = _SIZE.fullmatch(str(value))
    unit = found.group(2).lower() if found else ""
    if found is None or (unit != "%" and unit not in UNITS):
        raise ValueError(f"{value!r} is not a size: write bytes, 24GB, 24GiB or 60%")
    number = float(found.group(1))
    if unit == "%":
        if not 0 < number <= 100:
            raise ValueError(f"{value!r} must be a share between 0% and 100%")
        if not total:
            raise ValueError(f"{value!r} is a share, but this machine's memory cannot be read")
        return int(total * number / 100)
    if number <= 0:
        raise ValueError(f"{value!r} must be positive")
    return int(number * UNITS[unit])
