"""Once-only use of what an IdP sends: every assertion and logout message enters the replay cache
(``consumed_assertions``), whose primary key (IdP, ID) makes acceptance once-only across every
process and node; a second use fails with an IntegrityError."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from bridge import audit
from bridge.errors import SamlRejected
from bridge.saml import response as saml_response
from bridge.store import direct
from bridge.store.db import Database
from bridge.store.models import AuthnRequestRecord, ConsumedAssertion

_INSERT_ASSERTION = insert(ConsumedAssertion)
_CONSUME_REQUEST = (update(AuthnRequestRecord)
                    .where(AuthnRequestRecord.id == bindparam("request"),
                           AuthnRequestRecord.consumed_at.is_(None))
                    .values(consumed_at=bindparam("now")))


def remember_message(connection: direct.Runner | Session, *, idp_entity_id: str, message_id: str,
                     expires_at: float) -> None:
    """Enter an IdP's message ID in the replay cache, in the caller's transaction; the row lives
    until the message could no longer be valid."""
    values = {"idp_entity_id": idp_entity_id, "assertion_id": message_id,
              "expires_at": expires_at}
    if isinstance(connection, Session):
        connection.execute(_INSERT_ASSERTION, values)
    else:
        direct.execute(connection, _INSERT_ASSERTION, values)  # the login path


def use_assertion(connection: direct.Runner, verified: saml_response.VerifiedAssertion) -> None:
    remember_message(connection, idp_entity_id=verified.idp_entity_id,
                     message_id=verified.assertion_id, expires_at=verified.expires_at)


def consume(connection: direct.Runner, request_id: str, verified: saml_response.VerifiedAssertion,
            now: float) -> None:
    """Use the outstanding request and the assertion, once each, in the caller's transaction."""
    if direct.rowcount(connection, _CONSUME_REQUEST, {"request": request_id, "now": now}) != 1:
        raise SamlRejected("saml_replay", "This login response has already been used.")
    use_assertion(connection, verified)


def use_unsolicited(db: Database, verified: saml_response.VerifiedAssertion, *, now: float,
                    event: str, outcome: str, client_id: str, subject: str) -> None:
    """Use an assertion that answers no request of ours (IdP-initiated login, bearer grant) once,
    and audit it, in one transaction."""
    try:
        with db.driver_transaction() as connection:
            use_assertion(connection, verified)
            audit.record(connection, at=now, event=event, outcome=outcome,
                         idp_slug=verified.idp_slug, client_id=client_id, subject=subject)
    except sa_exc.IntegrityError:
        raise SamlRejected("saml_replay", "This assertion has already been used.") from None
