"""One IdP per entity ID, from the attacker's side: `sub` is derived from the IdP's entity ID and the
NameID, so a second IdP in force with someone else's entity ID mints that IdP's users. Refused
(409, `idp_entity_id_in_use`, naming the holder) when an IdP is created, a version applied or
restored, in a race between two requests (the database's unique constraint decides), at
start-up for files, and by the migration that introduces the constraint."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import sqlalchemy as sa
from lxml import etree
from saml2 import BINDING_HTTP_REDIRECT as REDIRECT

from bridge.clock import SystemClock
from bridge.dev.saml_idp import USERS, DevIdp
from bridge.errors import ConfigError
from bridge.services import Services, build_services
from bridge.store.db import Database
from bridge.store.models import IdpEntityId
from tests.attacks import xml_tools as x
from tests.conftest import POSTGRES_PARAM, make_settings
from tests.databases import create_postgres_database, drop_postgres_database
from tests.helpers import Browser
from tests.test_admin_api import _create, _metadata_with, acme, api, token  # noqa: F401

ACME = "https://other-idp.example.net/metadata"
RENAMED = "https://other-idp.example.net/renamed"
ATTACKER_SITE = "https://attacker.example.net"


def _entity(xml: bytes, entity_id: str) -> bytes:
    root = etree.fromstring(xml)
    root.set("entityID", entity_id)
    return etree.tostring(root)


def _upload(api, slug: str, xml: bytes):  # type: ignore[no-untyped-def]  # noqa: F811
    return api("POST", f"/admin/api/idps/{slug}/metadata", data=xml,
               content_type="application/samlmetadata+xml")


def _onboard(api, slug: str, xml: bytes):  # type: ignore[no-untyped-def]  # noqa: F811
    return api("POST", "/admin/api/idps", data={
        "slug": slug, "settings": json.dumps({"display_name": slug}),
        "metadata": (io.BytesIO(xml), f"{slug}.xml")}, content_type="multipart/form-data")


def _sign_in(browser: Browser, idp: DevIdp, slug: str, keys: x.KeyPair | None = None,
             user: str = "alice") -> Any:
    """A login at ``slug`` answered by ``idp`` (its own issuer), signed with ``keys`` if given."""
    login = browser.authorize(idp=slug)
    assert login.status_code == 302, login.get_data(as_text=True)
    saml_request = _received_by(idp, login.headers["Location"])
    saml_response = idp.response_for(idp.parse_request(saml_request, None), USERS[user])
    if keys is not None:
        saml_response = x.encode(x.resign(x.decode(saml_response), keys))
    answer = browser.post_acs(saml_response, slug)
    answer.verifier = login.verifier  # type: ignore[attr-defined]
    return answer


def _received_by(idp: DevIdp, location: str) -> str:
    """The SAMLRequest of a redirect, as ``idp`` receives it. The attacker runs that IdP's
    software at a site of its own (ATTACKER_SITE), which answers whatever reaches it there;
    pysaml2 takes only requests addressed to its own URL, so the request is addressed to it."""
    parts = urlsplit(location)
    saml_request = parse_qs(parts.query)["SAMLRequest"][0]
    sent_to, own = f"{parts.scheme}://{parts.netloc}{parts.path}", idp.endpoint("sso", REDIRECT)
    if sent_to == own:
        return saml_request
    xml = zlib.decompress(base64.b64decode(saml_request), -15)
    readdressed = xml.replace(f'Destination="{sent_to}"'.encode(), f'Destination="{own}"'.encode())
    assert readdressed != xml
    return base64.b64encode(zlib.compress(readdressed)[2:-4]).decode()


def _sub(browser: Browser, answer: Any) -> str:
    assert answer.status_code == 302, answer.get_data(as_text=True)
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    tokens = browser.exchange(code, answer.verifier)
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    return str(jwt.decode(tokens.get_json()["access_token"],
                          options={"verify_signature": False})["sub"])


def _rename_other(api, acme: DevIdp) -> int:  # type: ignore[no-untyped-def]  # noqa: F811
    """IdP ``other`` moves to another entity ID, leaving its first one free; returns the id of
    its first version."""
    created = _create(api, acme)
    assert created.status_code == 201
    renamed = _upload(api, "other", _entity(acme.metadata_xml(), RENAMED)).get_json()
    assert renamed["status"] == "pending"  # an entity ID change waits for a person
    applied = api("POST", f"/admin/api/idps/other/metadata/versions/{renamed['version']}/apply")
    assert applied.status_code == 200 and applied.get_json()["entity_id"] == RENAMED
    return int(created.get_json()["versions"][0]["id"])


def _refused(response: Any, holder: str) -> None:
    assert response.status_code == 409, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == "idp_entity_id_in_use"
    assert f"already used by IdP {holder}" in body["problems"][0]


def test_an_idp_cannot_roll_back_to_an_entity_id_another_idp_took(
        api, acme: DevIdp, browser: Browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    first = _rename_other(api, acme)
    # A version of `other` with its first entity ID waits for approval...
    back = _upload(api, "other", acme.metadata_xml()).get_json()
    assert back["status"] == "pending"
    # ... when an IdP whose key the attacker holds is onboarded with that entity ID, now free.
    attacker = x.attacker_keypair()
    # (On an origin of its own: one IdP's Single Logout origin is no other IdP's, decision 0021.)
    attacker_site = _metadata_with(acme, attacker.cert_pem).replace(
        b"https://other-idp.example.net/s", ATTACKER_SITE.encode() + b"/s")
    assert _onboard(api, "portal", _entity(attacker_site, ACME)).status_code == 201
    attacker_sub = _sub(browser, _sign_in(browser, acme, "portal", attacker, user="alice"))
    versions = api("GET", "/admin/api/idps/other/metadata/versions").get_json()["versions"]

    # Rolling `other` back, or applying the pending version, would put both in force with one
    # entity ID: the attacker's `NameID=alice` would be `other`'s alice. Refused, naming the holder.
    _refused(api("POST", f"/admin/api/idps/other/metadata/versions/{first}/restore"), "portal")
    _refused(api("POST", f"/admin/api/idps/other/metadata/versions/{back['version']}/apply"),
             "portal")

    # Nothing changed: `other` keeps the entity ID it had, no version was added or applied, and
    # no two IdPs in force share an entity ID.
    assert api("GET", "/admin/api/idps/other").get_json()["entity_id"] == RENAMED
    assert api("GET", "/admin/api/idps/other/metadata/versions").get_json()["versions"] == versions
    in_force = [i["entity_id"] for i in api("GET", "/admin/api/idps").get_json()["idps"]]
    assert len(in_force) == len(set(in_force)) == 3
    # `other` mints no `sub` under the entity ID the attacker's IdP holds: acme's own responses
    # (issuer ACME) are refused there, so alice's `sub` under ACME is only ever the attacker's.
    refused = _sign_in(browser, acme, "other")
    assert refused.status_code == 400 and refused.get_json()["code"] == "saml_issuer_mismatch"
    assert _sub(browser, _sign_in(browser, acme, "portal", attacker)) == attacker_sub


def test_an_idp_cannot_take_the_entity_id_of_a_file_idp(
        api, acme: DevIdp, dev_idp: DevIdp) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    dev_entity = api("GET", "/admin/api/idps/dev").get_json()["entity_id"]
    _refused(_onboard(api, "other", _entity(acme.metadata_xml(), dev_entity)), "dev")
    assert api("GET", "/admin/api/idps/other").status_code == 404
    assert _create(api, acme).status_code == 201
    _refused(_upload(api, "other", _entity(acme.metadata_xml(), dev_entity)), "dev")
    assert api("GET", "/admin/api/idps/other").get_json()["entity_id"] == ACME


def _waiting_for_a_lock(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        return bool(connection.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'").scalar())


def test_two_admins_at_once_the_database_keeps_one_idp_per_entity_id(
        api, acme: DevIdp, bridge: Services) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """A second admin onboards `portal` with `other`'s first entity ID in a transaction of their
    own while `other` is rolled back to it. Neither saw the other's write when it checked; the
    unique constraint on the entity ID decides, and the loser gets a 409, not a 500."""
    first = _rename_other(api, acme)
    outcome: dict[str, Any] = {}
    with bridge.db.engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(sa.insert(IdpEntityId).values(slug="portal", entity_id=ACME,
                                                         source="api"))
        rollback = threading.Thread(target=lambda: outcome.update(response=api(
            "POST", f"/admin/api/idps/other/metadata/versions/{first}/restore")))
        rollback.start()
        if bridge.db.dialect == "postgresql":
            # The rollback read the entity ID as free and now waits on our uncommitted row.
            deadline = time.monotonic() + 20
            while not _waiting_for_a_lock(bridge.db.engine):
                assert time.monotonic() < deadline and rollback.is_alive()
                time.sleep(0.05)
        else:
            time.sleep(0.5)  # SQLite: the rollback waits for the write lock we hold
        transaction.commit()
        rollback.join(30)
    _refused(outcome["response"], "portal")
    assert api("GET", "/admin/api/idps/other").get_json()["entity_id"] == RENAMED


def test_the_database_refuses_a_second_idp_with_one_entity_id(bridge: Services) -> None:
    with bridge.db.transaction() as session:
        session.add(IdpEntityId(slug="a", entity_id=ACME, source="api"))
    with (pytest.raises(sa.exc.IntegrityError, match="(?i)unique"),
          bridge.db.transaction() as session):
        session.add(IdpEntityId(slug="b", entity_id=ACME, source="file"))


def test_start_up_refuses_a_file_whose_entity_id_or_slug_an_api_idp_holds(
        api, acme: DevIdp, database: Database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert _create(api, acme).status_code == 201
    files = tmp_path / "other-node"
    files.mkdir()
    (files / "acme.xml").write_bytes(acme.metadata_xml())           # the entity ID of `other`
    (files / "other.xml").write_bytes(_entity(acme.metadata_xml(), "https://elsewhere.example"))
    settings = make_settings(database, files, tmp_path / "node")
    with pytest.raises(ConfigError) as caught:
        build_services(settings, SystemClock())
    text = str(caught.value)
    assert f"{files / 'acme.xml'}: entity ID {ACME!r} is already used by IdP other" in text
    assert f"{files / 'other.xml'}: the slug other is also an IdP managed through the admin API" in text
    with database.transaction() as session:
        assert {r.slug: r.entity_id for r in session.scalars(sa.select(IdpEntityId))}["other"] == ACME


def test_a_node_never_serves_an_api_idp_that_shares_its_file_idps_entity_id(
        api, acme: DevIdp, browser: Browser, bridge: Services, database: Database,  # type: ignore[no-untyped-def]  # noqa: F811
        token: str, tmp_path: Path) -> None:  # noqa: F811
    """Nodes with different files (a rolling deploy): the node that started last speaks for the
    files, so through it an API IdP can take the entity ID of a file only the first node has.
    The first node keeps its file IdP and does not serve the other one."""
    from bridge.web import create_app

    dev_entity = api("GET", "/admin/api/idps/dev").get_json()["entity_id"]
    files = tmp_path / "other-node"
    files.mkdir()  # no dev.xml on this node
    node = create_app(make_settings(database, files, tmp_path / "node"))
    try:
        created = node.test_client().post(
            "/admin/api/idps", headers={"Authorization": f"Bearer {token}"},
            json={"slug": "other", "metadata_xml": _entity(acme.metadata_xml(), dev_entity).decode()})
        assert created.status_code == 201, created.get_data(as_text=True)
    finally:
        node.extensions["bridge"].db.dispose()
    bridge.clock.advance(bridge.idps.recheck_seconds)  # the registry's recheck interval passes
    # This node: `dev` (its file) is served, `other` is not, and nothing logs in through it.
    listed = {i["slug"]: (i["served"], i["not_served_reason"])
              for i in api("GET", "/admin/api/idps").get_json()["idps"]}
    assert listed == {"dev": (True, None), "other": (False, "entity_id_clash")}
    start = browser.authorize(idp="other")
    assert start.status_code == 302 and "error=invalid_request" in start.headers["Location"]
    assert browser.tokens()["access_token"]


@pytest.fixture(params=["sqlite", POSTGRES_PARAM])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/upgrade.db"
        return
    name = f"bridge_upgrade_{uuid.uuid4().hex[:12]}"
    url = create_postgres_database(name)
    yield url
    drop_postgres_database(name)


def _stored_idp(database: Database, slug: str, xml: bytes, version: int) -> None:
    with database.engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO idp_metadata_versions (id, slug, xml, sha256, status, source, created_at,"
            " created_by, diff_json) VALUES (:id, :slug, :xml, '', 'applied', 'upload', 0, 't',"
            " '{}')"), {"id": version, "slug": slug, "xml": xml.decode()})
        connection.execute(sa.text(
            "INSERT INTO idps (slug, version_id, settings_json, created_at, updated_at) VALUES "
            "(:slug, :id, '{}', 0, 0)"), {"slug": slug, "id": version})


def test_the_upgrade_stops_when_two_idps_already_share_an_entity_id(
        fresh_url: str, acme: DevIdp) -> None:  # noqa: F811
    database = Database(fresh_url)
    try:
        database.upgrade("0005")
        _stored_idp(database, "acme", acme.metadata_xml(), 1)
        _stored_idp(database, "portal", acme.metadata_xml(), 2)
        _stored_idp(database, "renamed", _entity(acme.metadata_xml(), RENAMED), 3)
        with pytest.raises(RuntimeError, match=f"{ACME!r} is in force for IdPs acme, portal"):
            database.upgrade()
        assert database.current_revision() == "0005"
        with database.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM idps WHERE slug = 'portal'"))
        database.upgrade()
        with database.transaction() as session:
            held = {r.slug: (r.entity_id, r.source) for r in session.scalars(sa.select(IdpEntityId))}
        assert held == {"acme": (ACME, "api"), "renamed": (RENAMED, "api")}
    finally:
        database.dispose()
