"""The SP's SAML keys in the database (``saml_keys``), private keys encrypted with the
key-encryption key, as the token signing keys are (``bridge.tokens.keys``).

* Encryption keys: the certificate IdPs encrypt assertions to. Every one in force decrypts.
* Signing keys: sign our AuthnRequests and logout messages. One signs at a time; rollover follows
  docs/decisions/0020-sp-signing-key.md: a new key is *published* (in our SP metadata) a lead time
  before it *signs*, so that IdPs which read our metadata (or whose admin uploads the new
  certificate) trust it before they meet it; the key it replaces stops signing at that moment and
  stays published for a retention time, then leaves the metadata.

Every node re-reads the table every few seconds, so a key rotated by ``bridge saml-keys rotate``
(another process) or by another node's scheduled job is seen everywhere.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from bridge.clock import Clock
from bridge.errors import ConfigError, Misconfigured
from bridge.saml.keys import DecryptionKey, SigningKey
from bridge.sp_keys.certificates import certificate_not_after, new_key_pair
from bridge.store.db import Database
from bridge.store.models import SamlKey

# The logger keeps the name it had before the module moved: log filters and alerts name it.
log = logging.getLogger("bridge.saml_keys")

ENCRYPTION = "encryption"
SIGNING = "signing"
# How long a view of the table is trusted before it is read again (far below any lead time).
_CACHE_SECONDS = 15.0
# A signing certificate this close to its expiry (beyond the lead time) gets a successor from the
# scheduled job even when no rotation interval is set: an unattended bridge never signs with an
# expired certificate, and the successor is published a full lead time before it signs.
EXPIRY_MARGIN_SECONDS = 30 * 86400.0
# The longest publication lead of one rotation: the largest sp_signing_key_lead_days.
MAX_LEAD_SECONDS = 365 * 86400.0
WARN_DAYS = (30, 7)


@dataclass(frozen=True)
class KeyReport:
    """One key as ``bridge saml-keys list``, the metrics and the admin pages show it."""

    id: str
    use: str
    # signing: "next" (published, not signing yet), "active", "retired" (published, no longer
    # signing), "unpublished"; encryption: "active" or "unpublished".
    state: str
    created_at: float
    active_at: float | None
    retired_at: float | None
    unpublish_at: float | None
    not_after: dt.datetime
    days_left: int
    warning: str | None


class SamlKeys:
    def __init__(self, db: Database, kek: Fernet, clock: Clock, *, entity_id: str,
                 lead_seconds: float, retention_seconds: float) -> None:
        self.db = db
        self.kek = kek
        self.clock = clock
        self.entity_id = entity_id
        self.lead_seconds = lead_seconds
        self.retention_seconds = retention_seconds
        self._lock = threading.Lock()
        self._cached_at = -1e18
        self._rows: list[SamlKey] = []
        self._private: dict[str, str] = {}

    # --- reading -------------------------------------------------------------------------------

    def _keys(self) -> list[SamlKey]:
        now = self.clock.now()
        with self._lock:
            if now - self._cached_at > _CACHE_SECONDS or now < self._cached_at:
                with self.db.transaction() as session:
                    rows = list(session.scalars(select(SamlKey)))
                    session.expunge_all()
                self._rows = rows
                self._cached_at = now
            return self._rows

    def invalidate(self) -> None:
        with self._lock:
            self._cached_at = -1e18

    def _private_pem(self, row: SamlKey) -> str:
        pem = self._private.get(row.id)
        if pem is None:
            try:
                pem = self.kek.decrypt(row.private_key_encrypted).decode("ascii")
            except InvalidToken:
                raise Misconfigured(f"SAML {row.use} key {row.id}: cannot be decrypted with the "
                                  "configured key-encryption key (was BRIDGE_KEY_ENCRYPTION_KEY "
                                  "changed?)") from None
            self._private[row.id] = pem
        return pem

    def undecryptable(self) -> list[str]:
        """The ids of stored SAML keys (any use or state) that the key-encryption key cannot
        decrypt, for `bridge check` and /readyz; each decrypted once per process."""
        failed = []
        for row in sorted(self._keys(), key=lambda r: r.created_at):
            try:
                self._private_pem(row)
            except ConfigError:
                failed.append(row.id)
        return failed

    def decryption_keys(self) -> list[DecryptionKey]:
        """Every encryption key in force, newest first."""
        rows = sorted((r for r in self._keys() if r.use == ENCRYPTION and r.retired_at is None),
                      key=lambda r: r.created_at, reverse=True)
        return [DecryptionKey(r.id, self._private_pem(r), r.certificate_pem) for r in rows]

    def encryption_certificates(self) -> list[str]:
        return [k.certificate_pem for k in self.decryption_keys()]

    def signing_certificates(self) -> list[str]:
        """Every signing certificate published now: the one that signs, the next one during its
        lead time, and retired ones during their retention; the signing one first."""
        now = self.clock.now()
        published = [r for r in self._keys() if r.use == SIGNING and r.created_at <= now
                     and (r.unpublish_at is None or r.unpublish_at > now)]
        active = self._active_row(now)
        published.sort(key=lambda r: (r is not active, -(r.active_at or 0.0)))
        return [r.certificate_pem for r in published]

    def _active_row(self, now: float) -> SamlKey | None:
        candidates = [r for r in self._keys() if r.use == SIGNING and r.active_at is not None
                      and r.active_at <= now and (r.retired_at is None or r.retired_at > now)]
        return max(candidates, key=lambda r: (r.active_at or 0.0, r.created_at), default=None)

    def signing_key(self) -> SigningKey:
        """The key that signs now."""
        now = self.clock.now()
        row = self._active_row(now)
        if row is None:
            self.invalidate()
            row = self._active_row(now)
        if row is None:
            raise Misconfigured("no active SP signing key; run `bridge saml-keys rotate --now`")
        return SigningKey(row.id, self._private_pem(row), row.certificate_pem)

    def report(self) -> list[KeyReport]:
        now = self.clock.now()
        moment = dt.datetime.fromtimestamp(now, dt.UTC)
        active = self._active_row(now)
        out = []
        for row in sorted(self._keys(), key=lambda r: (r.use, r.created_at)):
            if row.use == SIGNING:
                # A key retired before its turn (or with a start time that never comes) will
                # never sign: retired, not next.
                signs_later = (row.active_at is not None and row.active_at > now
                               and (row.retired_at is None or row.active_at < row.retired_at))
                state = ("unpublished" if row.unpublish_at is not None and row.unpublish_at <= now
                         else "active" if row is active
                         else "next" if signs_later
                         else "retired")
            else:  # every encryption key in force is published and decrypts
                state = "active" if row.retired_at is None else "unpublished"
            not_after = certificate_not_after(row.certificate_pem)
            days = (not_after - moment).total_seconds() / 86400
            warning = None
            if state in ("active", "next"):
                warning = ("expired" if days < 0 else "expires_within_7_days" if days < WARN_DAYS[1]
                           else "expires_within_30_days" if days < WARN_DAYS[0] else None)
            out.append(KeyReport(row.id, row.use, state, row.created_at, row.active_at,
                                 row.retired_at, row.unpublish_at, not_after, int(days), warning))
        return out

    # --- writing -------------------------------------------------------------------------------

    def ensure_keys(self) -> None:
        """On first start: an encryption key, and a signing key that signs at once (no IdP can
        know a key of ours before our metadata first names it, so there is nothing to wait for)."""
        now = self.clock.now()
        with self.db.transaction() as session:
            # Nodes starting together on a new database: one at a time, or each would read the
            # table empty and add keys of its own (FOR UPDATE locks nothing on an empty table).
            self.db.serialize(session, "saml_keys")
            uses = set(session.scalars(select(SamlKey.use).distinct()))
            if ENCRYPTION not in uses:
                session.add(self._new_row(ENCRYPTION, now))
            if SIGNING not in uses:
                session.add(self._new_row(SIGNING, now, active_at=now))
        self.invalidate()

    def rotate(self, *, lead_seconds: float | None = None, withdraw_old: bool = False) -> SamlKey:
        """Publish a new signing key now; it signs after the lead time (``lead_seconds``, default
        the configured one; 0: at once), and the key it replaces then retires: no longer signing,
        still published for the retention time.

        ``withdraw_old`` (a compromised key; only with a lead of 0): every other signing key stops
        signing and leaves our metadata at once, with no retention, so an IdP that reads our
        metadata again stops trusting it (docs/decisions/0020-sp-signing-key.md)."""
        now = self.clock.now()
        lead = self.lead_seconds if lead_seconds is None else lead_seconds
        # Checked before anything is written: an infinite or NaN start time would be committed
        # and then break every reader of the table (a lead from 0 to the setting's largest).
        if not 0.0 <= lead <= MAX_LEAD_SECONDS:
            raise ConfigError(f"lead: {lead!r} s is not from 0 to {MAX_LEAD_SECONDS / 86400:.0f} "
                              "days")
        if withdraw_old and lead != 0.0:
            raise ConfigError("withdrawing the other keys needs the new key to sign at once "
                              "(a lead of 0, --now): a withdrawn key can no longer sign")
        active_at = now + lead
        withdrawn = []
        with self.db.transaction() as session:
            row = self._new_row(SIGNING, now, active_at=active_at)
            for old in session.scalars(select(SamlKey).where(SamlKey.use == SIGNING)):
                if withdraw_old:
                    if old.unpublish_at is None or not old.unpublish_at <= now:
                        withdrawn.append(old.id)
                        old.unpublish_at = now
                    if old.retired_at is None or not old.retired_at <= now:
                        old.retired_at = now
                elif old.retired_at is None or not old.retired_at <= active_at:
                    old.retired_at = active_at
                    old.unpublish_at = active_at + self.retention_seconds
            session.add(row)
            session.flush()
            session.expunge(row)
        self.invalidate()
        log.info("SP signing key %s published; it signs from %s", row.id,
                 dt.datetime.fromtimestamp(active_at, dt.UTC).isoformat(timespec="seconds"),
                 extra={"key": row.id, "active_at": active_at})
        if withdraw_old:
            log.warning("SP signing keys withdrawn (no longer signing or published): %s",
                        ", ".join(withdrawn) or "none", extra={"keys": withdrawn})
        return row

    def rotation_due(self, *, rotation_seconds: float | None) -> str | None:
        """Why the scheduled job should publish a successor now, or None: the newest signing key
        is older than ``rotation_seconds``, or the certificate that signs expires within the lead
        time plus a margin. Never while a successor is already waiting for its turn."""
        now = self.clock.now()
        self.invalidate()
        rows = [r for r in self._keys() if r.use == SIGNING]
        if any(self._waiting(r, now) for r in rows):
            return None
        newest = max(rows, key=lambda r: r.created_at, default=None)
        if newest is None:
            return "no signing key"
        if rotation_seconds and now - newest.created_at >= rotation_seconds:
            return "rotation interval"
        active = self._active_row(now)
        if active is not None:
            left = certificate_not_after(active.certificate_pem).timestamp() - now
            if left < self.lead_seconds + EXPIRY_MARGIN_SECONDS:
                return "certificate expiry"
        return None

    @staticmethod
    def _waiting(row: SamlKey, now: float) -> bool:
        """A successor waiting for its turn: one that starts to sign later, while its certificate
        is still valid. A start time that is infinite, NaN or past the certificate's expiry (as
        stored by versions that did not check the lead) never comes, and must not hold back the
        rotation for good."""
        if row.active_at is None or (row.retired_at is not None and row.retired_at <= now):
            return False
        expiry = certificate_not_after(row.certificate_pem).timestamp()
        return now < row.active_at < expiry

    def rotate_if_due(self, *, rotation_seconds: float | None) -> str:
        """For the scheduled job: rotate when ``rotation_due`` says so; say what happened."""
        reason = self.rotation_due(rotation_seconds=rotation_seconds)
        if reason is None:
            return "not due"
        row = self.rotate()
        log.warning("SP signing key rotated (%s): give IdPs that do not read our metadata the new "
                    "certificate before it signs", reason, extra={"key": row.id, "reason": reason})
        return f"published {row.id} ({reason})"

    def _new_row(self, use: str, now: float, *, active_at: float | None = None) -> SamlKey:
        private_pem, certificate_pem = new_key_pair(self.entity_id, now)
        return SamlKey(
            id=secrets.token_hex(8),
            use=use,
            private_key_encrypted=self.kek.encrypt(private_pem.encode("ascii")),
            certificate_pem=certificate_pem,
            created_at=now,
            active_at=active_at,
        )
