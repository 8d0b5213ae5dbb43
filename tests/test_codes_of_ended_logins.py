"""A login that is ended (an admin's revocation, the IdP's Single Logout, a deprovisioning, with
or without a reactivation after it) gets nothing through its authorization code, even when the
exchange checked the code before the ending and writes after it, however long after.

Ending a login spends every unused code of it, however long expired (``oauth/codes.py:
spend_codes``, decision 32): whether an expired code can still be exchanged depends on the
exchange and the ending agreeing on the time, and these attacks make them disagree: the exchange
stalls between its checks and its write, waits for its write (behind the ending's own lock, or a
pooled connection) after reading its clock, or runs on a node whose clock lags."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from bridge.logout.single_logout import SingleLogout
from bridge.oauth.deprovisioned import deprovision, reinstate
from bridge.oauth.revocation import Revocation
from bridge.saml.logout import LogoutRequest
from bridge.services import Services
from bridge.store.maintenance import purge_expired
from bridge.store.models import AuthorizationCode, RefreshFamily
from tests.helpers import Browser

ENDINGS = ("revocation", "idp_logout", "deprovisioning", "deprovisioning_then_reactivation")
# Long past the code's expiry: no margin of time closes these.
LATE = 600


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
        if how == "deprovisioning_then_reactivation":
            with bridge.db.transaction() as session:
                assert reinstate(session, idp_slug=code.idp_slug, subject=code.subject,
                                 now=bridge.clock.now(), actor="scim")


def _end_login_late(bridge: Services, how: str, code: AuthorizationCode, *,
                    clock_back: bool) -> None:
    """End the login once its code is long expired; ``clock_back``: then turn the clock back to
    the exchange's (a stale reading, or a node whose clock lags)."""
    bridge.clock.advance(LATE)
    _end_login(bridge, how, code)
    if clock_back:
        bridge.clock.advance(-LATE)


def _nothing_issued(browser: Browser, answer) -> None:  # noqa: ANN001
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["error"] == "invalid_grant"
    # Spent by the ending (whatever ended it: the answer says nothing of the person).
    assert browser.last_audit().code == "code_spent"
    with browser.bridge.db.transaction() as session:
        assert session.query(RefreshFamily).filter(RefreshFamily.revoked_at.is_(None)).count() == 0


def _stall_after_the_checks(monkeypatch: pytest.MonkeyPatch, bridge: Services,
                            stall: Callable[[], None]) -> list[bool]:
    """Run ``stall`` once where an exchange has passed its checks and reads its signing key,
    before its write; the list is non-empty once it ran."""
    original = bridge.keys.signing_key
    stalled: list[bool] = []

    def signing_key(alg: str) -> object:
        key = original(alg)
        if not stalled:
            stalled.append(True)
            stall()
        return key

    monkeypatch.setattr(bridge.keys, "signing_key", signing_key)
    return stalled


@pytest.mark.parametrize("how", ENDINGS)
def test_an_exchange_stalled_between_its_checks_and_its_write_issues_nothing(
        browser: Browser, bridge: Services, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    code, login = browser.login()
    row = _code(bridge)
    # After the checks, before the write: the request stalls, the code expires, the login ends.
    stalled = _stall_after_the_checks(
        monkeypatch, bridge, lambda: _end_login_late(bridge, how, row, clock_back=False))
    answer = browser.exchange(code, login.verifier)
    assert stalled, "the exchange did not reach its write"
    _nothing_issued(browser, answer)


@pytest.mark.parametrize("how", ENDINGS)
def test_an_exchange_that_waits_for_its_write_after_reading_its_clock_issues_nothing(
        browser: Browser, bridge: Services, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    code, login = browser.login()
    row = _code(bridge)
    original = bridge.db.single_statement
    waited: list[bool] = []

    @contextlib.contextmanager
    def wait_then_write() -> Iterator[object]:
        # The clock has been read for the write; the write waits (SQLite's write lock, held by
        # the ending; a pooled connection) while the login ends, the code long expired by then
        # by every clock but the stale reading.
        if not waited:
            waited.append(True)
            _end_login_late(bridge, how, row, clock_back=True)
        with original() as connection:
            yield connection

    monkeypatch.setattr(bridge.db, "single_statement", wait_then_write)
    answer = browser.exchange(code, login.verifier)
    assert waited, "the exchange did not reach its write"
    _nothing_issued(browser, answer)


@pytest.mark.parametrize("how", ENDINGS)
def test_a_node_whose_clock_lags_cannot_exchange_an_ended_logins_code(
        browser: Browser, bridge: Services, how: str) -> None:
    code, login = browser.login()
    row = _code(bridge)
    # The ending node: the code expired by its clock long ago; the exchanging node, its clock
    # far behind: the code is unexpired by it.
    _end_login_late(bridge, how, row, clock_back=True)
    answer = browser.exchange(code, login.verifier)
    _nothing_issued(browser, answer)


def test_a_spent_codes_refusal_says_nothing_of_its_person(browser: Browser,
                                                          bridge: Services) -> None:
    # Someone holding a spent code but not its verifier (or another client) learns that its
    # login ended, and nothing of whether its person is deprovisioned now.
    code, _ = browser.login()
    row = _code(bridge)
    answers = []
    for how in ("revocation", "deprovisioning", "deprovisioning_then_reactivation"):
        _end_login(bridge, how, row)
        answer = browser.exchange(code, "v" * 43)
        answers.append((answer.status_code, browser.last_audit().code))
    assert answers == [(400, "code_spent")] * 3


def test_a_code_purged_while_its_exchange_stalled_is_not_called_a_replay(
        browser: Browser, bridge: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    code, login = browser.login()

    def purge() -> None:
        bridge.clock.advance(2 * 3600)
        purge_expired(bridge.db, now=bridge.clock.now())
        bridge.clock.advance(-2 * 3600)  # the write's clock, read before a long wait

    stalled = _stall_after_the_checks(monkeypatch, bridge, purge)
    answer = browser.exchange(code, login.verifier)
    assert stalled and answer.status_code == 400
    # Not a replay: nothing used the code; it is gone because it expired. PostgreSQL's exchange
    # reads the code after the stall (its one statement turned it down), so finds none.
    gone = "code_unknown" if bridge.db.dialect == "postgresql" else "code_expired"
    assert browser.last_audit().code == gone
