"""Database tables. Times are UTC seconds since the epoch (floats), stamped by the injected clock.

Constraint names follow one naming convention so that Alembic migrations can refer to them by
name on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SQLColumnExpression,
    String,
    Text,
    exists,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.selectable import Exists

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SigningKey(Base):
    """A token signing key. Published in JWKS from ``published_at`` until ``unpublish_at``."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    # The private key, PKCS#8 PEM encrypted with the key-encryption key (Fernet).
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)
    published_at: Mapped[float] = mapped_column(Double)
    # Signs from here on (after publication, so verifiers have it before they see its tokens).
    active_at: Mapped[float] = mapped_column(Double)
    retired_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    unpublish_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class SamlKey(Base):
    """The SP's own SAML keys (``use``): the encryption key IdPs encrypt assertions to, and the
    signing key of our requests. Several may be in force during a rollover: every encryption
    key decrypts; a signing key is published in our metadata from ``created_at`` until
    ``unpublish_at`` and signs from ``active_at`` until ``retired_at``."""

    __tablename__ = "saml_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    use: Mapped[str] = mapped_column(String(16))
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    certificate_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)
    retired_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    # Signing keys only (empty for encryption keys).
    active_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    unpublish_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class AuthnRequestRecord(Base):
    """An outstanding SAML AuthnRequest, bound to the OAuth request and browser that started it."""

    __tablename__ = "authn_requests"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    idp_slug: Mapped[str] = mapped_column(String(63))
    client_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(Text, nullable=True)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What the client asked of the login itself (bridge.oauth.authn_requirement).
    acr_values: Mapped[str | None] = mapped_column(Text, nullable=True)
    max_age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prompt: Mapped[str | None] = mapped_column(String(16), nullable=True)
    browser_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double, index=True)
    consumed_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    # RFC 9449 §10: the DPoP key the code is bound to, when the client named one.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ConsumedAssertion(Base):
    """Replay cache: an assertion ID is accepted once per IdP (the primary key enforces it)."""

    __tablename__ = "consumed_assertions"

    idp_entity_id: Mapped[str] = mapped_column(String(1024), primary_key=True)
    assertion_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Double, index=True)


class DpopProof(Base):
    """DPoP proofs seen (RFC 9449 §11.1): the primary key (a hash of the key's thumbprint and the
    proof's jti) makes each proof usable once across every node, until it is too old anyway."""

    __tablename__ = "dpop_proofs"

    proof_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Double, index=True)


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text, nullable=True)
    subject: Mapped[str] = mapped_column(String(128))
    idp_slug: Mapped[str] = mapped_column(String(63))
    claims_json: Mapped[str] = mapped_column(Text)
    auth_time: Mapped[int] = mapped_column(BigInteger)
    session_index: Mapped[str | None] = mapped_column(Text, nullable=True)
    session_not_on_or_after: Mapped[float | None] = mapped_column(Double, nullable=True)
    name_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double, index=True)
    used_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    # The refresh family minted from this code, revoked if the code is ever replayed.
    family_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # RFC 9449 §10: exchanged only with a proof of this key.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RefreshFamily(Base):
    """All refresh tokens descending from one login (RFC 6819 §5.2.2.3, RFC 9700 §4.14)."""

    __tablename__ = "refresh_families"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(128), index=True)
    idp_slug: Mapped[str] = mapped_column(String(63), index=True)
    claims_json: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    auth_time: Mapped[int] = mapped_column(BigInteger)
    session_index: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The SAML NameID, kept for Single Logout (a LogoutRequest names the session by it).
    name_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    # Absolute end: never extended by rotation; capped by the SAML SessionNotOnOrAfter.
    expires_at: Mapped[float] = mapped_column(Double, index=True)
    # For the idle timeout: the last rotation.
    last_used_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # RFC 9449 §5: a public client's login made with a DPoP proof refreshes only with proofs of
    # the same key (its RFC 7638 thumbprint).
    dpop_jkt: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("refresh_families.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[float] = mapped_column(Double)
    used_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Double, index=True)
    event: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    idp_slug: Mapped[str | None] = mapped_column(String(63), nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(128), nullable=True)
    error_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail_json: Mapped[str] = mapped_column(Text, default="{}")


