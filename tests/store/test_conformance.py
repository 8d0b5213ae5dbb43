"""What must behave the same on SQLite and PostgreSQL, run on both (Dex ``storage/conformance``).

Each case drives the functions the bridge itself calls (bridge.oauth.codes, bridge.replay,
bridge.tokens.refresh) against a real database: single use of authorization codes and of assertion
IDs, refresh rotation and family revocation, concurrent rotation, and a schema at the migrations'
head. The races are real: two connections, one holding its transaction open while the other
tries.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bridge import audit
from bridge.errors import SamlRejected, TokenError
from bridge.oauth.codes import (
    Exchange,
    exchange_in_one_statement,
    find_code,
    redeem_code,
    spend_codes,
    use_code,
)
from bridge.oauth.deprovisioned import deprovision, unless_deprovisioned
from bridge.oauth.revocation import Revocation, end_logins
from bridge.replay import remember_message, use_request
from bridge.services import Services
from bridge.store.db import Database
from bridge.store.models import (
    AuditEvent,
    AuthnRequestRecord,
    AuthorizationCode,
    Base,
    DeprovisionedSubject,
    RefreshFamily,
    RefreshToken,
)
from bridge.tokens import refresh
from bridge.tokens.secrets_util import new_secret, secret_hash

pytestmark = pytest.mark.conformance

NOW = 1_800_000_000.0
KEY = b"k" * 32
NO_REUSE = refresh.RefreshPolicy()
# How long the first of two racers keeps its transaction open after its write: the second
# racer's statement must be waiting on the first by then.
HOLD_SECONDS = 0.3


def _new_code(database: Database, **overrides: object) -> str:
    code = new_secret()
    values: dict[str, object] = {
        "code_hash": secret_hash(code), "client_id": "demo", "redirect_uri": "https://rp/cb",
        "code_challenge": None, "scope": "openid", "nonce": None, "subject": "s-1",
        "idp_slug": "dev", "claims_json": "{}", "auth_time": int(NOW), "session_index": "idx-1",
        "session_not_on_or_after": None, "name_id": "n-1", "created_at": NOW,
        "expires_at": NOW + 60}
    values.update(overrides)
    with database.connection() as connection:
        connection.execute(sa.insert(AuthorizationCode), values)
    return code


def _use_code(database: Database, code: str) -> bool:
    with database.connection() as connection:
        return use_code(connection, secret_hash(code), NOW)


def _new_family(database: Database) -> refresh.Rotation:
    with database.connection() as connection:
        return refresh.store_family(connection, refresh.new_family(
            now=NOW, client_id="demo", subject="s-1", idp_slug="dev",
            claims_json="{}", scope="openid", auth_time=int(NOW), session_index=None,
            name_id=None, expires_at=NOW + 3600))


def _rotate(database: Database, token: str, *, now: float = NOW + 1,
            policy: refresh.RefreshPolicy = NO_REUSE) -> refresh.Rotation:
    with database.connection() as connection:
        return refresh.rotate(connection, token=token, client_id="demo", now=now, policy=policy,
                              successor_key=KEY)


def _rotate_and_hold(database: Database, token: str,
                     policy: refresh.RefreshPolicy = NO_REUSE) -> Callable[[threading.Event], Any]:
    """The first racer: rotate ``token``, say so, and keep the transaction open a while."""

    def first(written: threading.Event) -> refresh.Rotation:
        with database.connection() as connection:
            rotation = refresh.rotate(connection, token=token, client_id="demo", now=NOW + 1,
                                      policy=policy, successor_key=KEY)
            written.set()
            time.sleep(HOLD_SECONDS)
            return rotation

    return first


def _race(first: Callable[[threading.Event], Any], second: Callable[[], Any]) -> list[object]:
    """Run ``first`` (which calls ``started`` once it has written, then holds its transaction
    for HOLD_SECONDS) and, while it holds, ``second``; what each returned or raised."""
    outcomes: list[object] = [None, None]
    written = threading.Event()

    def run(index: int, work: Callable[[], Any]) -> None:
        try:
            outcomes[index] = work()
        except Exception as error:  # the outcome under test
            outcomes[index] = error
        finally:
            written.set()

    threads = [threading.Thread(target=run, args=(0, lambda: first(written)))]
    threads[0].start()
    assert written.wait(30)
    threads.append(threading.Thread(target=run, args=(1, second)))
    threads[1].start()
    for thread in threads:
        thread.join(60)
    return outcomes


# --- authorization codes ---------------------------------------------------------------------


def test_an_authorization_code_is_used_once(database: Database) -> None:
    code = _new_code(database)
    assert _use_code(database, code) is True
    assert _use_code(database, code) is False
    with database.connection() as connection:
        found = find_code(connection, secret_hash(code))
        assert found is not None and found.used_at == NOW


def test_of_two_concurrent_exchanges_of_one_code_one_wins(database: Database) -> None:
    code = _new_code(database)

    def first(written: threading.Event) -> bool:
        with database.connection() as connection:
            used = use_code(connection, secret_hash(code), NOW)
            written.set()
            time.sleep(HOLD_SECONDS)
            return used

    outcomes = _race(first, lambda: _use_code(database, code))
    assert outcomes == [True, False]


# --- the code exchange in one statement (PostgreSQL) -----------------------------------------


def _exchange(code: str, **overrides: Any) -> Exchange:
    values: dict[str, Any] = {
        "code_hash": secret_hash(code), "client_id": "demo", "redirect_uri": "https://rp/cb",
        "challenge": None, "proof_jkt": None, "family_id": refresh.new_family_id(),
        "family_expires_at": NOW + 3600, "family_dpop_jkt": None,
        "token_hash": secret_hash(new_secret())}
    values.update(overrides)
    return Exchange(**values)


def _exchange_at_once(database: Database, exchange: Exchange) -> Any:
    row = audit.event_row(at=NOW, event="token", outcome="success", client_id="demo",
                          detail={"grant": "authorization_code"})
    with database.single_statement() as connection:
        return exchange_in_one_statement(connection, exchange, NOW, row)


def _written(database: Database, exchange: Exchange) -> tuple[Any, Any, int, list[Any]]:
    """The code's row, the family's, how many tokens it has, and the exchange audit events."""
    with database.connection() as connection:
        code = connection.execute(sa.select(AuthorizationCode).where(
            AuthorizationCode.code_hash == exchange.code_hash)).one_or_none()
        family = connection.execute(sa.select(RefreshFamily).where(
            RefreshFamily.id == exchange.family_id)).one_or_none()
        tokens = connection.execute(sa.select(sa.func.count()).select_from(RefreshToken).where(
            RefreshToken.family_id == exchange.family_id)).scalar_one()
        events = connection.execute(sa.select(AuditEvent).where(
            AuditEvent.event == "token")).all()
    return code, family, tokens, events


@pytest.fixture
def postgresql_only(database: Database) -> Database:
    if database.dialect != "postgresql":
        pytest.skip("the exchange in one statement is PostgreSQL's")
    return database


@pytest.mark.parametrize("session_ends", [None, NOW + 600])
def test_an_exchange_in_one_statement_starts_the_login_the_code_holds(
        postgresql_only: Database, session_ends: float | None) -> None:
    database = postgresql_only
    code = _new_code(database, subject="s-9", idp_slug="okta", claims_json='{"a": 1}',
                     nonce="n", scope="openid email", session_index="idx-9", name_id="n-9",
                     session_not_on_or_after=session_ends, code_challenge="c" * 43,
                     dpop_jkt="j" * 43)
    exchange = _exchange(code, challenge="c" * 43, proof_jkt="j" * 43, family_dpop_jkt="j" * 43)
    row = _exchange_at_once(database, exchange)
    assert (row.idp_slug, row.subject, row.claims_json, row.scope, row.nonce) == (
        "okta", "s-9", '{"a": 1}', "openid email", "n")
    stored, family, tokens, events = _written(database, exchange)
    assert (stored.used_at, stored.family_id) == (NOW, exchange.family_id)
    assert (family.client_id, family.subject, family.idp_slug, family.claims_json, family.scope,
            family.session_index, family.name_id, family.dpop_jkt, family.created_at) == (
        "demo", "s-9", "okta", '{"a": 1}', "openid email", "idx-9", "n-9", "j" * 43, NOW)
    # The login ends with the IdP's session when that ends first.
    assert family.expires_at == (NOW + 3600 if session_ends is None else session_ends)
    assert tokens == 1
    assert [(e.outcome, e.idp_slug, e.subject, e.client_id) for e in events] == [
        ("success", "okta", "s-9", "demo")]
    assert _exchange_at_once(database, _exchange(code)) is None  # once only


# Each check of the grant broken: the statement must use nothing and write nothing, so that the
# grant's own checks refuse it with their error.
@pytest.mark.parametrize("case", [
    "unknown", "used", "another_client", "expired", "another_redirect_uri", "no_verifier",
    "another_verifier", "verifier_unasked", "no_proof", "another_proof", "person_deprovisioned"])
def test_an_exchange_in_one_statement_that_breaks_a_check_writes_nothing(
        postgresql_only: Database, case: str) -> None:
    database = postgresql_only
    code_values: dict[str, Any] = {"expires_at": NOW + 60}
    sent: dict[str, Any] = {}
    if case == "expired":
        code_values["expires_at"] = NOW  # expired at its expiry instant, as the grant sees it
    if case in ("no_verifier", "another_verifier"):
        code_values["code_challenge"] = "c" * 43
        sent["challenge"] = None if case == "no_verifier" else "d" * 43
    if case == "verifier_unasked":
        sent["challenge"] = "c" * 43
    if case in ("no_proof", "another_proof"):
        code_values["dpop_jkt"] = "j" * 43
        sent["proof_jkt"] = None if case == "no_proof" else "k" * 43
    code = _new_code(database, **code_values)
    if case == "used":
        _use_code(database, code)
    if case == "another_client":
        sent["client_id"] = "other"
    if case == "another_redirect_uri":
        sent["redirect_uri"] = "https://rp/cb/"
    if case == "person_deprovisioned":
        _refuse_person(database)
    exchange = _exchange(new_secret() if case == "unknown" else code, **sent)
    assert _exchange_at_once(database, exchange) is None
    stored, family, tokens, events = _written(database, _exchange(code, **{
        "family_id": exchange.family_id}))
    assert stored.used_at == (NOW if case == "used" else None)
    assert stored.family_id is None
    assert (family, tokens, events) == (None, 0, [])


def test_spending_a_logins_codes_leaves_other_codes_alone(database: Database) -> None:
    ended = _new_code(database, session_index="ended")
    other = _new_code(database, session_index="other")
    with database.transaction() as session:
        spend_codes(session, AuthorizationCode.session_index == "ended", now=NOW)
    assert _use_code(database, ended) is False
    assert _use_code(database, other) is True


def test_spending_covers_every_unused_code_however_long_expired(database: Database) -> None:
    # Expired by our clock, long ago: a node whose clock lags, or an exchange that read its
    # clock before waiting for its write, could still take it for unexpired.
    long_expired = _new_code(database, session_index="ended", expires_at=NOW - 3000)
    live = _new_code(database, session_index="ended")
    with database.transaction() as session:
        spend_codes(session, AuthorizationCode.session_index == "ended", now=NOW)
    with database.connection() as connection:
        used_at = dict(connection.execute(sa.select(
            AuthorizationCode.code_hash, AuthorizationCode.used_at)).all())
    assert used_at == {secret_hash(long_expired): NOW, secret_hash(live): NOW}


# --- the assertion replay cache --------------------------------------------------------------


def _use_assertion(database: Database, idp: str, assertion_id: str) -> None:
    with database.connection() as connection:
        remember_message(connection, idp_entity_id=idp, message_id=assertion_id,
                         expires_at=NOW + 300)


def test_an_assertion_id_is_accepted_once_per_idp(database: Database) -> None:
    _use_assertion(database, "https://idp.example.org", "_a1")
    with pytest.raises(sa.exc.IntegrityError):
        _use_assertion(database, "https://idp.example.org", "_a1")
    # Another IdP's assertion of the same ID is its own.
    _use_assertion(database, "https://other.example.net", "_a1")


def test_of_two_concurrent_uses_of_one_assertion_one_wins(database: Database) -> None:
    assertion_id = f"_{uuid.uuid4().hex}"

    def first(written: threading.Event) -> bool:
        with database.connection() as connection:
            remember_message(connection, idp_entity_id="https://idp.example.org",
                             message_id=assertion_id, expires_at=NOW + 300)
            written.set()
            time.sleep(HOLD_SECONDS)
            return True

    outcomes = _race(first, lambda: _use_assertion(database, "https://idp.example.org",
                                                   assertion_id))
    assert outcomes[0] is True
    assert isinstance(outcomes[1], sa.exc.IntegrityError)


# --- a login's completion: the request, the assertion, the code and the audit event -------------


def _new_request(database: Database) -> str:
    request_id = f"_{uuid.uuid4().hex}"
    with database.transaction() as session:
        session.add(AuthnRequestRecord(
            id=request_id, idp_slug="dev", client_id="demo", redirect_uri="https://rp/cb",
            scope="openid", browser_hash="b" * 64, created_at=NOW, expires_at=NOW + 300))
    return request_id


def _complete(connection: Any, request_id: str, assertion_id: str,
              person: tuple[str, str] = ("dev", "s-1")) -> str:
    """Use the request and the assertion and store a code and an audit event with them, as a
    login's completion does; the code."""
    code, refused = _try_completing(connection, request_id, assertion_id, person)
    assert refused is None
    return code


