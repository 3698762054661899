"""Configuration: one TOML file, ``TRIMKIT_*`` variables and command-line flags.

Every setting is a field of :class:`~trimkit.config.settings.ServerSettings`; the
keys, their types and defaults are read from that Struct, so a new field is a new
key, a new variable and a new flag with no change here. Later sources win::

    built-in defaults  <  config file  <  TRIMKIT_* environment  <  command-line flags

The config file is the first of these that is given or exists (only one is read):
the ``path`` argument (``--config``), the file named by ``$TRIMKIT_CONFIG``,
``./trimkit.toml``, then ``$XDG_CONFIG_HOME/trimkit/config.toml`` (by default
``~/.config/trimkit/config.toml``, on macOS as on Linux).

Settings sit at the top level of the file; the ``[stages]`` table goes to the
pipeline unchanged (see :mod:`trimkit.pipeline` for its format) and is checked
by building a :class:`~trimkit.pipeline.Pipeline` from it. Each scalar or list
field also reads ``TRIMKIT_<FIELD>`` (lists comma-separated; an empty value
unsets an optional field). Tables such as ``stages`` come only from the file
or from code.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import math
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Mapping

import msgspec

from ..errors import ConfigError, ConfigFileError
from .settings import ServerSettings

ENV_PREFIX = "TRIMKIT_"
CONFIG_ENV = "TRIMKIT_CONFIG"
LOCAL_FILE = "trimkit.toml"
MASK = "***"


class Source(str):
    """Where a setting's value came from, as shown to people, with ``kind`` to act on.

    The text is ``"file PATH:LINE"``, ``"env TRIMKIT_NAME"``, ``"flag --name"`` or
    ``"default"``; ``kind`` is ``file``, ``env``, ``flag`` or ``default``.
    """

    kind: str

    def __new__(cls, kind: str, where: str = "") -> "Source":
        source = super().__new__(cls, f"{kind} {where}" if where else kind)
        source.kind = kind
        return source


DEFAULT = Source("default")


@dataclass(frozen=True)
class Config:
    """The effective settings and, for each field, where its value came from.

    ``sources`` maps every field name to its :class:`Source`: ``"default"``,
    ``"file PATH:LINE"``, ``"env TRIMKIT_NAME"`` or ``"flag --name"``. ``unknown_env`` lists
    ``TRIMKIT_*`` variables that name no setting (they are ignored).
    """

    settings: ServerSettings
    sources: dict[str, Source]
    path: Path | None = None
    unknown_env: tuple[str, ...] = field(default=())

    @property
    def stages(self) -> dict[str, Any]:
        return self.settings.stages


# ---------------------------------------------------------------- the fields


@functools.cache
def _field_types() -> dict[str, Any]:
    """Field name → annotated type, in declaration order."""
    return {f.name: f.type for f in msgspec.structs.fields(ServerSettings)}


@functools.cache
def _fields() -> dict[str, msgspec.inspect.Type]:
    """Field name → msgspec type info, in declaration order."""
    return {name: msgspec.inspect.type_info(t) for name, t in _field_types().items()}


def _unwrap_optional(info: msgspec.inspect.Type) -> tuple[msgspec.inspect.Type, bool]:
    if isinstance(info, msgspec.inspect.UnionType):
        rest = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        if len(rest) == 1:
            return rest[0], len(rest) < len(info.types)
    return info, False


_LIST_TYPES = (
    msgspec.inspect.ListType,
    msgspec.inspect.SetType,
    msgspec.inspect.FrozenSetType,
    msgspec.inspect.VarTupleType,
)
_TABLE_TYPES = (
    msgspec.inspect.DictType,
    msgspec.inspect.StructType,
    msgspec.inspect.TypedDictType,
    msgspec.inspect.DataclassType,
)
_NAMES = {
    msgspec.inspect.IntType: ("an integer", "integers"),
    msgspec.inspect.FloatType: ("a number", "numbers"),
    msgspec.inspect.StrType: ("a string", "strings"),
    msgspec.inspect.BoolType: ("true or false", "booleans"),
}


def _expected(info: msgspec.inspect.Type) -> str:
    """How a type reads in an error message: "an integer", "a list of strings"."""
    info, _ = _unwrap_optional(info)
    if type(info) in _NAMES:
        return _NAMES[type(info)][0]
    if isinstance(info, _LIST_TYPES):
        item = _NAMES.get(type(info.item_type), (None, "values"))[1]
        return f"a list of {item}"
    if isinstance(info, _TABLE_TYPES):
        return "a table"
    if isinstance(info, msgspec.inspect.LiteralType):
        return "one of " + ", ".join(repr(v) for v in info.values)
    if isinstance(info, msgspec.inspect.UnionType):
        return " or ".join(_expected(t) for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
    return "a valid value"


_TOML_KINDS = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (dict, "table"),
    (datetime, "datetime"),
    (date, "date"),
    (time, "time"),
)


def _kind(value: Any) -> str:
    """The TOML name of a value's type."""
    if isinstance(value, list):
        kinds = sorted({_kind(v) for v in value})
        return f"array of {'/'.join(kinds)}" if kinds else "empty array"
    for cls, name in _TOML_KINDS:
        if isinstance(value, cls):
            return name
    return type(value).__name__


