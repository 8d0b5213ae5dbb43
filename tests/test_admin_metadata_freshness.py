"""Stale metadata, from the attacker's side: whoever can serve bytes at an IdP's metadata URL (or
get a file uploaded) replays an older document, validly signed by the same publisher, that still
lists a key the IdP has since withdrawn. Refused when past ``validUntil``; never applied without a
person when it is not newer than the document in force (by the documents' own dates) or when it
brings back a certificate the IdP dropped. ``cacheDuration`` and ``validUntil`` bring the next fetch
forward, and logins stop when the metadata in force expires. A real https server, real
signatures, the injected clock moved by hand."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from lxml import etree

from bridge.clock import FixedClock
from bridge.config import Settings
from bridge.dev.saml_idp import USERS, DevIdp
from bridge.idps.fetch import FetchPolicy
from bridge.idps.lifecycle import IdpAdmin
from bridge.services import Services, build_services
from bridge.store.models import AuthorizationCode
from tests.attacks import xml_tools as x
from tests.helpers import Browser
from tests.test_admin_api import _login_at_acme, _metadata_with, _new_keypair, acme, api, token  # noqa: F401
from tests.test_admin_metadata_url import _Published, published  # noqa: F401
from tests.test_metadata_fetch import Pki, Signer, _signer, pki, sign, text  # noqa: F401

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
MDRPI = "urn:oasis:names:tc:SAML:metadata:rpi"
DAY = 86400.0


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(time.time())


@pytest.fixture
def bridge(settings: Settings, clock: FixedClock) -> Iterator[Services]:
    """The bridge on a clock that moves only when a test moves it."""
    the_bridge = build_services(settings, clock)
    yield the_bridge
    the_bridge.db.dispose()


@pytest.fixture
def admin(app: Flask, pki: Pki) -> IdpAdmin:  # noqa: F811
    """The app's own IdP administration, trusting the test CA for the local metadata server."""
    idps: IdpAdmin = app.extensions["admin"].idps
    idps.fetch_policy = FetchPolicy(allow_private=True, ca_bundle=pki.ca_file)
    return idps


@pytest.fixture(scope="module")
def publisher() -> Signer:
    return _signer("federation metadata signer")


