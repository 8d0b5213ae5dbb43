"""The IdP registry as a mapping: each of items() and values() is one reading of it, so that a
reload in the middle (another node deleted an IdP, and the recheck came due) cannot lose an IdP
halfway and raise KeyError where the caller iterates (the bearer grant answered 500)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.idps.registry import IdpRegistry
from bridge.services import Services


def test_items_and_values_read_the_registry_once(bridge: Services,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = object(), object()

    def readings() -> Iterator[dict[str, object]]:
        yield {"gone": first, "stays": second}
        while True:  # every later reading: the registry reloaded, "gone" deleted meanwhile
            yield {"stays": second}

    for view in ("items", "values"):
        reading = readings()
        monkeypatch.setattr(IdpRegistry, "_current", lambda self, r=reading: next(r))
        taken = list(getattr(bridge.idps, view)())
        expected = [("gone", first), ("stays", second)] if view == "items" else [first, second]
        assert taken == expected