Index("ix_audit_events_event_at", AuditEvent.event, AuditEvent.at)
Index("ix_refresh_families_session_index", RefreshFamily.idp_slug, RefreshFamily.session_index)
# IdP health (last login, last refusal) is read from the audit trail by IdP.
Index("ix_audit_events_idp_slug_event_at", AuditEvent.idp_slug, AuditEvent.event, AuditEvent.at)


class IdpRecord(Base):
    """An IdP managed through the admin API (IdPs declared as files in idp_metadata/ are not
    stored here). ``version_id`` is the metadata version in force (none for a draft). ``state``:
    draft (no metadata yet), testing (not offered to users), live; ``tested_version_id`` the
    version a passing test login was seen with (docs/decisions/0025)."""

    __tablename__ = "idps"

    slug: Mapped[str] = mapped_column(String(63), primary_key=True)
    version_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    settings_json: Mapped[str] = mapped_column(Text, default="{}")
    metadata_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    metadata_etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    metadata_last_modified: Mapped[str | None] = mapped_column(Text, nullable=True)
    metadata_fetched_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    metadata_fetch_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    # Bumped by every change, so every node notices and reloads (bridge.idps.registry).
    updated_at: Mapped[float] = mapped_column(Double, index=True)
    state: Mapped[str] = mapped_column(String(16), default="live", server_default="live")
    tested_version_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The fingerprint of the settings that passing test login was made with (settings_fingerprint).
    tested_settings: Mapped[str | None] = mapped_column(String(64), nullable=True)


class IdpEntityId(Base):
    """The entity ID each IdP in force answers to, for file IdPs (``source`` "file", written at
    start-up) and API-managed ones ("api", written with the version in force). The unique
    constraint is the guarantee that no two IdPs ever share one: ``sub`` is derived from the
    entity ID (bridge.saml.subject), so two IdPs with one entity ID could mint each other's users.
    The primary key keeps a slug to one IdP, file or API."""

    __tablename__ = "idp_entity_ids"

    slug: Mapped[str] = mapped_column(String(63), primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(1024), unique=True)
    source: Mapped[str] = mapped_column(String(8))  # file | api


class IdpMetadataVersion(Base):
    """Every metadata document ever proposed for an IdP: applied ones form its history."""

    __tablename__ = "idp_metadata_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(63), index=True)
    xml: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | applied | superseded | discarded
    source: Mapped[str] = mapped_column(String(16))  # upload | url | restore
    created_at: Mapped[float] = mapped_column(Double)
    created_by: Mapped[str] = mapped_column(String(256))
    applied_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    applied_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    diff_json: Mapped[str] = mapped_column(Text, default="{}")


class AdminToken(Base):
    """An admin API token for automation: stored as a hash, revocable, with an expiry."""

    __tablename__ = "admin_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    last_used_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    # Whose it is: the person of the admin session that made it (or of the token that made it);
    # their deprovisioning ends it. None for a token of the command line.
    owner_idp_slug: Mapped[str | None] = mapped_column(String(63), nullable=True)
    owner_subject: Mapped[str | None] = mapped_column(String(128), nullable=True)


Index("ix_admin_tokens_owner", AdminToken.owner_idp_slug, AdminToken.owner_subject)


class AdminSession(Base):
    """A person signed in to the admin pages (through the bridge's own SAML login)."""

    __tablename__ = "admin_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # "ticket": handed from the ACS to /admin/callback once, for two minutes; "session": the
    # cookie's. Only sessions authenticate.
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(256))
    # Shown beside the name on every admin page (the audit actor keeps the subject).
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    idp_slug: Mapped[str] = mapped_column(String(63))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double, index=True)


class TestLogin(Base):
    """The outcome of an admin's test login: what arrived and what would be issued, or why not."""

    __tablename__ = "test_logins"
    __test__ = False  # not a pytest class

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slug: Mapped[str] = mapped_column(String(63))
    request_id: Mapped[str] = mapped_column(String(128), unique=True)
    started_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double, index=True)
    completed_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    result_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The IdP's settings when the test started: it says nothing of settings changed since.
    settings_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)


class JobLease(Base):
    """Who runs a background job now: one holder per job across every node, until expires_at."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[float] = mapped_column(Double)
    last_run_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    last_result: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Health, across every node: shown by /readyz and `bridge jobs status`.
    last_success_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    last_failure_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ClientRecord(Base):
    """An OAuth client managed through the admin API (clients declared in the settings file are
    not stored here). ``settings_json`` is its ``[[clients]]`` table, checked by the same rules."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    settings_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)
    created_by: Mapped[str] = mapped_column(String(256))
    # When the client last changed, secrets included (nodes notice changes by ClientRevision).
    updated_at: Mapped[float] = mapped_column(Double, index=True)


