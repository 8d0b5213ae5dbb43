"""A person their IdP deprovisioned, at the ACS: refused with ``login_deprovisioned`` whatever
else is wrong with the login, and never left with a live login by one that completes while the
deprovisioning runs. The check is part of the statement that completes the login (one round
trip on PostgreSQL), so both are tested from the attacker's side here."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bridge.config import Settings
from bridge.dev.saml_idp import USERS, DevIdp, User
from bridge.oauth.deprovisioned import deprovision
from bridge.services import Services
from bridge.store.db import Database
from bridge.store.models import AuditEvent, AuthorizationCode, RefreshFamily
from tests.conftest import DEMO_CLIENT, make_settings
from tests.helpers import Browser


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    # The mapping refuses members of "blocked": a refusal the claims mapping makes.
    (idp_dir / "dev.toml").write_text('display_name = "Development IdP"\n'
                                      '[mapping.groups]\ndeny = [{ exact = "blocked" }]\n')
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT])


def subject_of_alice(browser: Browser) -> str:
    browser.login("alice")
    with browser.bridge.db.transaction() as session:
        subject = session.scalar(select(AuthorizationCode.subject).limit(1))
    assert subject is not None
    return subject


def deprovision_alice(bridge: Services, subject: str) -> None:
    with bridge.db.transaction() as session:
        deprovision(session, idp_slug="dev", subject=subject, source="scim",
                    reason="deactivated", now=bridge.clock.now(), actor="test")


def login_refusals(bridge: Services) -> list[str | None]:
    with bridge.db.transaction() as session:
        return list(session.scalars(select(AuditEvent.code).where(
            AuditEvent.event == "login", AuditEvent.outcome == "refused")
            .order_by(AuditEvent.id)))


def test_a_deprovisioned_person_is_refused_as_such_when_the_mapping_refuses_them_too(
        browser: Browser, bridge: Services, dev_idp: DevIdp) -> None:
    """The claims mapping refuses the login as well (it runs before the statement that checks
    the refusal): the answer and the one audit event still say the person is deprovisioned,
    as when that check came first. (tests/test_step_up.py: the client's requirements.)"""
    subject = subject_of_alice(browser)
    blocked = User("alice", "alice", USERS["alice"].persistent_id,
                   {**USERS["alice"].attributes, "isMemberOf": ["blocked"]})
    saml_response = dev_idp.response_for(browser.start().pending, blocked)
    deprovision_alice(bridge, subject)
    codes = browser.count(AuthorizationCode)
    refusals = len(login_refusals(bridge))
    answer = browser.post_acs(saml_response)
    assert (answer.status_code, answer.get_json()["code"]) == (403, "login_deprovisioned")
    assert login_refusals(bridge)[refusals:] == ["login_deprovisioned"]
    assert browser.count(AuthorizationCode) == codes


def test_a_login_completing_while_its_person_is_deprovisioned_leaves_no_live_login(
        browser: Browser, bridge: Services) -> None:
    """The deprovisioning has spent the person's codes and ended their logins but not yet
    committed when a login of theirs reaches the ACS. On PostgreSQL that login's statement
    could not see the refusal, and its code was not among those spent: it waits for the
    deprovisioning now, and is refused. (SQLite runs one writer at a time.)"""
    subject = subject_of_alice(browser)
    login = browser.start()
    saml_response = browser.signed_response(login)
    ended, release = threading.Event(), threading.Event()

    def deprovisioning() -> None:
        with bridge.db.transaction() as session:
            deprovision(session, idp_slug="dev", subject=subject, source="scim",
                        reason="deactivated", now=bridge.clock.now(), actor="test")
            ended.set()
            release.wait(timeout=1.0)  # still open while the login arrives

    worker = threading.Thread(target=deprovisioning)
    worker.start()
    assert ended.wait(timeout=10)
    try:
        answer = browser.post_acs(saml_response)
    finally:
        release.set()
        worker.join()
    assert (answer.status_code, answer.get_json()["code"]) == (403, "login_deprovisioned")
    with bridge.db.transaction() as session:
        unspent = session.scalar(select(func.count()).select_from(AuthorizationCode).where(
            AuthorizationCode.subject == subject, AuthorizationCode.used_at.is_(None)))
        live = session.scalar(select(func.count()).select_from(RefreshFamily).where(
            RefreshFamily.subject == subject, RefreshFamily.revoked_at.is_(None)))
    assert (unspent, live) == (0, 0)
