"""Audit events: who did what, with which outcome and why. Written in the caller's transaction
when the action succeeds, or in a transaction of its own when it is refused."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

from bridge import metrics
from bridge.store.models import AuditEvent

_INSERT = insert(AuditEvent)


def record(
    session: Session | Connection,
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
    # A refusal is recorded whatever the refused request carried: values an attacker chose (a
    # slug in a path, a client_id) are cut to their columns and lose NUL characters, which
    # PostgreSQL refuses, so the record of a refusal never fails.
    values = {"at": at, "event": event, "outcome": outcome, "code": _column(code, 64),
              "idp_slug": _column(idp_slug, 63), "client_id": _column(client_id, 64),
              "subject": _column(subject, 128), "error_id": _column(error_id, 32),
              "detail_json": json.dumps(detail or {}, default=str, sort_keys=True)[:8000]}
    if isinstance(session, Connection):
        session.execute(_INSERT, values)  # hot paths use Core connections
    else:
        session.add(AuditEvent(**values))


def _column(value: str | None, length: int) -> str | None:
    return None if value is None else str(value).replace("\x00", "\ufffd")[:length]
