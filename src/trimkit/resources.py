"""Where the built-in stages (``plugins/``) and prompt templates (``prompts/``) live.

In a built wheel both are inside the package (``trimkit/plugins``, ``trimkit/prompts``);
in a source checkout they sit at the repository root. Either way they import as
the package ``trimkit.plugins``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_PACKAGE_DIR = Path(__file__).resolve().parent


def _locate(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"trimkit's {name}/ directory is missing from the installation")


def prompts_dir() -> Path:
    return _locate("prompts")


def plugins_package() -> ModuleType:
    """Import ``trimkit.plugins``, from the wheel or from the checkout's ``plugins/``."""
    if "trimkit.plugins" in sys.modules:
        return sys.modules["trimkit.plugins"]
    directory = _locate("plugins")
    if directory.parent == _PACKAGE_DIR:
        return importlib.import_module("trimkit.plugins")
    spec = importlib.util.spec_from_file_location(
        "trimkit.plugins", directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["trimkit.plugins"] = module
    spec.loader.exec_module(module)
    return module


def builtin_plugins() -> list[tuple[str, ModuleType]]:
    """(stage name, module) for each built-in stage, in their default order."""
    package = plugins_package()
    return [(name, importlib.import_module(f"trimkit.plugins.{name}")) for name in package.BUILTIN]
