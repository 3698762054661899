"""Until each dialect has its own reader: the XML reader, with thinking given back as reasoning."""

from __future__ import annotations

from ..catalog import Catalog
from ..items import Item, ParsedCall
from ..parser import ToolCallParser


class _Legacy:
    def __init__(self, catalog: Catalog, thinking_open: bool | None):
        self._catalog = catalog
        self._parser = ToolCallParser(catalog.names, thinking_open=thinking_open)

    def _typed(self, items: list[Item]) -> list[Item]:
        return [self._catalog.call(i.name, i.arguments, i.raw) if isinstance(i, ParsedCall) else i for i in items]

    def feed(self, text: str) -> list[Item]:
        return self._typed(self._parser.feed(text))

    def finish(self, *, truncated: bool = False) -> list[Item]:
        return self._typed(self._parser.finish())


def legacy_reader(catalog: Catalog, thinking_open: bool | None) -> _Legacy:
    return _Legacy(catalog, thinking_open)