def _try_completing(connection: Any, request_id: str, assertion_id: str,
                    person: tuple[str, str]) -> tuple[str, Any]:
    """``_complete``, unless ``person`` is deprovisioned: the code, and the reason the
    completion was refused (None when it was not)."""
    code = new_secret()
    code_row = {
        "code_hash": secret_hash(code), "client_id": "demo", "redirect_uri": "https://rp/cb",
        "code_challenge": None, "scope": "openid", "nonce": None, "dpop_jkt": None,
        "subject": "s-1", "idp_slug": "dev", "claims_json": "{}", "auth_time": int(NOW),
        "session_index": None, "session_not_on_or_after": None, "name_id": "n-1",
        "created_at": NOW, "expires_at": NOW + 60}
    audit_row = audit.event_row(at=NOW, event="login", outcome="success", idp_slug="dev",
                                client_id="demo", subject="s-1", detail={"request": request_id})
    refused = use_request(connection, request_id,
                          {"idp_entity_id": "https://idp.example.org",
                           "assertion_id": assertion_id, "expires_at": NOW + 300},
                          NOW, unless=unless_deprovisioned(*person),
                          also=((AuthorizationCode, code_row), (AuditEvent, audit_row)))
    return code, refused


def _completed(database: Database, request_id: str) -> tuple[float | None, int, int]:
    """The request's use, and how many codes and login events were written with it."""
    with database.transaction() as session:
        used = session.get(AuthnRequestRecord, request_id)
        assert used is not None
        codes = session.scalar(sa.select(sa.func.count()).select_from(AuthorizationCode))
        events = session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                .where(AuditEvent.detail_json.contains(request_id)))
    return used.consumed_at, codes or 0, events or 0


