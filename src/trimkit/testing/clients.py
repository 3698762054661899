"""Real agent clients from npm, installed once per version into a cache directory.

The tests and the recorder run the clients users run: Claude Code
(``@anthropic-ai/claude-code``) and OpenCode (``opencode-ai``). Each version goes to
its own prefix, ``$XDG_CACHE_HOME/trimkit-tests/<client>-<version>/`` (by default under
``~/.cache``), outside the repository. ``PINNED`` is the version the tests are written
against; ``newest`` asks npm which version is the latest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

INSTALL_TIMEOUT = 900


@dataclass(frozen=True)
class ClientPackage:
    """An npm package that installs an agent client's command."""

    name: str
    """Short name, used for cache directories and recordings (``claude-code``)."""
    npm: str
    pinned: str
    command: str
    bin_env: str
    """An environment variable naming a binary to use instead of installing one."""


CLAUDE_CODE = ClientPackage("claude-code", "@anthropic-ai/claude-code", "2.1.197", "claude", "TRIMKIT_CLAUDE_BIN")
OPENCODE = ClientPackage("opencode", "opencode-ai", "1.18.33", "opencode", "TRIMKIT_OPENCODE_BIN")
CLIENTS = {package.name: package for package in (CLAUDE_CODE, OPENCODE)}


class ClientUnavailable(RuntimeError):
    """The client cannot be installed here (no npm, no registry); tests skip on it."""


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/trimkit-tests`` (``~/.cache/trimkit-tests`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trimkit-tests"


def newest_version(package: ClientPackage, timeout: float = 60) -> str:
    """The version npm calls ``latest``."""
    npm = shutil.which("npm")
    if npm is None:
        raise ClientUnavailable("npm is not installed")
    try:
        done = subprocess.run(
            [npm, "view", package.npm, "version", "--json"],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ClientUnavailable(f"npm view {package.npm} timed out") from None
    if done.returncode != 0:
        raise ClientUnavailable(f"npm view {package.npm} failed: {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout)


def resolve_version(package: ClientPackage, version: str) -> str:
    """``pinned``, ``newest`` or an exact version, as an exact version."""
    if version == "pinned":
        return package.pinned
    if version in ("newest", "latest"):
        return newest_version(package)
    return version


def binary_version(binary: Path, timeout: float = 60) -> str:
    """The version a client's command reports (``2.1.197 (Claude Code)`` gives ``2.1.197``)."""
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    words = done.stdout.split()
    if done.returncode != 0 or not words:
        raise ClientUnavailable(f"{binary} --version failed: {(done.stderr or done.stdout).strip()[-300:]}")
    return words[0]


def install(package: ClientPackage, version: str = "pinned") -> Path:
    """The client's command for ``version``, installing it into the cache if needed.

    ``$<bin_env>`` (``TRIMKIT_CLAUDE_BIN``, ``TRIMKIT_OPENCODE_BIN``) names a binary to
    use instead, for the pinned version.
    """
    explicit = os.environ.get(package.bin_env)
    if explicit and version == "pinned":
        return Path(explicit)
    exact = resolve_version(package, version)
    prefix = cache_root() / f"{package.name}-{exact}"
    binary = prefix / "node_modules" / ".bin" / package.command
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise ClientUnavailable(f"npm is not installed, so {package.npm} cannot be installed")
    prefix.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--save-exact", "--prefix", str(prefix),
             f"{package.npm}@{exact}"],
            capture_output=True, text=True, timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ClientUnavailable(f"npm install {package.npm}@{exact} timed out") from None
    if done.returncode != 0 or not binary.exists():
        raise ClientUnavailable(f"npm install {package.npm}@{exact} failed: {done.stderr.strip()[-500:]}")
    return binary