def _time(clock: FixedClock, offset: float) -> str:
    moment = dt.datetime.fromtimestamp(clock.now() + offset, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def document(acme: DevIdp, *certificates: bytes, signer: Signer | None = None,  # noqa: F811
             valid_until: str | None = None, published_at: str | None = None,
             cache: str | None = None, group_valid_until: str | None = None) -> bytes:
    """The IdP's metadata with these signing certificates and these dates, signed if asked (the
    EntitiesDescriptor around it when ``group_valid_until`` is given)."""
    root = etree.fromstring(_metadata_with(acme, *certificates))
    root.set("ID", f"_{uuid.uuid4().hex}")
    if valid_until:
        root.set("validUntil", valid_until)
    if cache:
        root.set("cacheDuration", cache)
    if published_at:
        info = etree.SubElement(root.find(f"{{{MD}}}Extensions"), f"{{{MDRPI}}}PublicationInfo",
                                nsmap={"mdrpi": MDRPI})
        info.set("creationInstant", published_at)
        info.set("publisher", "https://federation.example")
    if group_valid_until:
        group = etree.Element(f"{{{MD}}}EntitiesDescriptor", nsmap={"md": MD},
                              ID=f"_{uuid.uuid4().hex}", validUntil=group_valid_until)
        group.append(root)
        root = group
    if signer is not None:
        sign(root, signer)
    return text(root)


def _create_from_url(api, url: str, slug: str = "other", **settings: object):  # type: ignore[no-untyped-def]  # noqa: F811
    created = api("POST", "/admin/api/idps", json={
        "slug": slug, "metadata_url": url, "settings": {"display_name": slug, **settings}})
    assert created.status_code == 201, created.get_data(as_text=True)
    return created.get_json()


def _refresh(api, slug: str = "other"):  # type: ignore[no-untyped-def]  # noqa: F811
    return api("POST", f"/admin/api/idps/{slug}/metadata/refresh")


# --- replayed documents -------------------------------------------------------------------------------

def test_an_older_signed_document_replayed_at_the_metadata_url_is_not_applied(
        api, admin: IdpAdmin, acme: DevIdp, published: str, publisher: Signer,  # type: ignore[no-untyped-def]  # noqa: F811
        browser: Browser, clock: FixedClock, tmp_path: Path) -> None:
    acme.metadata_xml()
    current = x.load_keypair(acme.state_dir)
    withdrawn = _new_keypair(tmp_path)  # the key the attacker holds
    # The publisher's documents, each signed with its pinned key: for a day it listed the
    # withdrawn key (the bridge happened not to fetch in that window), then dropped it.
    first = document(acme, current.cert_pem, signer=publisher, published_at=_time(clock, -2 * DAY),
                     valid_until=_time(clock, 10 * DAY))
    briefly = document(acme, current.cert_pem, withdrawn.cert_pem, signer=publisher,
                       published_at=_time(clock, -DAY), valid_until=_time(clock, 11 * DAY))
    latest = document(acme, current.cert_pem, signer=publisher, published_at=_time(clock, 0),
                      valid_until=_time(clock, 12 * DAY))
    _Published.body = first
    _create_from_url(api, published, metadata_signing_certificate=publisher.cert_pem)
    _Published.body = latest
    assert _refresh(api).status_code == 200

    # The attacker serves the older document: valid signature, not expired, one key "added".
    _Published.body = briefly
    replayed = _refresh(api)
    assert replayed.status_code == 200, replayed.get_data(as_text=True)
    body = replayed.get_json()
    assert body["status"] == "pending"
    assert body["diff"]["document"]["order"] == "older"
    assert "not newer than the one in force (by its publication time)" in body["withheld"][0]
    # An undated document from the same signer cannot be shown to be newer either.
    _Published.body = document(acme, current.cert_pem, withdrawn.cert_pem, signer=publisher)
    undated = _refresh(api).get_json()
    assert undated["status"] == "pending" and "cannot be shown to be newer" in undated["withheld"][0]

    # The withdrawn key signs nothing; the current one still does.
    forged = _login_at_acme(browser, acme, withdrawn)
    assert forged.status_code == 400 and forged.get_json()["code"] == "saml_signature_invalid"
    assert _login_at_acme(browser, acme).status_code == 302
    in_force = [v for v in admin.versions("other") if v["in_force"]]
    assert in_force[0]["sha256"] != hashlib.sha256(briefly).hexdigest()


def test_a_document_stale_by_its_own_cache_duration_is_not_applied(
        api, acme: DevIdp, published: str, admin: IdpAdmin,  # type: ignore[no-untyped-def]  # noqa: F811
        clock: FixedClock, tmp_path: Path) -> None:
    """Undated metadata in force (as AD FS, Entra ID and Okta publish it); the attacker serves an
    old document of the same IdP that adds their key. It was published long ago to be cached for an
    hour, so it says by itself that it is out of date: never applied without a person."""
    acme.metadata_xml()
    current = x.load_keypair(acme.state_dir)
    _Published.body = _metadata_with(acme, current.cert_pem)
    _create_from_url(api, published)
    attacker = _new_keypair(tmp_path)
    _Published.body = document(acme, current.cert_pem, attacker.cert_pem,
                               published_at=_time(clock, -400 * DAY), cache="PT1H")
    replayed = _refresh(api).get_json()
    assert replayed["status"] == "pending", replayed
    assert "out of date by its own terms" in replayed["withheld"][0]
    # The same addition, published an hour ago for a day's caching, applies as before.
    _Published.body = document(acme, current.cert_pem, attacker.cert_pem,
                               published_at=_time(clock, -3600), cache="P1D")
    assert _refresh(api).get_json()["status"] == "applied"


@pytest.mark.parametrize(("published_at", "cache"), [
    ("9950-01-01T00:00:00Z", "P100Y"), ("9950-01-01T00:00:00Z", "P99999999999999Y"),
    ("9999-12-31T00:00:00Z", "P2D")])
def test_a_document_current_past_the_last_date_is_judged_not_a_500(
        api, acme: DevIdp, published: str, admin: IdpAdmin,  # type: ignore[no-untyped-def]  # noqa: F811
        tmp_path: Path, published_at: str, cache: str) -> None:
    """A publication time and a cacheDuration whose sum lies past the year 9999: current for as
    long as dates go, and judged as every other document is."""
    acme.metadata_xml()
    current = x.load_keypair(acme.state_dir)
    _Published.body = _metadata_with(acme, current.cert_pem)
    _create_from_url(api, published)
    _Published.body = document(acme, current.cert_pem, _new_keypair(tmp_path).cert_pem,
                               published_at=published_at, cache=cache)
    refreshed = _refresh(api)
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    assert refreshed.get_json()["status"] in ("applied", "pending")
    assert not any("out of date" in reason
                   for reason in refreshed.get_json().get("withheld", []))


def test_an_old_undated_document_cannot_bring_back_a_dropped_key(
        api, acme: DevIdp, published: str, admin: IdpAdmin,  # type: ignore[no-untyped-def]  # noqa: F811
        browser: Browser, tmp_path: Path) -> None:
    acme.metadata_xml()
    old = x.load_keypair(acme.state_dir)   # withdrawn below; the attacker holds it
    new = _new_keypair(tmp_path)
    _Published.body = _metadata_with(acme, old.cert_pem, new.cert_pem)
    _create_from_url(api, published)
    _Published.body = _metadata_with(acme, new.cert_pem)
    dropped = _refresh(api).get_json()
    assert dropped["status"] == "pending"  # a removal waits for a person, who applies it
    assert api("POST", f"/admin/api/idps/other/metadata/versions/{dropped['version']}/apply"
               ).status_code == 200
    assert _login_at_acme(browser, acme).status_code == 400

    # The attacker serves the first document again. Neither carries a date, but the "added"
    # certificate is one this IdP dropped: it waits for a person.
    _Published.body = _metadata_with(acme, old.cert_pem, new.cert_pem)
    replayed = _refresh(api).get_json()
    assert replayed["status"] == "pending"
    assert [c["sha256"] for c in replayed["diff"]["certificates_readded"]] == [
        replayed["diff"]["certificates_added"][0]["sha256"]]
    assert "brings back certificates this IdP dropped before" in replayed["withheld"][0]
    refused = _login_at_acme(browser, acme)
    assert refused.status_code == 400 and refused.get_json()["code"] == "saml_signature_invalid"
    assert _login_at_acme(browser, acme, new).status_code == 302


# --- expired documents ----------------------------------------------------------------------------------

def test_metadata_past_its_valid_until_is_refused_and_nothing_changes(
        api, acme: DevIdp, published: str, admin: IdpAdmin, publisher: Signer,  # type: ignore[no-untyped-def]  # noqa: F811
        clock: FixedClock) -> None:
    acme.metadata_xml()
    key = x.load_keypair(acme.state_dir).cert_pem
    expired = document(acme, key, valid_until=_time(clock, -60))
    onboarded = api("POST", "/admin/api/idps", json={"slug": "other",
                                                      "metadata_xml": expired.decode()})
    assert onboarded.status_code == 422
    assert onboarded.get_json()["code"] == "idp_metadata_expired"
    assert "expired at" in onboarded.get_json()["problems"][0]
    assert "validUntil on md:EntityDescriptor" in onboarded.get_json()["problems"][0]
    assert api("GET", "/admin/api/idps/other").status_code == 404

    _Published.body = document(acme, key, signer=publisher)
    _create_from_url(api, published, metadata_signing_certificate=publisher.cert_pem)
    versions = admin.versions("other")
    for stale, where in ((document(acme, key, signer=publisher, valid_until=_time(clock, -1)),
                          "md:EntityDescriptor"),
                         (document(acme, key, signer=publisher,
                                   group_valid_until=_time(clock, -DAY)), "md:EntitiesDescriptor")):
        _Published.body = stale
        refused = _refresh(api)
        assert refused.status_code == 422, refused.get_data(as_text=True)
        assert refused.get_json()["code"] == "idp_metadata_expired"
        assert f"validUntil on {where}" in refused.get_json()["problems"][0]
        assert "expired at" in api("GET", "/admin/api/idps/other").get_json()["metadata_fetch_error"]
        uploaded = api("POST", "/admin/api/idps/other/metadata", data=stale,
                       content_type="application/samlmetadata+xml")
        assert uploaded.status_code == 422 and uploaded.get_json()["code"] == "idp_metadata_expired"
    assert admin.versions("other") == versions


def test_a_version_that_expired_while_waiting_is_neither_applied_nor_restored(
        api, acme: DevIdp, clock: FixedClock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    acme.metadata_xml()
    old, new = x.load_keypair(acme.state_dir), _new_keypair(tmp_path)
    created = api("POST", "/admin/api/idps", json={"slug": "other", "metadata_xml": document(
        acme, old.cert_pem, valid_until=_time(clock, 2500)).decode()}).get_json()
    pending = api("POST", "/admin/api/idps/other/metadata", data=document(
        acme, new.cert_pem, valid_until=_time(clock, 1800)),
        content_type="application/samlmetadata+xml").get_json()
    assert pending["status"] == "pending"
    clock.advance(2000)
    applied = api("POST", f"/admin/api/idps/other/metadata/versions/{pending['version']}/apply")
    assert applied.status_code == 422 and applied.get_json()["code"] == "idp_metadata_expired"
    clock.advance(600)  # (the admin token lives an hour)
    first = created["versions"][0]["id"]
    restored = api("POST", f"/admin/api/idps/other/metadata/versions/{first}/restore")
    assert restored.status_code == 422 and restored.get_json()["code"] == "idp_metadata_expired"
    statuses = [v["status"] for v in api("GET", "/admin/api/idps/other/metadata/versions")
                .get_json()["versions"]]
    assert statuses == ["pending", "applied"]


def test_logins_stop_when_the_metadata_in_force_expires(
        api, acme: DevIdp, browser: Browser, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    acme.metadata_xml()
    key = x.load_keypair(acme.state_dir).cert_pem
    assert api("POST", "/admin/api/idps", json={"slug": "other", "metadata_xml": document(
        acme, key, valid_until=_time(clock, 120)).decode()}).status_code == 201
    assert _login_at_acme(browser, acme).status_code == 302
    # A login starts before the metadata expires and its answer arrives after.
    started = browser.authorize(idp="other")
    saml_request = parse_qs(urlsplit(started.headers["Location"]).query)["SAMLRequest"][0]
    answer = acme.response_for(acme.parse_request(saml_request, None), USERS["alice"])
    codes = browser.count(AuthorizationCode)
    clock.advance(121)  # the request and the assertion are still within their own windows
    refused = browser.post_acs(answer, "other")
    assert refused.status_code == 400 and refused.get_json()["code"] == "idp_metadata_expired"
    assert browser.count(AuthorizationCode) == codes
    again = browser.authorize(idp="other")
    assert again.status_code == 302 and "error=temporarily_unavailable" in again.headers["Location"]
    assert "metadata_expired" in api("GET", "/admin/api/idps/other").get_json()["warnings"]
    other_idp = browser.authorize(idp="dev")  # other IdPs are not affected
    assert other_idp.status_code == 302 and "SAMLRequest=" in other_idp.headers["Location"]


# --- when to fetch again, and renewals ------------------------------------------------------------------

def test_cache_duration_and_valid_until_bring_the_next_fetch_forward(
        api, acme: DevIdp, published: str, admin: IdpAdmin, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    acme.metadata_xml()
    key = x.load_keypair(acme.state_dir).cert_pem
    documents = {  # metadata_refresh_seconds is 6 hours for all three; one entity ID and origin each
        "cached": document(acme, key, cache="PT10M"),
        "dated": document(acme, key, valid_until=_time(clock, 3600)),
        "eager": document(acme, key, cache="PT1S"),  # never more often than every 5 minutes
    }
    for slug, body in documents.items():
        _Published.body = _renamed(body, f"https://{slug}.example").replace(
            b"https://other-idp.example.net/", f"https://{slug}.example/".encode())
        _create_from_url(api, published, slug=slug)
    assert admin.refresh_due() == {}
    clock.advance(4 * 60)
    assert admin.refresh_due() == {}
    clock.advance(2 * 60)                   # 6 minutes: cacheDuration PT1S, floored at 5 minutes
    assert set(admin.refresh_due()) == {"eager"}
    clock.advance(5 * 60)                   # 11 minutes: cacheDuration PT10M
    assert set(admin.refresh_due()) == {"cached", "eager"}
    clock.advance(20 * 60)                  # 31 minutes: half of the hour validUntil left
    assert set(admin.refresh_due()) == {"cached", "dated", "eager"}


def _renamed(xml: bytes, entity_id: str) -> bytes:
    root = etree.fromstring(xml)
    root.set("entityID", entity_id)
    return etree.tostring(root)


def test_a_renewed_document_replaces_the_one_in_force_under_any_policy(
        api, acme: DevIdp, published: str, admin: IdpAdmin, publisher: Signer,  # type: ignore[no-untyped-def]  # noqa: F811
        clock: FixedClock) -> None:
    acme.metadata_xml()
    key = x.load_keypair(acme.state_dir).cert_pem
    _Published.body = document(acme, key, signer=publisher, valid_until=_time(clock, DAY))
    _create_from_url(api, published, metadata_auto_apply="none",
                     metadata_signing_certificate=publisher.cert_pem)
    # The federation re-signs the same facts with a later validUntil, as it does every day.
    _Published.body = document(acme, key, signer=publisher, valid_until=_time(clock, 2 * DAY))
    renewed = _refresh(api).get_json()
    assert renewed["status"] == "applied" and renewed["diff"]["renewal"] is True
    assert renewed["diff"]["identical"] is True
    detail = api("GET", "/admin/api/idps/other").get_json()
    assert detail["metadata_valid_until"] == _iso(clock, 2 * DAY)
    # The same document again changes nothing.
    assert _refresh(api).get_json()["status"] in ("identical", "not_modified")
    clock.advance(1.5 * DAY)  # past the first document's validUntil, not the renewal's
    assert "metadata_expired" not in admin.get_idp("other")["warnings"]


def _iso(clock: FixedClock, offset: float) -> str:
    return dt.datetime.fromtimestamp(int(clock.now() + offset), dt.UTC).isoformat()
