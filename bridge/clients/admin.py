"""Registering, changing, rotating and deleting the OAuth clients managed through the admin API,
the admin pages and ``bridge clients``.

A managed client's settings are a ``[[clients]]`` table checked by the file's own rules
(bridge.config.clients), so both kinds obey one rule set. Its secrets are made here (256 random
bits), shown once and stored as their SHA-256; a rotation lets the old secret work for an overlap
and then stop. Every change is validated completely before anything is written and recorded as an
audit event with who, before and after; no secret, nor its hash, is ever in one."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge import audit
from bridge.clients.registry import ClientRegistry
from bridge.config import ClientConfig
from bridge.config.clients import CLIENT_ID_RE, parse_client_table
from bridge.config.problems import Problems
from bridge.errors import Conflict, InvalidInput, NotFound
from bridge.oauth.revocation import end_logins
from bridge.store.models import AuthorizationCode, ClientRecord, ClientRevision, ClientSecret, RefreshFamily
from bridge.tokens.secrets_util import new_secret, secret_hash

if TYPE_CHECKING:
    from bridge.services import Services

MAX_OVERLAP_SECONDS = 30 * 86400


class ClientAdmin:
    def __init__(self, bridge: Services) -> None:
        self.bridge = bridge

    @property
    def registry(self) -> ClientRegistry:
        return self.bridge.clients

    # --- reading ---------------------------------------------------------------------------------

    def list_clients(self) -> list[dict[str, Any]]:
        with self.bridge.db.transaction() as session:
            records = {r.client_id: r for r in session.scalars(select(ClientRecord))}
        listed = [{**_summary(client, "file"), "shadows_managed": client_id in records}
                  for client_id, client in self.registry.files.items()]
        listed += [{**_summary_of_record(record), "source": "api", "shadows_managed": False}
                   for client_id, record in records.items() if client_id not in self.registry.files]
        return sorted(listed, key=lambda c: c["client_id"])

    def audiences_in_use(self) -> set[str]:
        """Every audience a client has or may exchange tokens for: the file's clients and every
        managed one, also one shadowed by the file or one that no longer loads."""
        used: set[str] = set()
        for client in self.registry.files.values():
            used.update((client.audience, *client.token_exchange_audiences))
        with self.bridge.db.transaction() as session:
            tables = [json.loads(text)
                      for text in session.scalars(select(ClientRecord.settings_json))]
        for table in tables:
            exchange = table.get("token_exchange_audiences") or ()
            for audience in (table.get("audience"), *exchange):
                if isinstance(audience, str):
                    used.add(audience)
        return used

    def get_client(self, client_id: str) -> dict[str, Any]:
        file_client = self.registry.files.get(client_id)
        if file_client is not None:
            return {**_summary(file_client, "file"), "settings": None, "secrets": []}
        record = self._record(client_id)
        now = self.bridge.clock.now()
        with self.bridge.db.transaction() as session:
            secrets = list(session.scalars(select(ClientSecret).where(
                ClientSecret.client_id == client_id).order_by(ClientSecret.id)))
            return {**_summary_of_record(record), "source": "api",
                    "settings": json.loads(record.settings_json),
                    "created_at": record.created_at, "created_by": record.created_by,
                    "updated_at": record.updated_at,
                    "secrets": [{"id": s.id, "created_at": s.created_at, "created_by": s.created_by,
                                 "expires_at": s.expires_at,
                                 "state": _secret_state(s.expires_at, now)} for s in secrets]}

    # --- changes ---------------------------------------------------------------------------------

    def create_client(self, table: Any, actor: str) -> tuple[dict[str, Any], str | None]:
        """Register a client; its secret (confidential clients) is in this answer only."""
        client = self._validated(table)
        self._free(client.client_id)
        now = self.bridge.clock.now()
        secret = None if client.public else new_secret()
        try:
            with self.bridge.db.transaction() as session:
                session.add(ClientRecord(client_id=client.client_id, settings_json=_json(table),
                                         created_at=now, created_by=actor, updated_at=now))
                session.flush()
                if secret is not None:
                    session.add(ClientSecret(client_id=client.client_id,
                                             secret_hash=secret_hash(secret), created_at=now,
                                             created_by=actor, expires_at=None))
                _bump_revision(session)
                audit.record(session, at=now, event="client_created", outcome="success",
                             client_id=client.client_id,
                             detail={"actor": actor, "after": table})
        except IntegrityError:  # registered on another node at the same moment
            raise Conflict(f"client_id: {client.client_id!r} already exists",
                           code="client_id_in_use") from None
        self.registry.invalidate()
        return self.get_client(client.client_id), secret

    def update_client(self, client_id: str, table: Any, actor: str) -> dict[str, Any]:
        """Replace a managed client's settings; its secrets stay as they are."""
        record = self._record(client_id)
        if isinstance(table, dict):
            table = {"client_id": client_id, **table}
            if table["client_id"] != client_id:
                raise InvalidInput("client_id: a client's ID cannot change; register a new client")
        client = self._validated(table)
        before = json.loads(record.settings_json)
        if client.public != bool(before.get("public", True)):
            raise InvalidInput("public: a client cannot change between public and confidential; "
                               "register a new client")
        now = self.bridge.clock.now()
        with self.bridge.db.transaction() as session:
            row = session.get(ClientRecord, client_id, with_for_update=True)
            if row is None:
                raise NotFound("client_unknown", f"No managed client {client_id!r}.")
            row.settings_json, row.updated_at = _json(table), max(now, row.updated_at)
            _bump_revision(session)
            audit.record(session, at=now, event="client_updated", outcome="success",
                         client_id=client_id,
                         detail={"actor": actor, "before": before, "after": table})
        self.registry.invalidate()
        return self.get_client(client_id)

    def rotate_secret(self, client_id: str, actor: str, *,
                      overlap_seconds: Any = None) -> tuple[dict[str, Any], str]:
        """A new secret, in this answer only; the older ones keep working for the overlap (the
        setting ``client_secret_overlap_seconds`` unless given; 0 ends them at once)."""
        record = self._record(client_id)
        if json.loads(record.settings_json).get("public", True):
            raise InvalidInput("public: a public client has no secret")
        if overlap_seconds is None:
            overlap_seconds = self.bridge.settings.client_secret_overlap_seconds
        if (isinstance(overlap_seconds, bool) or not isinstance(overlap_seconds, int)
                or not 0 <= overlap_seconds <= MAX_OVERLAP_SECONDS):
            raise InvalidInput(f"overlap_seconds: an integer from 0 to {MAX_OVERLAP_SECONDS}")
        now = self.bridge.clock.now()
        ends = now + overlap_seconds
        secret = new_secret()
        with self.bridge.db.transaction() as session:
            row = session.get(ClientRecord, client_id, with_for_update=True)
            if row is None:
                raise NotFound("client_unknown", f"No managed client {client_id!r}.")
            # Secrets past their overlap are of no use any more: they go.
            session.execute(delete(ClientSecret).where(ClientSecret.client_id == client_id,
                                                       ClientSecret.expires_at <= now))
            older = list(session.scalars(select(ClientSecret).where(
                ClientSecret.client_id == client_id)))
            for old in older:
                if old.expires_at is None or old.expires_at > ends:
                    old.expires_at = ends
            session.add(ClientSecret(client_id=client_id, secret_hash=secret_hash(secret),
                                     created_at=now, created_by=actor, expires_at=None))
            row.updated_at = max(now, row.updated_at)
            _bump_revision(session)
            audit.record(session, at=now, event="client_secret_rotated", outcome="success",
                         client_id=client_id,
                         detail={"actor": actor, "overlap_seconds": overlap_seconds,
                                 "before": {"secrets": [o.id for o in older]},
                                 "after": {"old_secrets_end_at": ends}})
        self.registry.invalidate()
        return self.get_client(client_id), secret

    def delete_client(self, client_id: str, actor: str) -> None:
        """Delete a managed client; its logins end and its codes are spent with it, so a client
        registered later under the same ID inherits none of them."""
        record = self._record(client_id)
        now = self.bridge.clock.now()
        with self.bridge.db.transaction() as session:
            row = session.get(ClientRecord, client_id)
            if row is not None:
                session.delete(row)
            ended = end_logins(session, families=[RefreshFamily.client_id == client_id],
                               codes=[AuthorizationCode.client_id == client_id], now=now,
                               reason="client_deleted")
            _bump_revision(session)
            audit.record(session, at=now, event="client_deleted", outcome="success",
                         client_id=client_id,
                         detail={"actor": actor, "before": json.loads(record.settings_json),
                                 "logins_ended": ended})
        self.registry.invalidate()

    # --- checks ----------------------------------------------------------------------------------

    def _validated(self, table: Any) -> ClientConfig:
        if not isinstance(table, dict):
            raise InvalidInput("body: a JSON object with the client's settings is required")
        problems = Problems()
        client = parse_client_table(table, self.registry.defaults, problems)
        if client is not None and client.token_signing_alg not in self.bridge.keys.algorithms:
            # Every node keeps a key series per algorithm of its settings; a client's algorithm
            # cannot start one on a running cluster.
            problems.at("token_signing_alg").add(
                f"this bridge signs with {', '.join(self.bridge.keys.algorithms)} only; another "
                "algorithm needs token_signing_alg in the settings file")
        if problems:
            raise InvalidInput(problems.found)
        assert client is not None
        return client

    def _free(self, client_id: str) -> None:
        if client_id in self.registry.files:
            raise Conflict(f"client_id: {client_id!r} is declared in the settings file; change "
                           "it there", code="client_id_in_use")
        with self.bridge.db.transaction() as session:
            if session.get(ClientRecord, client_id) is not None:
                raise Conflict(f"client_id: {client_id!r} already exists", code="client_id_in_use")
            managed = list(session.scalars(select(ClientRecord.client_id)))
        # IDs that differ only in case or trailing punctuation are told apart by no one who reads
        # them (a consent page, a log, an audit event).
        like = {_look(other): other for other in (*self.registry.files, *managed)}
        if _look(client_id) in like:
            raise Conflict(f"client_id: {client_id!r} is too like the client "
                           f"{like[_look(client_id)]!r}; choose another", code="client_id_in_use")

    def _record(self, client_id: str) -> ClientRecord:
        if client_id in self.registry.files:
            raise Conflict(f"client_id: {client_id!r} is declared in the settings file; change "
                           "it there", code="client_is_file")
        record = None
        if CLIENT_ID_RE.match(client_id):
            with self.bridge.db.transaction() as session:
                record = session.get(ClientRecord, client_id)
        if record is None:
            raise NotFound("client_unknown", f"No managed client {client_id[:64]!r}.")
        return record


def _bump_revision(session: Session) -> None:
    """Raise the clients' revision in the change's own transaction: every node compares it and
    reloads (bridge.clients.registry). The row lock also orders concurrent changes."""
    raised = session.execute(update(ClientRevision).values(revision=ClientRevision.revision + 1))
    if not raised.rowcount:  # type: ignore[attr-defined]  # the migration's row was removed
        session.add(ClientRevision(id=1, revision=1))


def _look(client_id: str) -> str:
    return client_id.lower().rstrip("._-")


def _json(table: dict[str, Any]) -> str:
    return json.dumps(table, sort_keys=True)


def _summary(client: ClientConfig, source: str) -> dict[str, Any]:
    return {"client_id": client.client_id, "source": source, "public": client.public,
            "audience": client.audience, "redirect_uris": list(client.redirect_uris)}


def _summary_of_record(record: ClientRecord) -> dict[str, Any]:
    table = json.loads(record.settings_json)
    return {"client_id": record.client_id, "public": bool(table.get("public", True)),
            "audience": table.get("audience"), "redirect_uris": table.get("redirect_uris", [])}


def _secret_state(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return "current"
    return "overlap" if now < expires_at else "ended"