_ENTRY_PATH = re.compile(r" - at `\$\[(\d+)\]\.?([^`]*)`$")


def _entry_problem(exc: msgspec.ValidationError) -> tuple[int, str] | None:
    """For a list of tables (``[[models]]``): which entry is wrong (from 0), and how, in words."""
    found = _ENTRY_PATH.search(str(exc))
    if found is None:
        return None
    text = str(exc)[: found.start()]
    text = text[0].lower() + text[1:] if text else text
    inside = f" in `{found.group(2)}`" if found.group(2) else ""
    return int(found.group(1)), f"{text}{inside}"


def _convert(name: str, value: Any, *, strict: bool, say_got: bool = True) -> tuple[Any, str | None]:
    """The value converted to the field's type, or None and what is wrong with it."""
    try:
        return msgspec.convert(value, _field_types()[name], strict=strict), None
    except msgspec.ValidationError as exc:
        info = _fields()[name]
        tables = isinstance(value, list) and any(isinstance(item, dict) for item in value)
        if tables and (entry := _entry_problem(exc)) is not None:
            index, text = entry
            return None, f"entry {index + 1} is invalid: {text}"
        if _expected_kind_matches(info, value) or _converts(value, _unconstrained(_field_types()[name]), strict):
            return None, f"is invalid: {str(exc).split(' - at ')[0]}"
        got = f", got {_kind(value)}" if say_got else ""
        return None, f"must be {_expected(info)}{got}"


