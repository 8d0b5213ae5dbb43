"""A transmitter's JWKS URL, fetched over real HTTPS by the metadata fetcher: kept between SETs,
fetched again for a key ID it does not hold (a rotation at the transmitter), but at most once a
minute, so made-up key IDs cannot turn the receiver into a fetch loop."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Iterator

import pytest

from bridge.errors import SecurityEventRejected
from bridge.idps.event_settings import SecurityEventSettings
from bridge.idps.fetch import FetchPolicy
from bridge.provisioning.transmitter_keys import MAX_STALE_SECONDS, TransmitterKeys
from tests.conftest import MovableClock
from tests.provisioning.transmitter import ISSUER, Transmitter
from tests.test_metadata_fetch import Pki, pki  # noqa: F401 - the throwaway PKI fixture


class _Jwks(http.server.BaseHTTPRequestHandler):
    document: dict[str, object] = {}
    served = 0
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        type(self).served += 1
        body = json.dumps(type(self).document).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/jwk-set+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def jwks_url(pki: Pki) -> Iterator[str]:  # noqa: F811
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    _Jwks.served, _Jwks.status = 0, 200
    yield f"https://127.0.0.1:{server.server_address[1]}/keys"
    server.shutdown()
    server.server_close()
    thread.join()


def test_keys_are_kept_and_refetched_for_a_new_key_id_at_most_once_a_minute(
        jwks_url: str, pki: Pki) -> None:  # noqa: F811
    first, rotated = Transmitter(kid="k1"), Transmitter(kid="k2")
    _Jwks.document = first.jwks()
    clock = MovableClock()
    keys = TransmitterKeys(clock, FetchPolicy(allow_private=True, ca_bundle=pki.ca_file))
    config = SecurityEventSettings(issuer=ISSUER, jwks_url=jwks_url)
    assert keys.key_for("dev", config, "k1", "RS256") is not None
    assert keys.key_for("dev", config, "k1", "RS256") is not None
    assert _Jwks.served == 1

    _Jwks.document = rotated.jwks()  # the transmitter rolls its key
    with pytest.raises(SecurityEventRejected) as refused:
        keys.key_for("dev", config, "k2", "RS256")  # fetched just now: not again yet
    assert refused.value.code == "set_signature_invalid"
    for _ in range(5):
        with pytest.raises(SecurityEventRejected):
            keys.key_for("dev", config, "made-up", "RS256")
    assert _Jwks.served == 1
    clock.advance(61)
    assert keys.key_for("dev", config, "k2", "RS256") is not None
    assert _Jwks.served == 2
    with pytest.raises(SecurityEventRejected):
        keys.key_for("dev", config, "k1", "RS256")  # gone from the transmitter's JWKS


def test_an_unreachable_url_keeps_the_keys_already_fetched(jwks_url: str,
                                                           pki: Pki) -> None:  # noqa: F811
    _Jwks.document = Transmitter(kid="k1").jwks()
    clock = MovableClock()
    keys = TransmitterKeys(clock, FetchPolicy(allow_private=True, ca_bundle=pki.ca_file))
    config = SecurityEventSettings(issuer=ISSUER, jwks_url=jwks_url)
    assert keys.key_for("dev", config, "k1", "RS256") is not None
    _Jwks.document = {"not": "a jwks"}
    clock.advance(3601)  # past the hour it keeps them: fetched again, and that fails
    assert keys.key_for("dev", config, "k1", "RS256") is not None


def test_a_failing_url_is_fetched_at_most_once_a_minute(jwks_url: str,
                                                        pki: Pki) -> None:  # noqa: F811
    _Jwks.document = {"not": "a jwks"}
    clock = MovableClock()
    keys = TransmitterKeys(clock, FetchPolicy(allow_private=True, ca_bundle=pki.ca_file))
    config = SecurityEventSettings(issuer=ISSUER, jwks_url=jwks_url)
    for _ in range(5):
        with pytest.raises(SecurityEventRejected) as refused:
            keys.key_for("dev", config, "k1", "RS256")
        assert refused.value.code == "set_keys_unavailable"
    assert _Jwks.served == 1
    clock.advance(61)
    _Jwks.document = Transmitter(kid="k1").jwks()
    assert keys.key_for("dev", config, "k1", "RS256") is not None
    assert _Jwks.served == 2


def test_keys_kept_while_the_url_fails_stop_verifying_after_a_day(jwks_url: str,
                                                                   pki: Pki) -> None:  # noqa: F811
    """The transmitter drops key k1 (compromised, say) while its URL fails for us: k1 verifies
    for at most MAX_STALE_SECONDS after the last good fetch, however the failures are spaced."""
    old, new = Transmitter(kid="k1"), Transmitter(kid="k2")
    _Jwks.document = old.jwks()
    clock = MovableClock()
    keys = TransmitterKeys(clock, FetchPolicy(allow_private=True, ca_bundle=pki.ca_file))
    config = SecurityEventSettings(issuer=ISSUER, jwks_url=jwks_url)
    assert keys.key_for("dev", config, "k1", "RS256") is not None
    _Jwks.document, _Jwks.status = new.jwks(), 503  # k1 withdrawn, and the URL fails
    waited = 0
    while waited + 3601 < MAX_STALE_SECONDS:
        clock.advance(3601)
        waited += 3601
        assert keys.key_for("dev", config, "k1", "RS256") is not None  # an outage ridden out
    served = _Jwks.served
    clock.advance(MAX_STALE_SECONDS - waited + 1)
    for _ in range(3):
        with pytest.raises(SecurityEventRejected) as refused:
            keys.key_for("dev", config, "k1", "RS256")
        assert refused.value.code == "set_keys_unavailable"
    assert _Jwks.served == served + 1  # still at most one fetch a minute
    clock.advance(61)
    _Jwks.status = 200  # the URL answers again: k1 is gone, k2 verifies
    with pytest.raises(SecurityEventRejected) as refused:
        keys.key_for("dev", config, "k1", "RS256")
    assert refused.value.code == "set_signature_invalid"
    assert keys.key_for("dev", config, "k2", "RS256") is not None


def test_a_key_a_good_fetch_dropped_verifies_nothing_while_the_url_then_fails(
        jwks_url: str, pki: Pki) -> None:  # noqa: F811
    both = Transmitter(kid="k1").jwks()["keys"] + Transmitter(kid="k2").jwks()["keys"]
    _Jwks.document = {"keys": both}
    clock = MovableClock()
    keys = TransmitterKeys(clock, FetchPolicy(allow_private=True, ca_bundle=pki.ca_file))
    config = SecurityEventSettings(issuer=ISSUER, jwks_url=jwks_url)
    assert keys.key_for("dev", config, "k1", "RS256") is not None
    _Jwks.document = {"keys": both[1:]}  # k1 withdrawn
    clock.advance(3601)
    assert keys.key_for("dev", config, "k2", "RS256") is not None  # the fetch that drops k1
    _Jwks.status = 503
    for _ in range(3):
        clock.advance(3601)
        with pytest.raises(SecurityEventRejected) as refused:
            keys.key_for("dev", config, "k1", "RS256")
        assert refused.value.code == "set_signature_invalid"
        assert keys.key_for("dev", config, "k2", "RS256") is not None
