"""Audit events: who did what, with which outcome and why. Written in the caller's transaction
when the action succeeds, or in a transaction of its own when it is refused (``refusals_audited``)."""

from __future__ import annotations

import functools
import inspect
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bridge import metrics
from bridge.errors import BridgeError
from bridge.store import direct
from bridge.store.db import Database
from bridge.store.models import AuditEvent

if TYPE_CHECKING:
    from bridge.services import Services

_INSERT = insert(AuditEvent)
# The columns of ``event_row()``, for statements that insert an event from parameters.
EVENT_COLUMNS = ("at", "event", "outcome", "code", "idp_slug", "client_id", "subject", "error_id",
                 "detail_json")


def record(
    session: Session | direct.Runner,
    *,
    at: float,
    event: str,
    outcome: str,
    code: str | None = None,
    idp_slug: str | None = None,
    client_id: str | None = None,
    subject: str | None = None,
    error_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    metrics.observe_event(event, outcome, code, idp_slug, client_id)
    values = event_row(at=at, event=event, outcome=outcome, code=code, idp_slug=idp_slug,
                       client_id=client_id, subject=subject, error_id=error_id, detail=detail)
    if isinstance(session, Session):
        session.add(AuditEvent(**values))
    else:
        direct.execute(session, _INSERT, values)  # hot paths use the driver's connection


def event_row(
    *,
    at: float,
    event: str,
    outcome: str,
    code: str | None = None,
    idp_slug: str | None = None,
    client_id: str | None = None,
    subject: str | None = None,
    error_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``audit_events`` row of an event, for ``record`` or for a statement that writes it
    beside other rows (the caller then counts it with ``metrics.observe_event``)."""
    # A refusal is recorded whatever the refused request carried: values an attacker chose (a
    # slug in a path, a client_id) are cut to their columns and lose NUL characters, which
    # PostgreSQL refuses, so the record of a refusal never fails.
    return {"at": at, "event": event, "outcome": outcome, "code": _column(code, 64),
            "idp_slug": _column(idp_slug, 63), "client_id": _column(client_id, 64),
            "subject": _column(subject, 128), "error_id": _column(error_id, 32),
            "detail_json": _detail_json(detail or {},
                                        REFUSAL_DETAIL_CHARS if outcome == "refused" else None)}


# A refusal's detail holds what the refused request carried, so its size is the sender's choice;
# an admin's change (an IdP's settings, which a restore reads back) is kept whole.
REFUSAL_DETAIL_CHARS = 8000
_CUT_STRING_CHARS = 200


def _detail_json(detail: dict[str, Any], most: int | None) -> str:
    text = json.dumps(detail, default=str, sort_keys=True)
    if most is None or len(text) <= most:
        return text
    return json.dumps(bounded_detail(detail, most), default=str, sort_keys=True)


def bounded_detail(detail: dict[str, Any], most: int = REFUSAL_DETAIL_CHARS) -> dict[str, Any]:
    """``detail`` if its JSON is at most ``most`` characters; else with its strings cut (and
    saying so), or, if that is not enough, only its keys. For a refusal's audit row and its log
    line alike: both hold what the sender chose."""
    if len(json.dumps(detail, default=str)) <= most:
        return detail
    cut = {**_cut_strings(detail), "detail_cut": True}
    if len(json.dumps(cut, default=str)) <= most:
        return cut
    return {"detail_cut": True,
            "keys": [str(key)[:_CUT_STRING_CHARS] for key in list(detail)[:20]]}


def _cut_strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key)[:_CUT_STRING_CHARS]: _cut_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_cut_strings(item) for item in value[:20]]
    if isinstance(value, str):
        return value[:_CUT_STRING_CHARS]
    return value


def detail_of(detail_json: str) -> dict[str, Any]:
    """A stored event's detail. Rows written before details were cut as JSON may hold text cut
    in the middle: those read as a detail that says so, rather than failing whoever lists them."""
    try:
        detail = json.loads(detail_json)
    except ValueError:
        return {"detail_unreadable": True}
    return detail if isinstance(detail, dict) else {"detail": detail}


def _column(value: str | None, length: int) -> str | None:
    return None if value is None else str(value).replace("\x00", "\ufffd")[:length]


@dataclass
class Refusal:
    """What a refused use case was about, for its audit event. A use case that learns more on
    the way (the ACS finds the client in the login request) fills it in as it goes."""

    idp_slug: str | None = None
    client_id: str | None = None
    error_id: str | None = None


class Audited(Protocol):
    services: Services


A = TypeVar("A", bound=Audited)
P = ParamSpec("P")
R = TypeVar("R")


def refusals_audited(event: str, *, refusals: type[BridgeError] = BridgeError
                     ) -> Callable[[Callable[Concatenate[A, P], R]],
                                   Callable[Concatenate[A, P], R]]:
    """Record every ``refusals`` error the use case raises as a refused ``event``, then let it
    go on to the caller. The event names the client (an argument ``client``), the IdP (an
    argument ``slug``) and the error id (an argument ``error_id``), or whatever the ``Refusal``
    passed as the argument ``refusal`` holds by then."""

    def decorate(method: Callable[Concatenate[A, P], R]) -> Callable[Concatenate[A, P], R]:
        signature = inspect.signature(method)

        @functools.wraps(method)
        def audited(self: A, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(self, *args, **kwargs)
            except refusals as error:
                arguments = signature.bind(self, *args, **kwargs).arguments
                refusal = arguments.get("refusal")
                if not isinstance(refusal, Refusal):
                    refusal = Refusal(idp_slug=arguments.get("slug"),
                                      client_id=getattr(arguments.get("client"), "client_id", None),
                                      error_id=arguments.get("error_id"))
                record_refusal(self.services, event, error, refusal)
                raise

        return audited

    return decorate


def record_refusal(services: Services, event: str, error: BridgeError, refusal: Refusal) -> None:
    """The refusal's audit event, in a transaction of its own (the use case's was rolled back)."""
    try:
        # On the driver's connection: a refusal is what an unauthenticated sender can cause
        # at will, so it costs one INSERT and no ORM session.
        with services.db.driver_transaction() as connection:
            record(connection, at=services.clock.now(), event=event, outcome="refused",
                   code=error.code, idp_slug=refusal.idp_slug, client_id=refusal.client_id,
                   error_id=refusal.error_id or secrets.token_hex(6), detail=error.log_detail)
    except BridgeError:
        pass  # the database is down: the refusal still stands, and is logged by the caller


def audit_events(db: Database, limit: int = 50) -> list[dict[str, object]]:
    """The latest audit events, newest first."""
    with db.transaction() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit))
        return [{"event": r.event, "outcome": r.outcome, "code": r.code, "idp": r.idp_slug,
                 "client": r.client_id, "detail": detail_of(r.detail_json)} for r in rows]