def _unconstrained(kind: Any) -> Any:
    """``kind`` without its ``Annotated`` ranges: ``Port | None`` → ``int | None``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Annotated:
        return _unconstrained(args[0])
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_unconstrained(arg) for arg in args)]
    if origin is list:
        return list[_unconstrained(args[0])]
    return kind


def _converts(value: Any, kind: Any, strict: bool) -> bool:
    """Whether ``value`` has the right kind, so only a range was broken."""
    try:
        msgspec.convert(value, kind, strict=strict)
    except msgspec.ValidationError:
        return False
    return True


def _expected_kind_matches(info: msgspec.inspect.Type, value: Any) -> bool:
    """True when the value has the right kind but breaks a constraint (range, length)."""
    info, _ = _unwrap_optional(info)
    python = {
        msgspec.inspect.IntType: int,
        msgspec.inspect.FloatType: (int, float),
        msgspec.inspect.StrType: str,
    }.get(type(info))
    return python is not None and isinstance(value, python) and not isinstance(value, bool)


# ---------------------------------------------------------------- where keys are


_KEY_PART = r'(?:[A-Za-z0-9_-]+|"[^"\n]*"|\'[^\'\n]*\')'
_KEY_PATH = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_KEY_PATH})\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_KEY_PATH})\s*=")
_PART = re.compile(_KEY_PART)


def _split_key(path: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _PART.findall(path))


class _KeyLines:
    """The line on which each key of a TOML text is set or its table opens.

    A line scan rather than a parser: tomllib keeps no positions. Lines inside
    multi-line strings and arrays are skipped.
    """

    def __init__(self, text: str):
        self._lines: dict[tuple[str, ...], int] = {}
        self._entries: dict[tuple[str, ...], list[int]] = {}  # each ``[[name]]`` header's line
        section: tuple[str, ...] = ()
        open_string: str | None = None
        depth = 0
        for number, line in enumerate(text.splitlines(), 1):
            if open_string:
                if open_string in line:
                    open_string = None
                continue
            if depth > 0:
                depth += line.count("[") - line.count("]")
            elif header := _HEADER.match(line):
                section = _split_key(header.group(1))
                self._note(section, number)
                if line.lstrip().startswith("[["):
                    self._entries.setdefault(section, []).append(number)
            elif assign := _ASSIGN.match(line):
                self._note(section + _split_key(assign.group(1)), number)
                value = line[assign.end():]
                depth = value.count("[") - value.count("]")
            for quote in ('"""', "'''"):
                if line.count(quote) % 2:
                    open_string = quote

    def _note(self, path: tuple[str, ...], number: int) -> None:
        for end in range(1, len(path) + 1):
            self._lines.setdefault(path[:end], number)

    def entry_line(self, key: str, index: int) -> int | None:
        """The line of the ``index``-th ``[[key]]`` table (from 0), when the file has one."""
        entries = self._entries.get((key,), [])
        return entries[index] if 0 <= index < len(entries) else None

    def line(self, *path: str) -> int | None:
        """The line of ``path``, or of its nearest enclosing table that has one."""
        for end in range(len(path), 0, -1):
            if path[:end] in self._lines:
                return self._lines[path[:end]]
        return None


def _where(path: Path, line: int | None) -> str:
    return f"{path} line {line}" if line else str(path)


# ---------------------------------------------------------------- finding the file


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/trimkit/config.toml``, else ``~/.config/trimkit/config.toml``."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):
        base = Path(xdg)
    else:
        base = (Path(env["HOME"]) if env.get("HOME") else Path.home()) / ".config"
    return base / "trimkit" / "config.toml"


