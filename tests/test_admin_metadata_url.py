"""Metadata by URL: added from an https URL, refreshed on a schedule with conditional requests,
changes proposed under the IdP's policy. A real local https server, a real certificate chain."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from bridge.dev.saml_idp import DevIdp
from bridge.idps.fetch import FetchPolicy
from bridge.idps.lifecycle import IdpAdmin
from bridge.jobs.leases import run_due
from bridge.jobs.standard import standard_jobs
from bridge.services import Services
from bridge.store.models import IdpRecord
from bridge.web import create_app
from tests.attacks import xml_tools as x
from tests.test_admin_api import _metadata_with, _new_keypair
from tests.test_metadata_fetch import (
    DS,
    MD,
    Pki,
    Signer,
    _signer,
    pki,  # noqa: F401  (the throwaway CA fixture)
    sign,
    text,
)


class _Published:
    body = b""
    requests: list[dict[str, str]] = []


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        _Published.requests.append({k.lower(): v for k, v in self.headers.items()})
        etag = '"' + hashlib.sha256(_Published.body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(_Published.body)))
        self.end_headers()
        self.wfile.write(_Published.body)


@pytest.fixture
def published(pki: Pki) -> Iterator[str]:  # noqa: F811
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    _Published.requests = []
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/metadata.xml"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_metadata_url_lifecycle(bridge: Services, session_other_idp: DevIdp, published: str,
                                pki: Pki, tmp_path: Path) -> None:  # noqa: F811
    acme = session_other_idp
    first = acme.metadata_xml()  # creates the IdP's key on first use
    old = x.load_keypair(acme.state_dir)
    new = _new_keypair(tmp_path)
    admin = IdpAdmin(bridge, FetchPolicy(allow_private=True, ca_bundle=pki.ca_file))
    _Published.body = first
    created = admin.create_idp("other", xml=None, url=published, settings={}, actor="test")
    assert created["metadata_url"] == published and len(created["versions"]) == 1

    assert admin.refresh_due() == {}  # fetched just now: not due
    assert admin.refresh_due(every=True) == {"other": "not_modified"}
    assert _Published.requests[-1]["if-none-match"]  # a conditional request

    _Published.body = _metadata_with(acme, old.cert_pem, new.cert_pem)
    assert admin.refresh_due(every=True) == {"other": "applied"}  # an added key applies at once
    _Published.body = _metadata_with(acme, new.cert_pem)
    assert admin.refresh_due(every=True) == {"other": "pending"}  # a removed one waits
    statuses = [v["status"] for v in admin.versions("other")]
    assert statuses == ["pending", "applied", "superseded"]

    _Published.body = b"<not metadata"
    outcome = admin.refresh_due(every=True)["other"]
    assert outcome.startswith("failed:") and "not well-formed" in outcome
    assert admin.get_idp("other")["metadata_fetch_error"]
    assert len(bridge.idps["other"].metadata.signing_certificates) == 2  # in force, unchanged


def test_private_addresses_need_the_operator(bridge: Services, published: str) -> None:
    from bridge.errors import ConfigError

    admin = IdpAdmin(bridge)  # the default policy
    with pytest.raises(ConfigError, match="127.0.0.1"):
        admin.create_idp("other", xml=None, url=published, settings={}, actor="test")


def _federation_signed(federation: Signer, idp_certs: list[Signer], valid_until: dt.datetime,
                       entity_id: str = "https://rollover-idp.example.org") -> bytes:
    """An IdP's metadata as its federation publishes it: signed, with a validUntil."""
    keys = "".join(f"""
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>{cert.cert_b64}</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>""" for cert in idp_certs)
    xml = f"""<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" entityID="{entity_id}"
    ID="_{uuid.uuid4().hex}" validUntil="{valid_until:%Y-%m-%dT%H:%M:%SZ}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{keys}
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
                            Location="{entity_id}/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"""
    return text(sign(etree.fromstring(xml.encode()), federation))


def test_an_expired_signed_document_cannot_roll_the_metadata_back(
        bridge: Services, published: str, pki: Pki) -> None:  # noqa: F811
    """Whoever can answer at the metadata URL serves a document the federation signed during an
    earlier key rollover (old and new key), long expired. Its signature is genuine; its validUntil
    (SAML Metadata §2.3.2) has passed, so it is refused and the retired key stays untrusted."""
    federation, retired, current = _signer("federation"), _signer("retired"), _signer("current")
    now = dt.datetime.now(dt.UTC)
    admin = IdpAdmin(bridge, FetchPolicy(allow_private=True, ca_bundle=pki.ca_file))
    _Published.body = _federation_signed(federation, [current], now + dt.timedelta(days=7))
    admin.create_idp("other", xml=None, url=published, actor="test",
                     settings={"metadata_signing_certificate": federation.cert_pem})
    assert len(bridge.idps["other"].metadata.signing_certificates) == 1

    _Published.body = _federation_signed(federation, [retired, current],
                                         now - dt.timedelta(days=30))
    outcome = admin.refresh_due(every=True)["other"]
    assert outcome.startswith("failed:") and "validUntil" in outcome
    assert [c.pem for c in bridge.idps["other"].metadata.signing_certificates] == [
        current.cert_pem]


def test_an_idp_stored_but_not_loadable_fails_its_refresh_with_the_reason(
        bridge: Services, session_other_idp: DevIdp, published: str, pki: Pki,  # noqa: F811
        tmp_path: Path) -> None:
    """Settings saved under an older, laxer rule: the registry skips the IdP (and logs why); its
    scheduled refresh must fail with that reason, not with a KeyError that stopped the jobs."""
    acme = session_other_idp
    admin = IdpAdmin(bridge, FetchPolicy(allow_private=True, ca_bundle=pki.ca_file))
    _Published.body = acme.metadata_xml()
    admin.create_idp("other", xml=None, url=published, settings={}, actor="test")
    with bridge.db.transaction() as session:
        row = session.get(IdpRecord, "other")
        row.settings_json = json.dumps({"clock_skew_seconds": 900})  # over the limit of 300
        row.updated_at += 1
    bridge.idps.invalidate()
    assert "other" not in bridge.idps
    _Published.body = _metadata_with(acme, x.load_keypair(acme.state_dir).cert_pem,
                                     _new_keypair(tmp_path).cert_pem)

    outcome = admin.refresh_due(every=True)["other"]
    assert outcome.startswith("failed:") and "clock_skew_seconds" in outcome, outcome
    with bridge.db.transaction() as session:  # what the admin sees on the IdP's page
        assert "clock_skew_seconds" in (session.get(IdpRecord, "other").metadata_fetch_error or "")

    # As the background job, once due again: the IdP's failure is its outcome, and the jobs run.
    with bridge.db.transaction() as session:
        session.get(IdpRecord, "other").metadata_fetched_at = 0.0
    app = create_app(services=bridge)
    results = run_due(bridge.db, standard_jobs(bridge, app.extensions["admin"].idps), time.time())
    assert results["metadata_refresh"].startswith("{'other': 'failed:")
    assert results["purge_expired"].startswith("{")
