"""Every OAuth client in force: those declared in the settings file (``[[clients]]``, read at
start-up) and those managed through the admin API (in the database). A change made through any
node is in force on every node within ``recheck_seconds`` (2 s), without a restart: the registry
compares the clients' revision (a number every change raises in its own transaction, whatever
the clocks say) and reloads when it changed. A client ID it
does not know makes it look again (at most every ``miss_recheck_seconds``), so a client registered
on another node a moment ago is not refused here; a secret it does not know, at once, so a secret
rotated on another node works from the next request on.

The file is authoritative for what it declares: a managed client under a file client's ID is
never served (the admin API refuses to create one; one created on a node whose file did not
declare the ID yet stays shadowed, docs/decisions/0024-managed-clients.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from bridge.clients.registration import ACTOR as REGISTRATION_ACTOR
from bridge.clock import Clock
from bridge.config import ClientConfig, Settings
from bridge.config.clients import parse_client_table
from bridge.config.problems import Problems
from bridge.store.db import Database
from bridge.store.models import ClientRecord, ClientRevision, ClientSecret
from bridge.tokens.secrets_util import constant_time_equal, secret_hash

log = logging.getLogger("bridge.clients")


@dataclass(frozen=True)
class StoredSecret:
    secret_hash: str
    expires_at: float | None


def client_defaults(settings: Settings) -> dict[str, Any]:
    """The settings a client's own values default to, as the file's parser reads them."""
    return {"refresh_token_ttl_seconds": settings.refresh_token_ttl_seconds,
            "token_signing_alg": settings.token_signing_alg}


def load_managed_client(settings_json: str, defaults: Mapping[str, Any]) -> ClientConfig | None:
    problems = Problems()
    client = parse_client_table(json.loads(settings_json), defaults, problems)
    if problems:
        log.error("a managed client cannot be loaded: %s", "; ".join(problems.found))
        return None
    return client


class ClientRegistry(Mapping[str, ClientConfig]):
    def __init__(self, db: Database, clock: Clock, settings: Settings, *,
                 recheck_seconds: float = 2.0, miss_recheck_seconds: float = 0.25) -> None:
        self.db = db
        self.clock = clock
        self.recheck_seconds = recheck_seconds
        self.miss_recheck_seconds = miss_recheck_seconds
        self.files = {client.client_id: client for client in settings.clients}
        self.defaults = client_defaults(settings)
        self._lock = threading.Lock()
        self._checked_at = -1e18
        self._revision: int | None = None
        self._managed: dict[str, ClientConfig] = {}
        # What is served: the managed clients, a file's client in place of one of the same ID.
        # Made at each reload, read by every request; never changed in place.
        self._served: dict[str, ClientConfig] = dict(self.files)
        self._secrets: dict[str, tuple[StoredSecret, ...]] = {}
        self._self_registered: frozenset[str] = frozenset()
        # Parsed clients by (client_id, settings digest): a reload reparses only what changed.
        self._parsed: dict[tuple[str, str], ClientConfig] = {}

    # --- Mapping ---------------------------------------------------------------------------------

    def _current(self, *, missed: bool = False,
                 interval: float | None = None) -> dict[str, ClientConfig]:
        now = self.clock.now()
        if interval is None:
            interval = self.miss_recheck_seconds if missed else self.recheck_seconds
        with self._lock:
            if now - self._checked_at >= interval or now < self._checked_at:
                self._checked_at = now
                self._reload_if_changed()
            return self._served

    def __getitem__(self, client_id: str) -> ClientConfig:
        return self._current()[client_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def client(self, client_id: str) -> ClientConfig | None:
        """The client in force under ``client_id``; one unknown here is looked for again in the
        database before the answer is no."""
        found = self._current().get(client_id)
        if found is None and client_id:
            found = self._current(missed=True).get(client_id)
        return found

    def source(self, client_id: str) -> str | None:
        if client_id in self.files:
            return "file"
        return "api" if client_id in self._current() else None

    def managed(self) -> dict[str, ClientConfig]:
        """The managed clients that load, also those shadowed by a file client."""
        self._current()
        with self._lock:
            return dict(self._managed)

    def self_registered(self, client_id: str) -> bool:
        """Whether the managed client ``client_id`` registered itself at /register (rather than
        being set up by an admin or in the settings file)."""
        if client_id in self.files:
            return False
        self._current()
        with self._lock:
            return client_id in self._self_registered

    def secret_matches(self, client: ClientConfig, secret: str) -> bool:
        """Whether ``secret`` is a secret of ``client`` now: a file client's from the
        environment; a managed client's newest, or an older one within its overlap."""
        if not secret:
            return False
        if client.client_id in self.files:
            known = client.client_secret
            return known is not None and constant_time_equal(secret, known)
        presented = secret_hash(secret)
        # A secret not known here may be one rotated on another node a moment ago: look again,
        # whenever the last look was. The client is known, so its rate limit bounds the looks.
        for interval in (None, 0.0):
            self._current(interval=interval)
            with self._lock:
                stored = self._secrets.get(client.client_id, ())
            now = self.clock.now()
            # Every stored secret is compared, so that the time taken says nothing of which.
            matches = [hmac.compare_digest(presented, s.secret_hash)
                       and (s.expires_at is None or now < s.expires_at) for s in stored]
            if any(matches):
                return True
        return False

    def invalidate(self) -> None:
        """This node changed a client: reload at the next access, not after the recheck."""
        with self._lock:
            self._checked_at = -1e18
            self._revision = None

    # --- loading ---------------------------------------------------------------------------------

    def _reload_if_changed(self) -> None:
        with self.db.transaction() as session:
            revision = session.scalar(select(ClientRevision.revision)) or 0
            if revision == self._revision:
                return
            records = list(session.scalars(select(ClientRecord)))
            secrets = list(session.scalars(select(ClientSecret)))
        managed: dict[str, ClientConfig] = {}
        parsed: dict[tuple[str, str], ClientConfig] = {}
        for record in records:
            key = (record.client_id, hashlib.sha256(record.settings_json.encode()).hexdigest())
            client = self._parsed.get(key) or load_managed_client(record.settings_json,
                                                                  self.defaults)
            if client is None:  # validated when saved; reported, the others are served
                continue
            parsed[key] = client
            if client.client_id in self.files:
                log.error("managed client %s is not served: the settings file declares a client "
                          "with this ID", client.client_id)
                continue
            managed[client.client_id] = client
        by_client: dict[str, list[StoredSecret]] = {}
        for row in secrets:
            by_client.setdefault(row.client_id, []).append(
                StoredSecret(row.secret_hash, row.expires_at))
        self._managed, self._parsed, self._revision = managed, parsed, revision
        self._served = {**managed, **self.files}
        self._secrets = {client_id: tuple(rows) for client_id, rows in by_client.items()}
        self._self_registered = frozenset(
            record.client_id for record in records if record.created_by == REGISTRATION_ACTOR)
