"""The dashboard's navigation: each app lists its pages in its `nav.py`; the shell shows them in order."""

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class NavEntry:
    label: str
    url_name: str  # reversed for the link, and compared with the request's `view_name` to mark it active
    order: int


class NavRegistry:
    def __init__(self) -> None:
        self._entries: dict[str, NavEntry] = {}

    def register(self, *, label: str, url_name: str, order: int) -> NavEntry:
        """Add a page to the navigation (again the same entry is a no-op, a different one an error)."""
        entry = NavEntry(label=label, url_name=url_name, order=order)
        if self._entries.setdefault(url_name, entry) != entry:
            raise ValueError(f"The navigation has {url_name!r} already: {self._entries[url_name]}.")
        return entry

    def __iter__(self) -> Iterator[NavEntry]:
        return iter(sorted(self._entries.values(), key=lambda entry: (entry.order, entry.url_name)))


nav = NavRegistry()
