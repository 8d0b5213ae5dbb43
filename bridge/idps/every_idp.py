"""Every IdP a one-off command may name: the files in ``idp_metadata/`` and those managed through
the admin API, read from the database without starting the bridge (no keys made, nothing
registered). A database that has no schema yet holds no managed IdP, so the files are all."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from bridge.clock import Clock
from bridge.config.settings import Settings
from bridge.idps.endpoints import normalized_origins
from bridge.idps.files import load_idp_directory
from bridge.idps.registry import IdpRegistry
from bridge.idps.settings import IdentityProvider
from bridge.store.db import Database


def every_idp(settings: Settings, clock: Clock) -> dict[str, IdentityProvider]:
    files = load_idp_directory(settings.idp_metadata_dir,
                               now=dt.datetime.fromtimestamp(clock.now(), dt.UTC))
    if _no_database_yet(settings.database_url):
        return files
    db = Database(settings.database_url)
    try:
        if db.current_revision() is None:
            return files
        db.require_migrated()
        registry = IdpRegistry(db, clock, files,
                               shared_origins=normalized_origins(settings.idp_shared_origins))
        return dict(registry.items())
    finally:
        db.dispose()


def _no_database_yet(url: str) -> bool:
    """A SQLite file that does not exist: nothing was ever stored, and opening it would make it."""
    path = url.removeprefix("sqlite:///")
    return url.startswith("sqlite:///") and path != ":memory:" and not Path(path).exists()
