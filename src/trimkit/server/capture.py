"""Captures: what the server received, what the model read and what went back, per request.

Opt-in (``capture_dir`` / ``trimkit serve --capture DIR``) because prompts hold the
user's private code. Each request gets its own directory::

    DIR/20250101-120000.123456-0001/
        original.json   the client's body
        trimmed.json    the request after the pipeline
        prompt.txt      the chat messages the model was given
        response.json   the final message (for a stream: the assembled blocks)
        report.json     the trim report: sizes per stage, tier, prompt tokens

Secrets are redacted from every file (:mod:`trimkit.redact` lists what is found):
values of keys named like ``x-api-key``, ``authorization``, ``password`` or
``access_token``, strings shaped like keys (``sk-…``, ``hf_…``, ``ghp_…``,
``xoxb-…``, ``AKIA…``, ``AIza…``, JWTs, PEM private keys, the password of a
database URL) and the server's own key where it stands as a whole token, as a
value or as a JSON object's key. Each capture's directory is created ``0700`` and
its files ``0600``; the directory that holds them is created ``0700`` when trimkit
creates it, and left as it is when it exists already (trimkit changes no
permissions it did not set, and follows no symbolic link to change one). Only the
newest ``keep`` captures stay; older ones are removed when a new one is written.
``trimkit inspect DIR`` opens the newest capture's ``original.json``.
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

from ..redact import REDACTED, Redactor
from ..render import Chat
from ..stage import TrimResult
from ..wire import to_builtins
from ..config.settings import ServerSettings

__all__ = ["REDACTED", "Capture", "Redactor", "chat_text"]

log = logging.getLogger("trimkit.server.capture")

DEFAULT_KEEP = 50
DIR_MODE = 0o700
FILE_MODE = 0o600

_NAME = re.compile(r"\d{8}-\d{6}\.\d{6}-\d{4,}")


def _own_mode(directory: Path) -> None:
    """Give a directory trimkit just made exactly ``0700`` (mkdir's mode is masked by the umask),
    through a descriptor opened without following a link, so nothing else can be changed."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchmod(fd, DIR_MODE)
    finally:
        os.close(fd)


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
        if not self.directory.is_dir():
            self.directory.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.mkdir(self.directory, DIR_MODE)
            except FileExistsError:
                pass  # made meanwhile, by someone else: theirs to set
            else:
                _own_mode(self.directory)
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
        while True:
            entry = self.directory / f"{stamp}-{next(self._sequence):04d}"
            try:
                os.mkdir(entry, DIR_MODE)
            except FileExistsError:
                continue
            _own_mode(entry)
            return entry

    def _json(self, path: Path, data: Any) -> None:
        self._file(path, msgspec.json.format(msgspec.json.encode(self.redactor.data(data)), indent=2) + b"\n")

    @staticmethod
    def _file(path: Path, content: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
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
