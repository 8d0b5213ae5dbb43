"""The two logins that end in the bridge itself rather than at an OAuth client.

* Admin sign-in: a person signs in at an IdP through the ordinary SAML path; the IdP's group->role
  rules must give them the admin role (``admin_role``), and then they get an admin session.
* Test login: an admin starts a login against an IdP to see what arrives (attributes) and what the
  bridge would issue (claims of every version), or the precise reason it would refuse; nothing is
  issued either way.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from bridge import audit
from bridge.admin.access import AdminAccess
from bridge.claims.mapping import apply_mapping
from bridge.claims.preview import preview
from bridge.config import Settings
from bridge.errors import BridgeError, SamlRejected
from bridge.identity import Identity
from bridge.idps.settings import IdentityProvider, settings_fingerprint
from bridge.login.start import LoginStarter
from bridge.saml.bindings import OutgoingMessage
from bridge.store.models import AuthnRequestRecord, IdpRecord, TestLogin

if TYPE_CHECKING:
    from bridge.services import Services

ADMIN_SIGN_IN = "__admin_sign_in__"
TEST_LOGIN = "__test_login__"
TEST_LOGIN_SECONDS = 900
# The last accepted test login of each IdP is kept this long for the settings page's preview
# (docs/decisions/0029); the ones before it go at the next purge.
LAST_TEST_LOGIN_SECONDS = 7 * 86400


class AdminSignIn:
    def __init__(self, settings: Settings, access: AdminAccess) -> None:
        self.settings = settings
        self.access = access

    def complete(self, record: AuthnRequestRecord, identity: Identity, idp: IdentityProvider) -> str:
        mapped = apply_mapping(idp.settings.mapping, identity)
        role = self.settings.admin_role
        if role not in mapped.roles:
            raise SamlRejected("admin_role_missing",
                               f"Your account does not have the {role} role at {idp.display_name}.",
                               log_detail={"roles": list(mapped.roles), "required": role})
        name = mapped.name or mapped.email or identity.subject
        ticket = self.access.issue_ticket(subject=identity.subject, name=name, idp_slug=idp.slug,
                                          email=mapped.email, signed_in_at=record.created_at)
        return record.redirect_uri + "?" + urlencode({"ticket": ticket})

    def failed(self, request_id: str, error: BridgeError) -> str | None:
        return None  # the ordinary error page, with the code and reference

    def allows_idp_in_testing(self, record: AuthnRequestRecord, idp: IdentityProvider) -> bool:
        return False  # admins sign in only through IdPs offered to users


class TestLoginCapture:
    __test__ = False  # not a pytest class

    def __init__(self, services: Services, starter: LoginStarter) -> None:
        self.services = services
        self.starter = starter

    def start(self, idp: IdentityProvider, *, actor: str, result_page: str,
              browser_token: str | None) -> tuple[str, OutgoingMessage, str]:
        """Return (test id, the AuthnRequest to send, browser token) for a new test login."""
        test_id = secrets.token_hex(8)
        start = self.starter.start_completion_login(TEST_LOGIN, idp,
                                                   result_page.format(id=test_id), browser_token)
        request_id = start.request_id
        now = self.services.clock.now()
        with self.services.db.transaction() as session:
            session.add(TestLogin(id=test_id, slug=idp.slug, request_id=request_id,
                                  started_by=actor, created_at=now,
                                  expires_at=now + TEST_LOGIN_SECONDS,
                                  settings_fingerprint=idp.settings_fingerprint))
            audit.record(session, at=now, event="test_login_started", outcome="success",
                         idp_slug=idp.slug, detail={"actor": actor, "test": test_id})
        return test_id, start.message, start.browser_token

    def complete(self, record: AuthnRequestRecord, identity: Identity, idp: IdentityProvider) -> str:
        # The claims as a login would build them (its authentication levels included), and the
        # facts a preview needs to choose the subject again under other settings.
        result = {"outcome": "accepted", "version": idp.version_id,
                  "name_id_format": identity.name_id_format,
                  "authn_context_class": identity.authn_context_class,
                  **preview(identity, idp.settings.mapping, contexts=idp.settings.authn_contexts)}
        destination = self._store(record.id, result, record.redirect_uri)
        # Passing: the response is accepted and every claims version can be built from it (a
        # mapping that refuses the person would refuse every user the same way).
        if all("claims" in outcome for outcome in result["in_force"].values()):
            self._passed(record.id, idp)
        return destination

    def _passed(self, request_id: str, idp: IdentityProvider) -> None:
        """The metadata version and settings this login was made and verified with have passed a
        test: the IdP may go live while both are in force."""
        if idp.version_id is None:  # a file IdP: live already
            return
        now = self.services.clock.now()
        with self.services.db.transaction() as session:
            test = session.query(TestLogin).filter_by(request_id=request_id).one_or_none()
            row = session.get(IdpRecord, idp.slug, with_for_update=True)
            # Changed meanwhile (metadata, settings, or deleted and restored since the test
            # started): this test says nothing about what is in force now.
            if (row is None or test is None or test.slug != idp.slug
                    or test.created_at < row.created_at
                    or row.version_id != idp.version_id
                    or settings_fingerprint(row.settings_json) != idp.settings_fingerprint
                    or test.settings_fingerprint != idp.settings_fingerprint):
                return
            row.tested_version_id, row.tested_settings = idp.version_id, idp.settings_fingerprint
            audit.record(session, at=now, event="idp_test_login_passed", outcome="success",
                         idp_slug=idp.slug,
                         detail={"actor": test.started_by, "test": test.id,
                                 "version": idp.version_id})

    def allows_idp_in_testing(self, record: AuthnRequestRecord, idp: IdentityProvider) -> bool:
        """Testing an IdP is what its test logins are for: one an admin started for it."""
        with self.services.db.transaction() as session:
            test = session.query(TestLogin).filter_by(request_id=record.id).one_or_none()
            return test is not None and test.slug == idp.slug

    def failed(self, request_id: str, error: BridgeError) -> str | None:
        with self.services.db.transaction() as session:
            record = session.get(AuthnRequestRecord, request_id)
        if record is None:
            return None
        # The detail holds what the IdP's response carried: bounded as a refusal's audit row is.
        result = {"outcome": "refused", "code": error.code, "reason": error.public_detail,
                  "detail": audit.bounded_detail(error.log_detail)}
        return self._store(request_id, result, record.redirect_uri)

    def _store(self, request_id: str, result: dict[str, Any], destination: str) -> str:
        with self.services.db.transaction() as session:
            # Locked, so that of two answers racing (the IdP's form posted twice) the refused
            # one sees the accepted one's result once it has been written.
            row = (session.query(TestLogin).filter_by(request_id=request_id)
                   .with_for_update().one_or_none())
            if row is None:
                return destination
            if result["outcome"] != "accepted" and _accepted(row):
                return destination  # the test passed; a duplicate's refusal says nothing new
            now = self.services.clock.now()
            row.completed_at = now
            row.result_json = json.dumps(result, default=str)
            if result["outcome"] == "accepted":
                # The IdP's last test login: kept for the preview, the earlier ones are not.
                session.query(TestLogin).filter(
                    TestLogin.slug == row.slug, TestLogin.id != row.id,
                    TestLogin.completed_at.is_not(None),
                    TestLogin.expires_at > now).update({TestLogin.expires_at: now},
                                                       synchronize_session=False)
                row.expires_at = now + LAST_TEST_LOGIN_SECONDS
        return destination

    def last_accepted(self, slug: str) -> dict[str, Any] | None:
        """The IdP's last accepted test login (since it was last created or restored), with
        what arrived; None when there is none."""
        with self.services.db.transaction() as session:
            idp = session.get(IdpRecord, slug)
            if idp is None:
                return None
            rows = session.query(TestLogin).filter(
                TestLogin.slug == slug, TestLogin.completed_at.is_not(None),
                TestLogin.created_at >= idp.created_at,
                TestLogin.expires_at > self.services.clock.now(),
            ).order_by(TestLogin.completed_at.desc()).limit(20)
            for row in rows:
                result = json.loads(row.result_json) if row.result_json else None
                if result and result.get("outcome") == "accepted":
                    return {"id": row.id, "started_by": row.started_by,
                            "completed_at": row.completed_at, "result": result}
        return None

    def result(self, test_id: str) -> dict[str, Any] | None:
        """A test login by id; None once it has expired (fifteen minutes, or superseded by a
        newer accepted one of its IdP), whether or not a purge has removed it yet."""
        with self.services.db.transaction() as session:
            row = session.get(TestLogin, test_id)
            if row is None or row.expires_at <= self.services.clock.now():
                return None
            return {"id": row.id, "idp": row.slug, "started_by": row.started_by,
                    "completed": row.completed_at is not None,
                    "result": json.loads(row.result_json) if row.result_json else None}


def _accepted(row: TestLogin) -> bool:
    return row.result_json is not None and json.loads(row.result_json).get("outcome") == "accepted"