def test_a_login_request_is_used_once_with_its_code_and_audit_event(database: Database) -> None:
    request_id = _new_request(database)
    with database.single_statement() as connection:
        code = _complete(connection, request_id, "_a1")
    assert _completed(database, request_id) == (NOW, 1, 1)
    assert _use_code(database, code) is True
    # The same request again, even with an assertion never seen: nothing more is written.
    with pytest.raises(SamlRejected) as refused, database.single_statement() as connection:
        _complete(connection, request_id, "_a2")
    assert refused.value.code == "saml_replay"
    assert _completed(database, request_id) == (NOW, 1, 1)
    _use_assertion(database, "https://idp.example.org", "_a2")  # it did not enter the cache


def test_a_used_assertion_under_a_new_request_writes_nothing(database: Database) -> None:
    earlier = _new_request(database)
    with database.single_statement() as connection:
        _complete(connection, earlier, "_a1")
    request_id = _new_request(database)
    with pytest.raises(sa.exc.IntegrityError), database.single_statement() as connection:
        _complete(connection, request_id, "_a1")
    # The request is still open and no second code or event exists.
    assert _completed(database, request_id) == (None, 1, 0)


def test_a_login_of_a_deprovisioned_person_writes_nothing(database: Database) -> None:
    """The completion refuses a person their IdP deprovisioned (in its one statement on
    PostgreSQL) and says why: no request used, no assertion cached, no code, no event. The same
    subject at another IdP, and another subject, are not refused."""
    with database.transaction() as session:
        deprovision(session, idp_slug="dev", subject="s-1", source="scim", reason="deactivated",
                    now=NOW, actor="test")
    request_id = _new_request(database)
    with database.single_statement() as connection:
        _, refused = _try_completing(connection, request_id, "_a1", ("dev", "s-1"))
    assert refused == "deactivated"
    assert _completed(database, request_id) == (None, 0, 0)
    _use_assertion(database, "https://idp.example.org", "_a1")  # it did not enter the cache
    for n, person in enumerate([("other", "s-1"), ("dev", "s-2")]):
        request_id = _new_request(database)
        with database.single_statement() as connection:
            _complete(connection, request_id, f"_b{n}", person=person)
        assert _completed(database, request_id) == (NOW, n + 1, 1)


