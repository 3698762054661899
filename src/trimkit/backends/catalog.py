"""Which models a server offers, under which names, and which model answers a requested id.

One model (``model = …``) is the common case, and routes as it always has: the
model's own names, then ``opus_model``/``sonnet_model``/``haiku_model``, then
``model_patterns`` (``claude-*``). A server offers several models when the settings
name more than one: ``[[models]]`` tables (or ``models = ["dir", "org/name"]``), a
family setting naming another model (``--model BIG --haiku-model SMALL``), or
``model_dirs``, folders whose model directories are all offered, in LM Studio's
layout (``~/.lmstudio/models/<publisher>/<model>/``), the Hugging Face cache's
(``models--org--name/snapshots/<rev>/``) or one folder per model.

Each model then has an alias (its name everywhere: ``/v1/models``, ``/health``, the
logs), and a requested id is routed, first match wins, by:

1. a name of the model: its alias, its id or directory as configured, its last part;
2. the Claude family in the id (``claude-haiku-4-5`` → ``haiku``): the model that
   family maps to;
3. a model's own ``patterns``;
4. ``model_patterns``: the default model (the one ``opus`` maps to).

Families nobody assigned follow the models' sizes, as the setups people use for
Claude Code do: ``opus`` and ``sonnet`` go to the largest model, ``haiku`` (Claude
Code's quick side work and, through ``trimkit launch``, its sub-agents) to the
smallest. Only the models configured by name take part when there are any; a
folder's models otherwise, those that fit the memory cap.

Nothing here loads a model or imports MLX: sizes come from the files
(:mod:`.footprint`).
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import msgspec

from ..config.settings import FAMILIES, ModelSettings
from ..errors import ConfigError, ModelNotFoundError
from .footprint import Footprint, read_footprint
from .locate import model_label, resolve_model_path

if TYPE_CHECKING:
    from ..config.settings import ServerSettings

log = logging.getLogger("trimkit.models")

HF_CACHE_PREFIX = "models--"


@dataclass(frozen=True)
class ModelSpec:
    """One offered model: where it is, what it is called, what is routed to it.

    ``model`` is the directory or Hugging Face id as configured (or found in a
    folder); ``path`` its directory here, None when it is not on this machine
    (only where nothing is to be loaded, as for ``trimkit launch --print-env``).
    ``families`` are the Claude families it answers, given or assigned by size.
    """

    alias: str
    model: str
    path: Path | None = None
    names: frozenset[str] = frozenset()
    families: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()
    pinned: bool = False
    tier: str | None = None
    context_window: int | None = None
    footprint: Footprint | None = None
    discovered: bool = False

    @property
    def weights_bytes(self) -> int:
        return self.footprint.weights_bytes if self.footprint else 0


# ---------------------------------------------------------------- finding models in folders


@dataclass(frozen=True)
class Found:
    """A model directory found in a folder: its id (``org/name``), directory and default alias."""

    model: str
    path: Path
    alias: str


def _is_mlx_model(path: Path) -> bool:
    """A directory mlx-lm can load: a ``config.json`` and safetensors weights (GGUF-only folders are not)."""
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def _hf_snapshot(repo: Path) -> Path | None:
    """The snapshot ``refs/main`` names in a Hugging Face cache repository, else the newest one."""
    snapshots = repo / "snapshots"
    try:
        ref = (repo / "refs" / "main").read_text().strip()
    except OSError:
        ref = ""
    if ref and (snapshots / ref).is_dir():
        return snapshots / ref
    try:
        candidates = [p for p in snapshots.iterdir() if p.is_dir()]
    except OSError:
        return None
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)


def discover(folder: Path) -> list[Found]:
    """The MLX models in ``folder``: Hugging Face cache repositories, ``publisher/model``
    directories (LM Studio) and model directories, sorted by id."""
    found: list[Found] = []
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise ConfigError(f"cannot read model folder {folder}: {exc.strerror or exc}", key="model_dirs") from None
    for child in children:
        if child.name.startswith(HF_CACHE_PREFIX):
            parts = child.name[len(HF_CACHE_PREFIX):].split("--", 1)
            snapshot = _hf_snapshot(child)
            if len(parts) == 2 and snapshot is not None and _is_mlx_model(snapshot):
                found.append(Found(f"{parts[0]}/{parts[1]}", snapshot, parts[1]))
        elif _is_mlx_model(child):
            found.append(Found(str(child), child, child.name))
        else:
            try:
                grandchildren = sorted(p for p in child.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
            found += [Found(f"{child.name}/{g.name}", g, g.name) for g in grandchildren if _is_mlx_model(g)]
    return found


# ---------------------------------------------------------------- building the list


def short_name(model: str) -> str:
    """The last part of a directory or an ``org/name`` id: ``Qwen3-Coder-30B-A3B-Instruct-4bit``."""
    return model.rstrip("/").rsplit("/", 1)[-1]


def several_models(settings: "ServerSettings") -> bool:
    """Whether the settings offer more than the one ``model`` (and so load models on demand)."""
    if settings.backend != "mlx":
        return False
    if settings.models or settings.model_dirs:
        return True
    own = {settings.model, short_name(settings.model)} if settings.model else set()
    targets = (getattr(settings, f"{family}_model") for family in FAMILIES)
    return any(t and t != "*" and t not in own for t in targets)


def _entries(settings: "ServerSettings") -> list[ModelSettings]:
    """The models named in the settings, in order: ``model``, ``models``, then family settings naming others."""
    entries = [ModelSettings(model=settings.model)] if settings.model else []
    entries += [e if isinstance(e, ModelSettings) else ModelSettings(model=e) for e in settings.models]
    for family in FAMILIES:
        target = getattr(settings, f"{family}_model")
        if not target or target == "*":
            continue
        for index, entry in enumerate(entries):
            if target in (entry.alias, entry.model, short_name(entry.model)):
                if family not in entry.families:
                    entries[index] = msgspec.structs.replace(entry, families=[*entry.families, family])
                break
        else:
            entries.append(ModelSettings(model=target, families=[family]))
    return entries


def _locate(model: str, strict: bool) -> Path | None:
    try:
        return resolve_model_path(model)
    except ModelNotFoundError:
        if strict:
            raise
        return None


def _spec(entry: ModelSettings, path: Path | None, *, discovered: bool = False, alias: str | None = None) -> ModelSpec:
    alias = entry.alias or alias or short_name(entry.model)
    return ModelSpec(
        alias=alias,
        model=entry.model,
        path=path,
        names=frozenset({alias, entry.model, short_name(entry.model)}),
        families=frozenset(entry.families),
        patterns=tuple(entry.patterns),
        pinned=entry.pinned,
        tier=entry.tier,
        context_window=entry.context_window,
        footprint=read_footprint(path) if path is not None else None,
        discovered=discovered,
    )


def _unique_aliases(specs: list[ModelSpec]) -> list[ModelSpec]:
    """Found models whose alias another model has take their full id; two configured ones are an error."""
    configured: dict[str, ModelSpec] = {}
    for spec in specs:
        if spec.discovered:
            continue
        if spec.alias in configured:
            raise ConfigError(
                f"two models are called {spec.alias!r} ({configured[spec.alias].model} and {spec.model}): "
                "give one an alias in its [[models]] table", key="models")
        configured[spec.alias] = spec
    taken = set(configured)
    unique = []
    for spec in specs:
        if spec.discovered and spec.alias in taken:
            spec = replace(spec, alias=spec.model, names=spec.names | {spec.model})
        taken.add(spec.alias)
        unique.append(spec)
    return unique


def _assign_families(specs: list[ModelSpec], fits: Callable[[ModelSpec], bool]) -> list[ModelSpec]:
    """Each family to one model: as configured, else by size (opus and sonnet the largest, haiku the smallest)."""
    owner: dict[str, ModelSpec] = {}
    for spec in specs:
        for family in spec.families:
            if family in owner:
                raise ConfigError(f"both {owner[family].alias!r} and {spec.alias!r} claim the {family} family: "
                                  "each family goes to one model", key="models")
            owner[family] = spec
    free = [f for f in FAMILIES if f not in owner]
    if not free or not specs:
        return specs
    unclaimed = [s for s in specs if not s.families]
    pool = [s for s in unclaimed if not s.discovered] or [s for s in unclaimed if fits(s)] or unclaimed or specs
    by_size = sorted(pool, key=lambda s: -s.weights_bytes)  # stable: configuration order among equal sizes
    chosen = {"opus": by_size[0], "sonnet": by_size[0], "haiku": by_size[-1]}
    added: dict[str, set[str]] = {}
    for family in free:
        added.setdefault(chosen[family].alias, set()).add(family)
    return [replace(s, families=s.families | added[s.alias]) if s.alias in added else s for s in specs]


# ---------------------------------------------------------------- the catalog


@dataclass
class Catalog:
    """The offered models and the routing of requested ids to them.

    ``managed`` is True for a server of several models, loaded on demand under a
    memory cap. ``legacy_families`` holds, for the one-model server, the family
    settings as they were given (a family naming another model is answered 404).
    """

    specs: list[ModelSpec]
    default: ModelSpec
    model_patterns: list[str] = field(default_factory=list)
    managed: bool = False
    legacy_families: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_name: dict[str, ModelSpec] = {}
        for spec in self.specs:  # aliases first, so that an alias is never shadowed by another model's id
            self._by_name.setdefault(spec.alias, spec)
        for spec in self.specs:
            for name in spec.names:
                self._by_name.setdefault(name, spec)

    @property
    def names(self) -> set[str]:
        """Every id that names a model exactly."""
        return set(self._by_name)

    def family(self, family: str) -> ModelSpec | None:
        """The model a Claude family maps to."""
        if not self.managed:
            target = self.legacy_families.get(family)
            if target is None:
                return None
            return self.default if target == "*" or target in self._by_name else None
        return next((s for s in self.specs if family in s.families), None)

    def route(self, requested: str) -> ModelSpec | None:
        """The model that answers ``requested``, or None (the server's 404)."""
        if requested in self._by_name:
            return self._by_name[requested]
        lowered = requested.lower()
        for family in FAMILIES:
            if family in lowered:
                if self.managed or family in self.legacy_families:
                    return self.family(family)
                break
        for spec in self.specs:
            if any(fnmatch.fnmatchcase(requested, pattern) for pattern in spec.patterns):
                return spec
        if any(fnmatch.fnmatchcase(requested, pattern) for pattern in self.model_patterns):
            return self.default
        return None

    # ------------------------------------------------------------------ builders

    @property
    def listed(self) -> list[str]:
        """The names ``/v1/models`` shows: each model's alias, or every name of the one model
        but the path of a local directory configured as ``model``, which is nobody else's
        business (see :func:`.locate.model_label`). The backend's own name always shows: an
        upstream engine's model id is the engine's name for it, even when it looks like a path."""
        if self.managed:
            return [spec.alias for spec in self.specs]
        spec = self.specs[0]
        hidden = {spec.model} if spec.model != spec.alias and model_label(spec.model) != spec.model else set()
        return sorted(spec.names - hidden)

    @classmethod
    def single(cls, name: str, settings: "ServerSettings") -> "Catalog":
        """The one-model server: the model's own name, the configured id (or directory) and its last part."""
        names = {name}
        if settings.model:
            names |= {settings.model, model_label(settings.model), short_name(settings.model)}
        spec = ModelSpec(alias=name, model=settings.model or name, names=frozenset(names), pinned=True,
                         tier=settings.tier, context_window=settings.context_window)
        families = {f: t for f in FAMILIES if (t := getattr(settings, f"{f}_model")) is not None}
        return cls([spec], spec, list(settings.model_patterns), managed=False, legacy_families=families)

    @classmethod
    def from_settings(cls, settings: "ServerSettings", *, cap: int | None = None, strict: bool = True) -> "Catalog":
        """The models ``settings`` offer (more than one: see :func:`several_models`).

        A model named in the settings that is not on this machine raises
        :class:`~trimkit.errors.ModelNotFoundError` (whose fix is the download
        command); with ``strict`` False it is kept without a path, for showing.
        """
        specs = [_spec(entry, _locate(entry.model, strict)) for entry in _entries(settings)]
        seen = {s.path.resolve() for s in specs if s.path is not None}
        for folder in settings.model_dirs:
            directory = Path(folder).expanduser()
            if not directory.is_dir():
                if strict:
                    raise ConfigError(f"model_dirs: {directory} is not a directory", key="model_dirs")
                continue
            for found in discover(directory):
                if found.path.resolve() in seen:
                    continue
                seen.add(found.path.resolve())
                specs.append(_spec(ModelSettings(model=found.model), found.path, discovered=True, alias=found.alias))
        if not specs:
            raise ConfigError("no model is configured: pass --model MODEL, or set models or model_dirs "
                              "(`trimkit doctor` recommends one)", key="model")
        specs = _unique_aliases(specs)
        specs = _assign_families(specs, lambda s: cap is None or s.weights_bytes <= cap)
        default = next(s for s in specs if "opus" in s.families)
        return cls(specs, default, list(settings.model_patterns), managed=True)