class ClientRevision(Base):
    """One row: a number every change to the managed clients raises in its own transaction. Nodes
    compare it to know they must reload; unlike ``updated_at`` it cannot be left behind by a node
    whose clock ran ahead."""

    __tablename__ = "client_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger)


class ClientSecret(Base):
    """A managed confidential client's secret, as its SHA-256 (the secret is shown once). After a
    rotation the old secret keeps working until ``expires_at``; the newest has none."""

    __tablename__ = "client_secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("clients.client_id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Double)
    created_by: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class ProvisioningToken(Base):
    """A bearer token an IdP's provisioning client (SCIM) presents, one IdP each: stored as a
    hash, shown once. Rotating revokes the one before."""

    __tablename__ = "provisioning_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    idp_slug: Mapped[str] = mapped_column(String(63), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[float] = mapped_column(Double)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    last_used_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    # The person whose admin power issued it (None: the command line, or before migration
    # 0022); deprovisioning them revokes it.
    owner_idp_slug: Mapped[str | None] = mapped_column(String(63), nullable=True)
    owner_subject: Mapped[str | None] = mapped_column(String(128), nullable=True)


Index("ix_provisioning_tokens_owner", ProvisioningToken.owner_idp_slug,
      ProvisioningToken.owner_subject)


class ScimUser(Base):
    """A user an IdP provisioned over SCIM: the resource as last written, and the ``sub`` it
    stands for (bridge.provisioning.matching)."""

    __tablename__ = "scim_users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idp_slug: Mapped[str] = mapped_column(String(63))
    # userName is unique per IdP and compared without regard to case (RFC 7643 §4.1.1).
    user_name_key: Mapped[str] = mapped_column(String(256))
    external_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean)
    subject: Mapped[str | None] = mapped_column(String(128), nullable=True)
    resource_json: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)


Index("uq_scim_users_idp_slug_user_name_key", ScimUser.idp_slug, ScimUser.user_name_key,
      unique=True)
Index("ix_scim_users_idp_slug_external_id", ScimUser.idp_slug, ScimUser.external_id)


class ScimFormerSubject(Base):
    """A ``sub`` a SCIM user stood for before a rename (of its ``userName`` or ``externalId``):
    its deactivation or deletion still reaches the logins made under it (decision 23). Released
    when another user of the IdP comes to stand for that ``sub``."""

    __tablename__ = "scim_former_subjects"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(128), primary_key=True)
    idp_slug: Mapped[str] = mapped_column(String(63))


Index("ix_scim_former_subjects_idp_slug_subject", ScimFormerSubject.idp_slug,
      ScimFormerSubject.subject)


class DeprovisionedSubject(Base):
    """A person the IdP has deactivated or deleted (SCIM) or disabled (a security event): no new
    login until the IdP reactivates them. ``source`` names what put them here."""

    __tablename__ = "deprovisioned_subjects"

    idp_slug: Mapped[str] = mapped_column(String(63), primary_key=True)
    subject: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # scim | event
    reason: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Double)

    @classmethod
    def of(cls, idp_slug: SQLColumnExpression[str], subject: SQLColumnExpression[str]
           ) -> Exists:
        """``EXISTS``: a refusal of the person named by these columns of the row being read."""
        return exists().where(cls.idp_slug == idp_slug, cls.subject == subject)


class LiftedRefusal(Base):
    """When the last lifted refusal of a person began (and ended): an access token of no login
    issued before it began was ended by it, and stays ended after the IdP reactivated them."""

    __tablename__ = "lifted_refusals"

    idp_slug: Mapped[str] = mapped_column(String(63), primary_key=True)
    subject: Mapped[str] = mapped_column(String(128), primary_key=True)
    refused_at: Mapped[float] = mapped_column(Double)
    lifted_at: Mapped[float] = mapped_column(Double)


class ReceivedSecurityEvent(Base):
    """A Security Event Token's ``jti``, accepted once per IdP (the primary key enforces it)."""

    __tablename__ = "received_security_events"

    idp_slug: Mapped[str] = mapped_column(String(63), primary_key=True)
    jti: Mapped[str] = mapped_column(String(256), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Double, index=True)
