"""A collector of located problems, so that a validator reports every problem at once.

Each problem names where it is (``clients[web].redirect_uris``, ``idp.toml: mapping.roles[0]``)
and what would fix it. Validators take a ``Problems``, add to it, and raise ``ConfigError`` (or a
subclass) with all of them at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bridge.errors import ConfigError


class Problems:
    """Problems found so far, with the location new ones are added at.

    ``at(key)`` gives a view one level deeper that adds to the same list: keys join with ``.``,
    an index or a name in brackets (``"[0]"``, ``"[web]"``) joins as it is.
    """

    def __init__(self, where: str = "", found: list[str] | None = None) -> None:
        self.where = where
        self.found: list[str] = [] if found is None else found

    def at(self, key: str) -> Problems:
        if not self.where:
            return Problems(key, self.found)
        joiner = "" if key.startswith("[") else "."
        return Problems(f"{self.where}{joiner}{key}", self.found)

    def add(self, message: str) -> None:
        self.found.append(f"{self.where}: {message}" if self.where else message)

    def extend(self, located: list[str]) -> None:
        """Add problems that already name their location."""
        self.found.extend(located)

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Add the problems of a ``ConfigError`` raised inside instead of letting it through."""
        try:
            yield
        except ConfigError as error:
            self.found.extend(error.problems)

    def __len__(self) -> int:
        return len(self.found)

    def __bool__(self) -> bool:
        return bool(self.found)

    def raise_any(self, error: type[ConfigError] = ConfigError, *, code: str | None = None) -> None:
        if self.found:
            raise error(self.found, code=code)
