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
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

DEFAULT_CAP_SHARE = 0.75
"""The share of memory models may use unless ``memory_cap`` says otherwise."""

UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
         "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*|%)\s*", re.IGNORECASE)


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
    if isinstance(setting, int) and not isinstance(setting, bool):
        if setting < 1:
            raise ConfigError(f"memory_cap must be positive, got {setting}", key="memory_cap")
        return setting
    found = _SIZE.fullmatch(str(setting))
    unit = found.group(2).lower() if found else ""
    if found is None or (unit != "%" and unit not in UNITS):
        raise ConfigError(f"memory_cap {setting!r} is not a size: write bytes, 24GB, 24GiB or 60%",
                          key="memory_cap")
    number = float(found.group(1))
    if unit == "%":
        if not 0 < number <= 100:
            raise ConfigError(f"memory_cap {setting!r} must be a share between 0% and 100%", key="memory_cap")
        if not total:
            raise ConfigError(f"memory_cap {setting!r} is a share, but this machine's memory cannot be read",
                              key="memory_cap")
        return int(total * number / 100)
    if number <= 0:
        raise ConfigError(f"memory_cap {setting!r} must be positive", key="memory_cap")
    return int(number * UNITS[unit])


def gb(n: float) -> str:
    """Bytes as people read them: ``17.2 GB``."""
    return f"{n / 1e9:.1f} GB"