def test_of_two_concurrent_completions_of_one_request_one_wins(database: Database) -> None:
    """The ACS's one statement (PostgreSQL) against a completion in flight: it waits for the
    winner and writes nothing."""
    request_id = _new_request(database)

    def first(written: threading.Event) -> str:
        with database.driver_transaction() as connection:
            code = _complete(connection, request_id, "_a1")
            written.set()
            time.sleep(HOLD_SECONDS)
            return code

    def second() -> str:
        with database.single_statement() as connection:
            return _complete(connection, request_id, "_a2")

    won, lost = _race(first, second)
    assert isinstance(won, str)
    assert isinstance(lost, SamlRejected) and lost.code == "saml_replay"
    assert _completed(database, request_id) == (NOW, 1, 1)


# --- refresh token families ------------------------------------------------------------------


def test_rotation_hands_out_the_successor_once(database: Database) -> None:
    first = _new_family(database)
    rotated = _rotate(database, first.refresh_token)
    assert rotated.family.id == first.family.id and not rotated.retried
    assert rotated.refresh_token == refresh.successor_of(first.refresh_token, KEY)
    assert _rotate(database, rotated.refresh_token, now=NOW + 2).family.id == first.family.id


def test_the_successor_is_the_hmac_every_version_derives() -> None:
    # Nodes of different versions derive one family's successors alike (a retry re-derives it).
    import base64
    import hashlib
    import hmac

    for token in ("t", "abc" * 20, "é-token"):
        mac = hmac.new(KEY, token.encode("utf-8"), hashlib.sha256).digest()
        assert refresh.successor_of(token, KEY) == \
            base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def test_a_reused_token_kills_its_family(database: Database) -> None:
    first = _new_family(database)
    rotated = _rotate(database, first.refresh_token)
    with pytest.raises(refresh.ReuseDetected) as reuse:
        _rotate(database, first.refresh_token, now=NOW + 2)
    assert reuse.value.family_id == first.family.id
    # What the token endpoint does next, in a transaction of its own.
    with database.transaction() as session:
        assert refresh.revoke_family(session, reuse.value.family_id, now=NOW + 2,
                                     reason="reuse_detected") is True
        assert refresh.revoke_family(session, reuse.value.family_id, now=NOW + 2,
                                     reason="reuse_detected") is False
    with pytest.raises(TokenError) as revoked:
        _rotate(database, rotated.refresh_token, now=NOW + 3)
    assert revoked.value.code == "refresh_token_revoked"
    with database.transaction() as session:
        family = session.get(RefreshFamily, first.family.id)
        assert family is not None and family.revoked_reason == "reuse_detected"


