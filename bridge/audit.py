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
    values = {"at": at, "event": event, "outcome": outcome, "code": code, "idp_slug": idp_slug,
              "client_id": client_id, "subject": subject, "error_id": error_id,
              "detail_json": json.dumps(detail or {}, default=str, sort_keys=True)[:8000]}
    if isinstance(session, Connection):
        session.execute(_INSERT, values)  # hot paths use Core connections
    else:
        session.add(AuditEvent(**values))
