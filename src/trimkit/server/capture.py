"""Captures: what the server received, what the model read and what went back, per request.

Opt-in (``capture_dir`` / ``trimkit serve --capture DIR``) because prompts hold the
user's private code. Each request gets its own directory::

    DIR/20250101-120000.123456-0001/
        original.json   the client's body
        trimmed.json    the request after the pipeline
        prompt.txt      the chat messages the model was given
        response.json   the final message (for a stream: the assembled blocks)
        report.json     the trim report: sizes per stage, tier, prompt tokens

Secrets are redacted from every file: values of keys named like ``x-api-key``,
``authorization`` or ``api_key``, strings that look like API keys (``sk-…``,
``hf_…``, ``ghp_…``, ``xoxb-…``, ``AKIA…``) and the server's own key where it
stands as a whole token. Directories are created ``0700`` and files ``0600``. Only
the newest ``keep`` captures stay; older ones are removed when a new one is written. ``trimkit inspect DIR`` opens
the newest capture's ``original.json``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Iterable

import msgspec

from ..render import Chat
from ..stage import TrimResult
from ..wire import to_builtins
from ..config.settings import ServerSettings

log = logging.getLogger("trimkit.server.capture")

REDACTED = "[redacted]"
DEFAULT_KEEP = 50
DIR_MODE = 0o700
FILE_MODE = 0o600

_SECRET_KEYS = frozenset(
    {"xapikey", "apikey", "authorization", "proxyauthorization", "authtoken", "accesstoken",
     "anthropicapikey", "anthropicauthtoken", "password", "secret", "clientsecret"}
)
_KEY_PATTERN = re.compile(
    r"\bsk-[A-Za-z0-9_-]{16,}"  # Anthropic, OpenAI
    r"|\bhf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key id
    r"|(?i:\bbearer\s+)[A-Za-z0-9._~+/=-]{16,}"
)
_NAME = re.compile(r"\d{8}-\d{6}\.\d{6}-\d{4,}")


def _normal_key(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "")


_TOKEN_CHARS = r"A-Za-z0-9_\-"
"""Word characters: an ``extra`` secret is hidden only where none touches it."""


def _whole_token(secret: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![{_TOKEN_CHARS}]){re.escape(secret)}(?![{_TOKEN_CHARS}])")


class Redactor:
    """Replaces secrets in text and JSON-like data; ``extra`` are exact strings to hide too.

    An ``extra`` secret is hidden where it stands as a whole token (a header or field
    value, ``Bearer KEY``, ``key=KEY``), never inside other text: a short key such as
    ``k`` must not turn a tool named ``skill`` into ``s[redacted]ill``.
    """

    def __init__(self, extra: Iterable[str] = ()):
        self.extra = tuple(_whole_token(s) for s in extra if s)

    def text(self, text: str) -> str:
        for secret in self.extra:
            text = secret.sub(REDACTED, text)
        return _KEY_PATTERN.sub(REDACTED, text)

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                k: REDACTED if _normal_key(str(k)) in _SECRET_KEYS and v else self.data(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value


def chat_text(chat: list[dict[str, Any]]) -> str:
    """The chat messages as one text, each under a ``<|role|>`` line.

    In the model's own convention, the tool definitions come first, under ``<|tools|>``,
    and each assistant call follows its message's text as a line of JSON.
    """
    parts = []
    if isinstance(chat, Chat) and chat.tools:
        parts.append("<|tools|>\n" + "\n".join(json.dumps(t, ensure_ascii=False) for t in chat.tools))
    for m in chat:
        calls = [json.dumps(c.get("function", c), ensure_ascii=False) for c in m.get("tool_calls") or ()]
        parts.append("\n".join([f"<|{m['role']}|>", m["content"], *calls]))
    return "\n".join(parts)


class Capture:
    """Writes one directory per request under ``directory`` and keeps the newest ``keep``."""

    def __init__(self, directory: str | os.PathLike[str], *, keep: int = DEFAULT_KEEP, secrets: Iterable[str] = ()):
        self.directory = Path(directory).expanduser()
        self.keep = max(1, keep)
        self.redactor = Redactor(secrets)
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> "Capture | None":
        """A capture for ``settings.capture_dir``, or None when captures are off."""
        if not settings.capture_dir:
            return None
        return cls(settings.capture_dir, keep=settings.capture_keep, secrets=[settings.api_key or ""])

    # ------------------------------------------------------------------ writing

    def write(self, body: bytes, trimmed: TrimResult, chat: list[dict[str, str]], response: Any,
              extra: dict[str, Any] | None = None) -> Path:
        """Write one capture and rotate; returns its directory."""
        with self._lock:
            entry = self._new_entry()
            try:
                original: Any = msgspec.json.decode(body)
            except msgspec.DecodeError:
                original = body.decode("utf-8", "replace")
            report = {
                **msgspec.to_builtins(trimmed.report),
                "ms": round(trimmed.report.ms, 4),
                "model": trimmed.profile.name,
                "context_window": trimmed.profile.context_window,
                "tools_offered": list(trimmed.carry.tool_names),
                **(extra or {}),
            }
            self._json(entry / "original.json", original)
            self._json(entry / "trimmed.json", to_builtins(trimmed.request))
            self._file(entry / "prompt.txt", self.redactor.text(chat_text(chat)).encode())
            self._json(entry / "response.json", to_builtins(response))
            self._json(entry / "report.json", report)
            self._rotate()
        return entry

    async def save(self, body: bytes, trimmed: TrimResult, chat: list[dict[str, str]], response: Any,
                   extra: dict[str, Any] | None = None) -> Path | None:
        """``write`` on a worker thread; a failure is logged, never raised into the response."""
        try:
            return await asyncio.to_thread(self.write, body, trimmed, chat, response, extra)
        except OSError as exc:
            log.warning("capture not written to %s: %s", self.directory, exc)
            return None

    def _new_entry(self) -> Path:
        self.directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(self.directory, DIR_MODE)
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
        while True:
            entry = self.directory / f"{stamp}-{next(self._sequence):04d}"
            try:
                os.mkdir(entry, DIR_MODE)
            except FileExistsError:
                continue
            os.chmod(entry, DIR_MODE)  # mkdir's mode is masked by the umask
            return entry

    def _json(self, path: Path, data: Any) -> None:
        self._file(path, msgspec.json.format(msgspec.json.encode(self.redactor.data(data)), indent=2) + b"\n")

    @staticmethod
    def _file(path: Path, content: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as file:
            file.write(content)

    def entries(self) -> list[Path]:
        """Capture directories, oldest first (other files in the directory are left alone)."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if _NAME.fullmatch(p.name) and p.is_dir())

    def _rotate(self) -> None:
        for old in self.entries()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
