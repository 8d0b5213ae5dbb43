"""A person their IdP deprovisioned, at the ACS: refused with ``login_deprovisioned`` whatever
else is wrong with the login, and never left with a live login by one that completes while the
deprovisioning runs. The check is part of the statement that completes the login (one round
trip on PostgreSQL), so both are tested from the attacker's side here."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bridge.config import Settings
from bridge.dev.saml_idp import USERS, DevIdp, User
from bridge.oauth.deprovisioned import deprovision, reinstate
from bridge.services import Services
from bridge.store.db import Database
from bridge.store.models import (
    AuditEvent,
    AuthorizationCode,
    DeprovisionedSubject,
    RefreshFamily,
)
from tests.conftest import CONFIDENTIAL_CLIENT, CONFIDENTIAL_SECRET, DEMO_CLIENT, make_settings
from tests.helpers import Browser


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    # The mapping refuses members of "blocked": a refusal the claims mapping makes.
    (idp_dir / "dev.toml").write_text('display_name = "Development IdP"\n'
                                      '[mapping.groups]\ndeny = [{ exact = "blocked" }]\n')
    # The confidential client may introspect; its tokens are for the demo's API.
    api = {**CONFIDENTIAL_CLIENT, "audience": DEMO_CLIENT["audience"]}
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, api])


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


def reinstate_alice(bridge: Services, subject: str) -> None:
    with bridge.db.transaction() as session:
        assert reinstate(session, idp_slug="dev", subject=subject, now=bridge.clock.now(),
                         actor="test")


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


def test_logins_completing_while_their_person_is_deprovisioned_do_not_outlive_it(
        browser: Browser, bridge: Services) -> None:
    """The deprovisioning has spent the person's codes and ended their logins, and not yet
    committed, when two logins of theirs complete at the ACS and one of them exchanges its code.
    On PostgreSQL neither statement can see the refusal yet, and what they store escapes the
    deprovisioning's end of the person's logins. Once it has committed, the other code is
    refused at the token endpoint, and the exchanged login's refresh token and access token are
    good for nothing more. (SQLite runs one writer at a time: the logins wait and are refused.)"""
    subject = subject_of_alice(browser)
    first, second = browser.start(), browser.start()
    logins = (first, second)
    answers = [browser.signed_response(login) for login in logins]
    ended, release = threading.Event(), threading.Event()

    def deprovisioning() -> None:
        with bridge.db.transaction() as session:
            deprovision(session, idp_slug="dev", subject=subject, source="scim",
                        reason="deactivated", now=bridge.clock.now(), actor="test")
            ended.set()
            # Still open while the logins arrive (SQLite: they wait for it, up to this long).
            release.wait(timeout=1.0)

    worker = threading.Thread(target=deprovisioning)
    worker.start()
    assert ended.wait(timeout=10)
    try:
        completed = [browser.post_acs(answer) for answer in answers]
        exchanged = None
        if completed[0].status_code == 302:
            exchanged = browser.exchange(browser.code_from(completed[0], first), first.verifier)
    finally:
        release.set()
        worker.join()
    if bridge.db.dialect != "postgresql":
        assert [answer.get_json()["code"] for answer in completed] == ["login_deprovisioned"] * 2
        return
    # PostgreSQL: both logins completed and the first was exchanged before the refusal committed.
    assert exchanged is not None and exchanged.status_code == 200, exchanged
    tokens = exchanged.get_json()
    late = browser.exchange(browser.code_from(completed[1], second), second.verifier)
    assert (late.status_code, late.get_json()["error"]) == (400, "invalid_grant")
    assert browser.last_audit().code == "login_deprovisioned"
    refreshed = browser.refresh(tokens["refresh_token"])
    assert (refreshed.status_code, refreshed.get_json()["error"]) == (400, "invalid_grant")
    assert browser.last_audit().code == "login_deprovisioned"
    userinfo = browser.client.get("/userinfo", headers={
        "Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 401
    with bridge.db.transaction() as session:
        families = session.scalar(select(func.count()).select_from(RefreshFamily).where(
            RefreshFamily.subject == subject, RefreshFamily.revoked_at.is_(None)))
    assert families == 1  # the escaped one: unrevoked, yet neither refreshed nor live
    # The IdP reactivates the person: what escaped the deprovisioning stays ended.
    reinstate_alice(bridge, subject)
    with bridge.db.transaction() as session:
        reinstated = session.scalars(select(AuditEvent).where(
            AuditEvent.event == "reinstate")).one()
    assert json.loads(reinstated.detail_json)["families"] == 1
    assert browser.refresh(tokens["refresh_token"]).status_code == 400
    assert browser.last_audit().code == "refresh_token_revoked"
    assert browser.client.get("/userinfo", headers={
        "Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    assert browser.exchange(browser.code_from(completed[1], second),
                            second.verifier).status_code == 400
    assert browser.tokens()["refresh_token"]  # and the person logs in again


BACKEND = (CONFIDENTIAL_CLIENT["client_id"], CONFIDENTIAL_SECRET)
BACKEND_REDIRECT = CONFIDENTIAL_CLIENT["redirect_uris"][0]


def test_what_escaped_a_deprovisioning_is_good_for_nothing(browser: Browser,
                                                           bridge: Services) -> None:
    """A code and logins the deprovisioning did not end (as a login racing it leaves them: the
    refusal alone is stored here): the code is refused at the token endpoint, the refresh
    tokens rotate no more and introspect as inactive, the access token is no longer live; and
    once the IdP reactivates the person, none of it comes back. On both databases."""
    subject = subject_of_alice(browser)
    tokens = browser.tokens()
    code, login = browser.login()
    backend_code, backend_login = browser.login(client_id=BACKEND[0],
                                                redirect_uri=BACKEND_REDIRECT)
    backend = browser.client.post("/token", auth=BACKEND, data={
        "grant_type": "authorization_code", "code": backend_code,
        "redirect_uri": BACKEND_REDIRECT, "code_verifier": backend_login.verifier}).get_json()

    def introspected(token: str) -> dict:
        return browser.client.post("/introspect", data={"token": token},  # type: ignore[no-any-return]
                                   auth=BACKEND).get_json()

    assert introspected(backend["refresh_token"])["active"] is True
    with bridge.db.transaction() as session:
        session.add(DeprovisionedSubject(idp_slug="dev", subject=subject, source="scim",
                                         reason="deactivated", at=bridge.clock.now()))
    exchanged = browser.exchange(code, login.verifier)
    assert (exchanged.status_code, exchanged.get_json()["error"]) == (400, "invalid_grant")
    assert browser.last_audit().code == "login_deprovisioned"
    refreshed = browser.refresh(tokens["refresh_token"])
    assert (refreshed.status_code, refreshed.get_json()["error"]) == (400, "invalid_grant")
    assert browser.last_audit().code == "login_deprovisioned"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert browser.client.get("/userinfo", headers=bearer).status_code == 401
    assert introspected(backend["refresh_token"]) == {"active": False}
    assert introspected(backend["access_token"]) == {"active": False}
    reinstate_alice(bridge, subject)
    assert browser.exchange(code, login.verifier).status_code == 400
    assert browser.refresh(tokens["refresh_token"]).status_code == 400
    assert browser.client.get("/userinfo", headers=bearer).status_code == 401
    assert introspected(backend["refresh_token"]) == {"active": False}