def find_config_file(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Path | None:
    """The one config file to read, or None: ``path``, $TRIMKIT_CONFIG, ./trimkit.toml, user dir."""
    env = os.environ if env is None else env
    named = [(path, "config file"), (env.get(CONFIG_ENV) or None, f"{CONFIG_ENV} names")]
    for given, what in named:
        if given is not None:
            file = Path(given).expanduser().absolute()
            if not file.is_file():
                raise ConfigFileError(f"{what} {file}, which is not a file", path=file)
            return file
    for file in (Path(cwd or Path.cwd()) / LOCAL_FILE, user_config_path(env)):
        if file.is_file():
            return file.absolute()
    return None


# ---------------------------------------------------------------- the layers


def _read_file(file: Path) -> tuple[dict[str, Any], _KeyLines]:
    try:
        text = file.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigFileError(f"cannot read config file {file}: {exc.strerror}", path=file) from None
    except UnicodeDecodeError:
        raise ConfigFileError(f"config file {file} is not UTF-8 text", path=file) from None
    try:
        data = tomllib.loads(text)
    except RecursionError:  # tomllib recurses once per level of nested arrays and inline tables
        raise ConfigFileError(f"invalid TOML in {file}: values are nested too deeply", path=file) from None
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(exc)
        message = f"invalid TOML in {file}: {exc}"
        if line and line <= len(lines := text.splitlines()):
            message += f"\n    {line} | {lines[line - 1]}"
        raise ConfigFileError(message, path=file, line=line) from None
    return data, _KeyLines(text)


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> int | None:
    """The line of a TOML error: a field from Python 3.14 (``lineno``), only in the message before."""
    line = getattr(exc, "lineno", None)
    if line is None and (found := re.search(r"at line (\d+)", str(exc))):
        line = int(found.group(1))
    return line


def _file_layer(file: Path) -> tuple[dict[str, Any], dict[str, Source], _KeyLines]:
    data, lines = _read_file(file)
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for key, raw in data.items():
        line = lines.line(key)
        if key not in _fields():
            close = difflib.get_close_matches(key, list(_fields()), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigFileError(
                f"unknown key {key!r} at {_where(file, line)}{hint}", path=file, key=key, line=line
            )
        value, problem = _convert(key, raw, strict=True)
        if problem:
            what = key
            if entry := re.match(r"entry (\d+) (.*)", problem):
                what, problem = f"{key} entry {entry.group(1)}", entry.group(2)
                line = lines.entry_line(key, int(entry.group(1)) - 1) or line
            raise ConfigFileError(f"{what!r} at {_where(file, line)} {problem}", path=file, key=key, line=line)
        values[key] = value
        sources[key] = Source("file", f"{file}:{line}" if line else str(file))
    return values, sources, lines


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def _env_fields() -> list[str]:
    """Fields a TRIMKIT_* variable can set: all but tables."""
    return [n for n, info in _fields().items() if not isinstance(_unwrap_optional(info)[0], _TABLE_TYPES)]


def _from_text(name: str, raw: str) -> Any:
    """A variable's or flag's text made ready for conversion: lists split on commas, "" unsets."""
    info, optional = _unwrap_optional(_fields()[name])
    if raw.strip() == "" and optional:
        return None
    if isinstance(info, _LIST_TYPES):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _env_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Source], tuple[str, ...]]:
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    settable = _env_fields()
    for name in settable:
        var = env_name(name)
        if var not in env:
            continue
        value, problem = _convert(name, _from_text(name, env[var]), strict=False, say_got=False)
        if problem:
            raise ConfigFileError(f"{var}={env[var]!r} {problem}", key=name)
        values[name] = value
        sources[name] = Source("env", var)
    known = {CONFIG_ENV, *(env_name(name) for name in settable)}
    unknown = tuple(sorted(v for v in env if v.startswith(ENV_PREFIX) and v not in known))
    return values, sources, unknown


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def _flag_layer(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Source]]:
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for name, raw in overrides.items():
        if raw is None:
            continue
        if name not in _fields():
            raise ConfigFileError(f"{flag_name(name)} is not a setting", key=name)
        value, problem = _convert(name, _from_text(name, raw) if isinstance(raw, str) else raw, strict=False)
        if problem:
            raise ConfigFileError(f"{flag_name(name)} {problem}", key=name)
        values[name] = value
        sources[name] = Source("flag", flag_name(name))
    return values, sources


def _check_stages(stages: Mapping[str, Any], source: Source, file: Path | None, lines: _KeyLines | None) -> None:
    """Build a pipeline from the table: unknown stages and options raise ConfigError.

    The error's ``key`` (``stages.tools.allow``) finds the line in the file.
    """
    if not stages:
        return
    from ..pipeline import Pipeline

    try:
        Pipeline(stages)
    except ConfigError as exc:
        key = exc.key if exc.key and exc.key.startswith("stages") else "stages"
        if source.kind == "file" and file is not None and lines is not None:
            line = lines.line(*key.split("."))
            raise ConfigFileError(f"{exc} at {_where(file, line)}", path=file, key=key, line=line) from None
        raise ConfigFileError(f"{exc} (from {source})", key=key) from None


