"""The interface every dialect module fills in: :class:`Dialect` and :class:`StreamReader`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable, Mapping, Protocol

from ..catalog import Catalog
from ..items import Item
from ...wire import Tool

Tools = Iterable[Tool | str] | Mapping[str, Any] | None


class StreamReader(Protocol):
    """Reads one model turn as it streams; see :mod:`trimkit.toolcalls.dialects`."""

    def feed(self, text: str) -> list[Item]:
        """Items that are certain once ``text`` is added; text that may start markup is held."""
        ...

    def finish(self, *, truncated: bool = False) -> list[Item]:
        """Everything still held. ``truncated``: the output was cut, so open markup is text."""
        ...


@dataclass(frozen=True)
class Dialect:
    """One tool-call format: how to recognise it, its markers, and a reader for it."""

    name: str
    detect: Callable[[str, Collection[str]], bool]
    call_markers: tuple[str, ...]
    reasoning_markers: tuple[tuple[str, str], ...]
    make_reader: Callable[[Catalog, bool | None], StreamReader]

    def reader(self, tools: Tools = (), *, thinking_open: bool | None = None) -> StreamReader:
        """A fresh reader for one turn, calling only ``tools``."""
        catalog = tools if isinstance(tools, Catalog) else Catalog(tools)
        return self.make_reader(catalog, thinking_open)

    def __repr__(self) -> str:
        return f"Dialect({self.name!r})"


def in_template_or_vocab(template: str, vocab: Collection[str], *markers: str) -> bool:
    """All ``markers`` in the template, or all of them tokens of the vocabulary."""
    return all(m in template for m in markers) or all(m in vocab for m in markers)