def test_of_two_concurrent_rotations_of_one_token_one_wins(database: Database) -> None:
    first = _new_family(database)

    outcomes = _race(_rotate_and_hold(database, first.refresh_token),
                     lambda: _rotate(database, first.refresh_token, now=NOW + 1))
    assert isinstance(outcomes[0], refresh.Rotation)
    assert isinstance(outcomes[1], refresh.ReuseDetected)
    with database.transaction() as session:  # one successor, no fork
        assert refresh.family_of(session, outcomes[0].refresh_token) == first.family.id


def test_a_concurrent_retry_within_the_reuse_interval_gets_the_same_successor(
        database: Database) -> None:
    first = _new_family(database)
    policy = refresh.RefreshPolicy(reuse_interval_seconds=10)

    outcomes = _race(_rotate_and_hold(database, first.refresh_token, policy),
                     lambda: _rotate(database, first.refresh_token, now=NOW + 1, policy=policy))
    won, retried = outcomes
    assert isinstance(won, refresh.Rotation) and isinstance(retried, refresh.Rotation)
    assert retried.retried and retried.refresh_token == won.refresh_token


def test_a_revocation_waits_for_a_rotation_in_flight(database: Database) -> None:
    """Rotation and revocation of one family are serialized: the revocation that comes second
    finds the family and revokes it, and the successor minted before it is dead too."""
    first = _new_family(database)

    def revocation() -> bool:
        with database.transaction() as session:
            return refresh.revoke_family(session, first.family.id, now=NOW + 1, reason="logout")

    rotated, revoked = _race(_rotate_and_hold(database, first.refresh_token), revocation)
    assert isinstance(rotated, refresh.Rotation) and revoked is True
    with pytest.raises(TokenError) as refused:
        _rotate(database, rotated.refresh_token, now=NOW + 2)
    assert refused.value.code == "refresh_token_revoked"


