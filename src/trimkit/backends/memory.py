"""How much memory this machine has, and how much of it the models may use (``memory_cap``).

A server that offers several models loads them on demand and unloads the least
recently used ones to stay under a cap. By default the cap is three quarters of
the machine's memory, the share ``trimkit doctor`` lets a model's weights take
(on Apple silicon it is also about what Metal recommends as a working set); the
rest is the system's, the client's and the editor's. ``memory_cap`` sets it as
bytes (``25769803776``), with a unit (``24GB``, ``24 GiB``, ``512MB``) or as a share
of the machine's memory (``60%``).

Reading the amount opens no connection and imports no MLX: ``/proc/meminfo`` on
Linux, ``sysctl`` and ``vm_stat`` on macOS.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..config.settings import size_in_bytes
from ..errors import ConfigError

DEFAULT_CAP_SHARE = 0.75
"""The share of memory models may use unless ``memory_cap`` says otherwise."""



@dataclass(frozen=True)
class Memory:
    total: int
    available: int | None


def _meminfo() -> Memory | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name] = int(parts[0]) * 1024
    if "MemTotal" not in values:
        return None
    return Memory(values["MemTotal"], values.get("MemAvailable"))


def _darwin_memory() -> Memory | None:
    try:
        total = int(subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True, timeout=5).stdout)
        vm = subprocess.run(["vm_stat"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    page = 4096
    pages = {}
    for line in vm.splitlines():
        if "page size of" in line:
            page = int(line.split("page size of")[1].split()[0])
        name, _, value = line.partition(":")
        if value.strip().rstrip(".").isdigit():
            pages[name.strip()] = int(value.strip().rstrip("."))
    free = sum(pages.get(k, 0) for k in ("Pages free", "Pages inactive", "Pages speculative"))
    return Memory(total, free * page if pages else None)


def memory() -> Memory | None:
    """Total and available memory: /proc/meminfo on Linux, sysctl and vm_stat on macOS."""
    found = _darwin_memory() if sys.platform == "darwin" else _meminfo()
    if found is None:
        try:
            found = Memory(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), None)
        except (ValueError, OSError, AttributeError):
            return None
    return found


def default_memory_cap(total: int | None) -> int | None:
    """Three quarters of ``total`` (None when the machine's memory is unknown: no cap)."""
    return int(total * DEFAULT_CAP_SHARE) if total else None


def memory_cap_bytes(setting: int | str | None, total: int | None = None) -> int | None:
    """The ``memory_cap`` setting in bytes: the default when unset, None when there is no cap at all.

    ``total`` is the machine's memory (read here when not given), for the default and for shares.
    """
    if total is None:
        found = memory()
        total = found.total if found else None
    if setting is None:
        return default_memory_cap(total)
    try:
        return size_in_bytes(setting, total)
    except ValueError as exc:
        raise ConfigError(f"memory_cap {exc}", key="memory_cap") from None


def gb(n: float) -> str:
    """Bytes as people read them: ``17.2 GB``."""
    return f"{n / 1e9:.1f} GB"
