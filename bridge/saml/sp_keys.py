"""The SP's SAML encryption keys: generated on first start, stored encrypted with the
key-encryption key, advertised in SP metadata, all of them tried when decrypting (rollover)."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from bridge.clock import Clock
from bridge.errors import ConfigError
from bridge.store.db import Database
from bridge.store.models import SamlKey

CERTIFICATE_DAYS = 5 * 365


@dataclass(frozen=True)
class DecryptionKey:
    id: str
    private_key_pem: str
    certificate_pem: str


class SpKeys:
    def __init__(self, db: Database, kek: Fernet, clock: Clock, *, entity_id: str) -> None:
        self.db = db
        self.kek = kek
        self.clock = clock
        self.entity_id = entity_id
        self._lock = threading.Lock()
        self._keys: list[DecryptionKey] | None = None
        self._decrypts: set[str] = set()

    def ensure_key(self) -> None:
        with self.db.transaction() as session:
            if session.scalars(select(SamlKey.id).where(SamlKey.use == "encryption")).first() is None:
                session.add(self._new_key())
        self._keys = None

    def decryption_keys(self) -> list[DecryptionKey]:
        """Every key in force, newest first."""
        with self._lock:
            if self._keys is None:
                with self.db.transaction() as session:
                    rows = list(session.scalars(select(SamlKey).where(
                        SamlKey.use == "encryption", SamlKey.retired_at.is_(None)
                    ).order_by(SamlKey.created_at.desc())))
                self._keys = [DecryptionKey(r.id, self._decrypt(r), r.certificate_pem)
                              for r in rows]
            return self._keys

    def _decrypt(self, row: SamlKey) -> str:
        try:
            return self.kek.decrypt(row.private_key_encrypted).decode()
        except InvalidToken:
            # A configuration problem (503), never a 500 at the ACS or the SP metadata.
            raise ConfigError(f"SAML key {row.id}: cannot be decrypted with the configured "
                              "key-encryption key (was BRIDGE_KEY_ENCRYPTION_KEY changed?)") from None

    def undecryptable(self) -> list[str]:
        """The ids of stored SAML keys (retired ones too) that the key-encryption key cannot
        decrypt; each key is decrypted once per process (its ciphertext never changes)."""
        with self.db.transaction() as session:
            rows = session.execute(select(SamlKey.id, SamlKey.private_key_encrypted)
                                   .order_by(SamlKey.created_at)).all()
        failed = []
        for key_id, encrypted in rows:
            if key_id in self._decrypts:
                continue
            try:
                self.kek.decrypt(encrypted)
            except InvalidToken:
                failed.append(key_id)
            else:
                self._decrypts.add(key_id)
        return failed

    def certificates(self) -> list[str]:
        return [k.certificate_pem for k in self.decryption_keys()]

    def _new_key(self) -> SamlKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        now = dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.entity_id[:64])])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CERTIFICATE_DAYS))
            .sign(key, hashes.SHA256())
        )
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        return SamlKey(
            id=secrets.token_hex(8),
            use="encryption",
            private_key_encrypted=self.kek.encrypt(pem),
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            created_at=self.clock.now(),
        )
