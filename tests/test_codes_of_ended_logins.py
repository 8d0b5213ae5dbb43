"""A login that is ended (an admin's revocation, the IdP's Single Logout, a deprovisioning) gets
nothing through its authorization code, even when the exchange checked the code before the
ending and writes after it.

Ending a login spends only the codes that could still be exchanged (``oauth/codes.py:
spend_codes``); the write that uses a code checks its expiry again by a clock read just before,
and whether its person was deprovisioned. The attacks below stall an exchange between its checks
and its write, long enough that the code has expired by the time the login is ended, and run an
exchange on a node whose clock lags the ending node's, within the margin."""

from __future__ import annotations

import pytest

from bridge.logout.single_logout import SingleLogout
from bridge.oauth.codes import SPEND_CLOCK_MARGIN_SECONDS
from bridge.oauth.deprovisioned import deprovision
from bridge.oauth.revocation import Revocation
from bridge.saml.logout import LogoutRequest
from bridge.services import Services
from bridge.store.models import AuthorizationCode, RefreshFamily
from tests.helpers import Browser

ENDINGS = ("revocation", "idp_logout", "deprovisioning")


def _code(bridge: Services) -> AuthorizationCode:
    with bridge.db.transaction() as session:
        return session.query(AuthorizationCode).one()


def _end_login(bridge: Services, how: str, code: AuthorizationCode) -> None:
    if how == "revocation":
        Revocation(bridge).revoke_all(subject=code.subject, actor="admin")
    elif how == "idp_logout":  # what a verified LogoutRequest does
        request = LogoutRequest(id="_logout-1", name_id=code.name_id or "",
                                session_indexes=(code.session_index or "",),
                                replay_expires_at=bridge.clock.now() + 3600)
        SingleLogout(bridge)._end_sessions(bridge.idps.get("dev"), request, slug="dev",
                                           error_id="e")
    else:
        with bridge.db.transaction() as session:
            deprovision(session, idp_slug=code.idp_slug, subject=code.subject, source="scim",
                        reason="scim_deactivated", now=bridge.clock.now(), actor="scim")


def _nothing_issued(browser: Browser, answer, expected_code: str) -> None:  # noqa: ANN001
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["error"] == "invalid_grant"
    assert browser.last_audit().code == expected_code
    with browser.bridge.db.transaction() as session:
        assert session.query(RefreshFamily).filter(RefreshFamily.revoked_at.is_(None)).count() == 0


@pytest.mark.parametrize("how", ENDINGS)
def test_an_exchange_stalled_past_its_logins_end_issues_nothing(
        browser: Browser, bridge: Services, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    code, login = browser.login()
    row = _code(bridge)
    ttl = bridge.settings.authorization_code_ttl_seconds
    original = bridge.keys.signing_key
    stalled: list[bool] = []

    def stall_then_end(alg: str) -> object:
        # Between the exchange's checks (and clock reading) and its write: the request stalls
        # until its code has been expired for longer than the margin, and the login ends.
        key = original(alg)
        if not stalled:
            stalled.append(True)
            bridge.clock.advance(ttl + SPEND_CLOCK_MARGIN_SECONDS + 1)
            _end_login(bridge, how, row)
        return key

    monkeypatch.setattr(bridge.keys, "signing_key", stall_then_end)
    answer = browser.exchange(code, login.verifier)
    assert stalled, "the exchange did not reach its write"
    _nothing_issued(browser, answer,
                    "login_deprovisioned" if how == "deprovisioning" else "code_expired")


@pytest.mark.parametrize("how", ENDINGS)
def test_a_node_whose_clock_lags_within_the_margin_cannot_exchange_an_ended_logins_code(
        browser: Browser, bridge: Services, how: str) -> None:
    code, login = browser.login()
    row = _code(bridge)
    ttl = bridge.settings.authorization_code_ttl_seconds
    lag = SPEND_CLOCK_MARGIN_SECONDS - 5
    # The ending node: the code expired by its clock, by almost the margin.
    bridge.clock.advance(ttl + lag - 1)
    _end_login(bridge, how, row)
    # The exchanging node, its clock behind: the code is unexpired by it.
    bridge.clock.advance(-lag)
    answer = browser.exchange(code, login.verifier)
    # The ending spent the code: a use of it is a reuse.
    _nothing_issued(browser, answer, "code_reused")