def _refuse_person(database: Database, idp_slug: str = "dev", subject: str = "s-1") -> None:
    """The person's refusal alone, as a deprovisioning that a login raced leaves it: what the
    login stored (its code, its family) escaped the deprovisioning's end of their logins."""
    with database.connection() as connection:
        connection.execute(sa.insert(DeprovisionedSubject).values(
            idp_slug=idp_slug, subject=subject, source="scim", reason="deactivated", at=NOW))


def test_a_family_whose_person_is_deprovisioned_rotates_no_more(database: Database) -> None:
    first = _new_family(database)
    _refuse_person(database, subject="s-2")  # another person's refusal changes nothing
    rotated = _rotate(database, first.refresh_token)
    _refuse_person(database)
    with pytest.raises(TokenError) as refused:
        _rotate(database, rotated.refresh_token, now=NOW + 2)
    assert refused.value.code == "login_deprovisioned"
    with database.connection() as connection:  # and the token was not used up
        assert connection.execute(sa.select(RefreshToken.used_at).where(
            RefreshToken.token_hash == secret_hash(rotated.refresh_token))).scalar_one() is None


def test_a_code_whose_person_is_deprovisioned_says_so(database: Database) -> None:
    code = _new_code(database)
    with database.lookup() as connection:
        assert not find_code(connection, secret_hash(code)).person_deprovisioned
    _refuse_person(database)
    with database.lookup() as connection:
        assert find_code(connection, secret_hash(code)).person_deprovisioned


def test_a_token_presented_by_another_client_is_refused_and_stays_usable(
        database: Database) -> None:
    first = _new_family(database)
    with database.connection() as connection, pytest.raises(TokenError) as refused:
        refresh.rotate(connection, token=first.refresh_token, client_id="other", now=NOW + 1,
                       policy=NO_REUSE, successor_key=KEY)
    assert refused.value.code == "refresh_token_client_mismatch"
    assert _rotate(database, first.refresh_token, now=NOW + 2).family.id == first.family.id


@pytest.mark.parametrize("idle,now,code", [
    (10, NOW + 10, None), (10, NOW + 10.5, "refresh_token_idle"),
    (0, NOW + 3599, None), (0, NOW + 3600, "refresh_token_expired")])
def test_idle_and_absolute_lifetimes_end_exactly_at_their_limits(
        database: Database, idle: int, now: float, code: str | None) -> None:
    first = _new_family(database)  # last used at NOW, expires at NOW + 3600
    policy = refresh.RefreshPolicy(idle_timeout_seconds=idle)
    if code is None:
        assert _rotate(database, first.refresh_token, now=now, policy=policy).family.id
        return
    with pytest.raises(TokenError) as refused:
        _rotate(database, first.refresh_token, now=now, policy=policy)
    assert refused.value.code == code
    # A refusal consumes nothing: the token is still unused.
    assert _rotate(database, first.refresh_token, now=NOW + 1).family.id == first.family.id