def _check_values(settings: ServerSettings, sources: dict[str, Source], file: Path | None,
                  lines: _KeyLines | None) -> None:
    """What the fields' types cannot check (:meth:`ServerSettings.problems`), said with where it was set."""
    for key, problem in settings.problems():
        source = sources[key]
        if source.kind == "file" and file is not None and lines is not None:
            line = lines.line(key)
            raise ConfigFileError(f"{key!r} at {_where(file, line)} {problem}", path=file, key=key, line=line)
        raise ConfigFileError(f"{key} {problem} (from {source})", key=key)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """The effective configuration: defaults < file < TRIMKIT_* environment < ``overrides``.

    ``env`` defaults to ``os.environ``; ``overrides`` are the command line's
    values by field name (``None`` means the flag was not given). Raises
    :class:`ConfigFileError` naming the file, key and line of a bad value.
    """
    env = os.environ if env is None else env
    sources = dict.fromkeys(_fields(), DEFAULT)
    values: dict[str, Any] = {}
    file = find_config_file(path, env=env)
    lines = None
    if file is not None:
        file_values, file_sources, lines = _file_layer(file)
        values.update(file_values)
        sources.update(file_sources)
    env_values, env_sources, unknown_env = _env_layer(env)
    flag_values, flag_sources = _flag_layer(overrides or {})
    for layer_values, layer_sources in ((env_values, env_sources), (flag_values, flag_sources)):
        values.update(layer_values)
        sources.update(layer_sources)
    settings = ServerSettings(**values)
    _check_values(settings, sources, file, lines)
    _check_stages(settings.stages, sources["stages"], file, lines)
    return Config(settings=settings, sources=sources, path=file, unknown_env=unknown_env)


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` a ``--field-name`` option for every setting it has no option for yet.

    Options the command defines itself (with choices, types and help) are kept;
    these added ones take text that :func:`load_config` converts like a
    ``TRIMKIT_*`` value. Every default is None, meaning "not given".
    """
    for name in _env_fields():
        info = _fields()[name]
        listed = ", comma-separated" if isinstance(_unwrap_optional(info)[0], _LIST_TYPES) else ""
        try:
            parser.add_argument(
                flag_name(name), dest=name, default=None, help=f"{_expected(info)}{listed} (also ${env_name(name)})"
            )
        except argparse.ArgumentError:
            continue


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The attributes of a parsed namespace that name settings (flags left unset are None)."""
    return {name: getattr(args, name) for name in _fields() if hasattr(args, name)}


# ---------------------------------------------------------------- showing it


def _is_secret(name: str) -> bool:
    return name.endswith(("key", "token", "secret", "password"))


def _shown(name: str, value: Any) -> Any:
    return MASK if value is not None and _is_secret(name) else value


def config_as_dict(config: Config) -> dict[str, Any]:
    """The effective configuration as JSON-ready data, secrets masked (``trimkit config --json``)."""
    settings = msgspec.to_builtins(config.settings)
    return {
        "path": str(config.path) if config.path else None,
        "settings": {name: _shown(name, value) for name, value in settings.items()},
        "sources": dict(config.sources),
        "unknown_env": list(config.unknown_env),
    }


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(msgspec.to_builtins(value), ensure_ascii=False)


def _toml_table(name: str, table: Mapping[str, Any]) -> list[str]:
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, Mapping)]
    for key, value in table.items():
        if isinstance(value, Mapping):
            lines += ["", f"[{name}.{_toml_key(key)}]", *_toml_table(f"{name}.{_toml_key(key)}", value)]
    return lines


def format_config(config: Config) -> str:
    """The effective configuration as TOML with a ``# from ...`` comment per value (``trimkit config``)."""
    settings = msgspec.to_builtins(config.settings)
    header = f"# config file: {config.path}" if config.path else "# no config file found; defaults, environment, flags"
    rows: list[tuple[str, str]] = []
    tables: list[str] = []
    for name, value in settings.items():
        source = f"# from {config.sources[name]}"
        if isinstance(value, Mapping):
            tables += ["", f"[{name}]  {source}", *_toml_table(name, value)]
        elif value is None:
            rows.append((f"# {name} is not set", source))
        else:
            rows.append((f"{name} = {_toml_value(_shown(name, value))}", source))
    lines = [header]
    for var in config.unknown_env:
        close = difflib.get_close_matches(var, [env_name(n) for n in _env_fields()], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        lines.append(f"# ignored: {var} names no setting{hint}")
    width = min(max(len(text) for text, _ in rows), 48)
    lines += [f"{text.ljust(width)}  {source}" for text, source in rows]
    return "\n".join(lines + tables)
