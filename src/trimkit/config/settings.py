"""Server settings. Every field can come from trimkit.toml, a TRIMKIT_* variable or a flag."""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

import msgspec

from ..errors import ConfigError

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class ServerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8787
    api_key: str | None = None
    backend: str = "mlx"
    model: str | None = None
    download: bool = False
    script: str | None = None
    upstream: str | None = None
    upstreams: list[str] = msgspec.field(default_factory=list)
    upstream_model: str | None = None
    upstream_api_key: str | None = None
    upstream_auth: str = "auto"
    upstream_timeout: float = 300.0
    upstream_connect_timeout: float = 5.0
    upstream_tokenizer: str | None = None
    upstream_concurrency: int = 4
    max_body_bytes: int = 32 * 1024 * 1024
    max_queue: int = 8
    max_output_tokens: int | None = None
    prompt_cache_bytes: int = 4 * 1024**3
    prompt_cache_entries: int = 4
    mlx_memory_limit: int | None = None
    mlx_cache_limit: int | None = None
    ping_interval: float = 10.0
    quick_titles: bool = False
    model_patterns: list[str] = msgspec.field(default_factory=lambda: ["claude-*"])
    opus_model: str | None = None
    sonnet_model: str | None = None
    haiku_model: str | None = None
    tier: str | None = None
    context_window: int | None = None
    convention: Literal["auto", "native", "xml"] = "auto"
    retry_tool_calls: bool = True
    stages: dict[str, Any] = msgspec.field(default_factory=dict)
    constrain_tool_calls: bool = True
    constrain_tool_choice: bool = True
    constrain_json_output: bool = True
    constrain_cache_entries: int = 16
    capture_dir: str | None = None
    capture_keep: int = 50
    log_level: str = "warning"

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
