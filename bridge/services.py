"""The collaborators every use case works with, opened once per process by ``build_services``.

``Services`` has no behaviour of its own: it is what the web app, the CLI and the background jobs
share (settings, clock, database, keys, IdPs). The use cases are built from it in
``bridge.application``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from cryptography.fernet import Fernet

from bridge.clients.registry import ClientRegistry
from bridge.clock import Clock
from bridge.config import Settings
from bridge.idps.endpoints import normalized_origins
from bridge.idps.files import load_idp_directory
from bridge.idps.registry import IdpRegistry, register_file_idps
from bridge.idps.targets import check_idp_initiated_targets
from bridge.sp_keys.manager import SamlKeys
from bridge.store.db import Database
from bridge.tokens.keys import KeyRing, derive_secret, load_kek

log = logging.getLogger("bridge.services")


@dataclass(frozen=True)
class DerivedSecrets:
    """Keys derived from the key-encryption key, one per purpose."""

    # Successors of refresh tokens are derived, not stored: a retried refresh within the reuse
    # interval recomputes the same successor (tokens/refresh.py).
    refresh_successor: bytes
    # Seals the link that carries a logout to an IdP whose Single Logout takes HTTP-POST only.
    logout_ticket: bytes
    # Makes the IDs of our LogoutRequests recognisable in the IdP's LogoutResponse.
    logout_request_id: bytes
    # MACs the DPoP nonces every node hands out and accepts (tokens/dpop_nonce.py).
    dpop_nonce: bytes


# Not frozen: tests move the clock of a running app (``services.clock = FixedClock(...)``), and
# every use case reads its collaborators from here at call time.
@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: Database
    # Every IdP in force: the files of idp_metadata/ and the managed ones (bridge.idps.registry).
    idps: IdpRegistry
    # Every OAuth client in force: the settings file's and the managed ones (bridge.clients).
    clients: ClientRegistry
    keys: KeyRing
    sp_keys: SamlKeys
    secrets: DerivedSecrets


def assemble_services(settings: Settings, db: Database, clock: Clock,
                      idps: IdpRegistry) -> Services:
    """The collaborators around an open database and a set of IdPs; creates no keys."""
    kek_text = load_kek(settings.key_encryption_key, instance_dir=settings.instance_dir,
                        production=settings.is_production)
    kek = Fernet(kek_text.encode("ascii"))
    algorithms = {settings.token_signing_alg, *(c.token_signing_alg for c in settings.clients)}
    keys = KeyRing(db, kek, clock, algorithms=algorithms,
                   access_token_ttl=settings.access_token_ttl_seconds,
                   cache_seconds=settings.signing_key_cache_seconds)
    sp_keys = SamlKeys(db, kek, clock, entity_id=settings.sp_entity_id,
                       lead_seconds=settings.sp_signing_key_lead_days * 86400.0,
                       retention_seconds=settings.sp_signing_key_retention_days * 86400.0)
    check_idp_initiated_targets(settings, idps)
    secrets = DerivedSecrets(refresh_successor=derive_secret(kek_text, "refresh-successor"),
                             logout_ticket=derive_secret(kek_text, "logout-ticket"),
                             logout_request_id=derive_secret(kek_text, "logout-request-id"),
                             dpop_nonce=derive_secret(kek_text, "dpop-nonce"))
    return Services(settings=settings, clock=clock, db=db, idps=idps,
                    clients=ClientRegistry(db, clock, settings), keys=keys, sp_keys=sp_keys,
                    secrets=secrets)


def build_services(settings: Settings, clock: Clock) -> Services:
    """Open the database, register the IdP files, make sure keys exist: what start-up does."""
    now = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
    files = load_idp_directory(settings.idp_metadata_dir, now=now)
    shared_origins = normalized_origins(settings.idp_shared_origins)
    db = Database(settings.database_url)
    try:
        db.require_migrated()
        register_file_idps(db, files, settings.idp_metadata_dir, shared_origins=shared_origins)
    except BaseException:
        db.dispose()  # start-up stops here: leave no connection open behind
        raise
    services = assemble_services(settings, db, clock,
                                 IdpRegistry(db, clock, files, shared_origins=shared_origins))
    services.keys.ensure_keys()
    services.sp_keys.ensure_keys()
    for problem in key_problems(services):  # /readyz keeps failing, naming it too
        log.error(problem)
    return services


def key_problems(services: Services) -> list[str]:
    """Every stored key the configured key-encryption key cannot decrypt, each named, for
    `bridge check` and /readyz: a wrong key otherwise shows only at the first signature or the
    first encrypted assertion."""
    names = ([f"signing key {kid}" for kid in services.keys.undecryptable()]
             + [f"SAML key {key_id}" for key_id in services.sp_keys.undecryptable()])
    if not names:
        return []
    return [f"key_encryption_key: cannot decrypt {', '.join(names)}: BRIDGE_KEY_ENCRYPTION_KEY "
            "is not the key they were stored with (set the one this database's keys were made "
            "with)"]
