"""Where the built-in stages (``plugins/``), prompt templates (``prompts/``) and page templates (``pages/``) live.

In a built wheel all three are inside the package (``trimkit/plugins``, ``trimkit/prompts``, ``trimkit/pages``);
in a source checkout they sit at the repository root. Either way the stages import
as the package ``trimkit.plugins``: in a checkout, :func:`install_checkout_finder`
(run when ``trimkit`` is imported) maps that name, and only that name, to the
repository's ``plugins/``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_PACKAGE_DIR = Path(__file__).resolve().parent
PLUGINS_PACKAGE = "trimkit.plugins"


def _locate(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"trimkit's {name}/ directory is missing from the installation")


def prompts_dir() -> Path:
    return _locate("prompts")


def pages_dir() -> Path:
    """The HTML page templates, their stylesheet and script (kept apart from the prompt templates)."""
    return _locate("pages")


class _CheckoutPlugins(importlib.abc.MetaPathFinder):
    """Finds ``trimkit.plugins`` in a source checkout's ``plugins/`` directory."""

    def __init__(self, directory: Path):
        self.directory = directory

    def find_spec(self, fullname, path=None, target=None):
        if fullname != PLUGINS_PACKAGE:
            return None
        return importlib.util.spec_from_file_location(
            fullname, self.directory / "__init__.py", submodule_search_locations=[str(self.directory)]
        )


def install_checkout_finder() -> None:
    """Make ``import trimkit.plugins`` work from a source checkout (a wheel needs nothing)."""
    if (_PACKAGE_DIR / "plugins").is_dir():
        return
    directory = _PACKAGE_DIR.parent.parent / "plugins"
    if not (directory / "__init__.py").is_file():
        return
    if not any(isinstance(finder, _CheckoutPlugins) for finder in sys.meta_path):
        sys.meta_path.append(_CheckoutPlugins(directory))


def plugins_package() -> ModuleType:
    """``trimkit.plugins``, from the wheel or from the checkout's ``plugins/``."""
    install_checkout_finder()
    return importlib.import_module(PLUGINS_PACKAGE)


def builtin_plugins() -> list[tuple[str, ModuleType]]:
    """(stage name, module) for each built-in stage, in their default order."""
    package = plugins_package()
    return [(name, importlib.import_module(f"{PLUGINS_PACKAGE}.{name}")) for name in package.BUILTIN]