def test_a_rotation_outside_a_transaction_waits_for_one_in_flight_and_finds_nothing(
        database: Database) -> None:
    """The token endpoint's one-statement rotation (PostgreSQL) against a rotation in flight:
    it waits for the winner and rotates nothing; the transactional path then says why."""
    first = _new_family(database)

    def at_once() -> refresh.Rotation | None:
        with database.single_statement() as connection:
            return refresh.rotate_at_once(connection, token=first.refresh_token,
                                          client_id="demo", now=NOW + 1, policy=NO_REUSE,
                                          successor_key=KEY)

    won, second = _race(_rotate_and_hold(database, first.refresh_token), at_once)
    assert isinstance(won, refresh.Rotation) and second is None
    with pytest.raises(refresh.ReuseDetected):
        _rotate(database, first.refresh_token, now=NOW + 1)
    assert _rotate(database, won.refresh_token, now=NOW + 2).family.id == first.family.id


# --- the schema --------------------------------------------------------------------------------


def test_the_database_is_at_the_migrations_head_and_matches_the_models(database: Database) -> None:
    assert database.current_revision() == database.head_revision()
    database.require_migrated()
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


# --- ending logins while a code is exchanged ------------------------------------------------


@pytest.mark.parametrize("end", ["revoke_all", "idp_deleted"])
def test_a_code_exchanged_while_its_logins_are_ended_ends_with_them(
        bridge: Services, end: str) -> None:
    """An offboarding (or an IdP's deletion) that runs while a code of that person is being
    exchanged ends the login the exchange starts: the codes are spent before the families are
    revoked, so the revocation waits for the exchange and then sees its family."""
    database = bridge.db
    code = _new_code(database, subject="leaver")
    later = bridge.clock.now() + 3600
    login = refresh.new_family(
        now=NOW, client_id="demo", subject="leaver", idp_slug="dev", claims_json="{}",
        scope="openid", auth_time=int(NOW), session_index="idx-1", name_id="n-1",
        expires_at=later)
    audit_row = audit.event_row(at=NOW, event="token", outcome="success", subject="leaver")

    def exchange(written: threading.Event) -> bool:
        with database.connection() as connection:
            redeemed = redeem_code(connection, secret_hash(code), NOW, login, audit_row)
            written.set()
            time.sleep(HOLD_SECONDS)
            return redeemed

    def offboard() -> object:
        if end == "revoke_all":
            return Revocation(bridge).revoke_all(subject="leaver", actor="test")
        with database.transaction() as session:  # what deleting IdP dev does
            return end_logins(session, families=[RefreshFamily.idp_slug == "dev"],
                              codes=[AuthorizationCode.idp_slug == "dev"],
                              now=bridge.clock.now(), reason="idp_deleted")

    outcomes = _race(exchange, offboard)
    assert outcomes[0] is True and not isinstance(outcomes[1], Exception), outcomes
    with database.connection() as connection:
        revoked_at = connection.execute(sa.select(RefreshFamily.revoked_at).where(
            RefreshFamily.id == login.rotation.family.id)).scalar_one()
    assert revoked_at is not None


@pytest.mark.parametrize("case", ["expired", "person_deprovisioned"])
def test_a_code_no_longer_usable_when_written_is_not_redeemed(database: Database,
                                                               case: str) -> None:
    """The write that uses a code checks what ending a login relies on, whatever the grant read
    before it: a code expired at the write's time (a login ended since spent only unexpired
    codes) or of a person deprovisioned since writes nothing."""
    code = _new_code(database, expires_at=NOW + 60)
    write_at = NOW + 60 if case == "expired" else NOW
    if case == "person_deprovisioned":
        _refuse_person(database)
    login = refresh.new_family(
        now=write_at, client_id="demo", subject="s-1", idp_slug="dev", claims_json="{}",
        scope="openid", auth_time=int(NOW), session_index="idx-1", name_id="n-1",
        expires_at=NOW + 3600)
    audit_row = audit.event_row(at=write_at, event="token", outcome="success", subject="s-1")
    with database.connection() as connection:
        assert redeem_code(connection, secret_hash(code), write_at, login, audit_row) is False
    with database.connection() as connection:
        assert use_code(connection, secret_hash(code), write_at) is False
    stored, family, tokens, events = _written(database, _exchange(code, **{
        "family_id": login.rotation.family.id}))
    assert stored.used_at is None
    assert (family, tokens, events) == (None, 0, [])
