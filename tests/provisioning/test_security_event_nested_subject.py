"""A SET whose subject is a complex identifier nested in itself is malformed (an SSF complex
subject's members are simple identifiers): it is refused as ``set_invalid`` (400, RFC 8935
§2.3), never a 500, which a transmitter would send again and again. Nothing is changed. And a
500 of the bridge's own is still answered in the receiver's JSON shape."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient

from bridge.services import Services
from bridge.store.models import DeprovisionedSubject, ReceivedSecurityEvent
from tests.provisioning.conftest import ALICE_NAME_ID
from tests.provisioning.transmitter import RISC, Transmitter, user

TRANSMITTER = Transmitter()


@pytest.fixture
def idp_settings() -> str:
    return TRANSMITTER.settings_toml()


def _nested(depth: int) -> dict[str, Any]:
    subject: dict[str, Any] = user(ALICE_NAME_ID)
    for _ in range(depth):
        subject = {"format": "complex", "user": subject}
    return subject


def _signed(depth: int, where: str) -> str:
    """The SET, its JSON written out by hand: deeper than the encoder follows too."""
    nested = '{"format":"complex","user":' * depth + json.dumps(user(ALICE_NAME_ID)) + "}" * depth
    claims = TRANSMITTER.claims({RISC + "account-disabled": {}})
    text = json.dumps(claims)[:-1]
    if where == "sub_id":
        text += ', "sub_id": ' + nested + "}"
    else:
        text = text.replace('"account-disabled": {}',
                            '"account-disabled": {"subject": ' + nested + "}")
    return jwt.api_jws.encode(text.encode(), TRANSMITTER.key, algorithm=TRANSMITTER.alg,
                              headers={"typ": "secevent+jwt", "kid": TRANSMITTER.kid})


# 20: deeper than any SET needs; 900: deeper than the checks recursed; 1400: deeper than the
# JSON decoder follows (and still within the 64 kB a SET may have).
@pytest.mark.parametrize("depth", [20, 900, 1400])
@pytest.mark.parametrize("where", ["sub_id", "event subject"])
def test_a_deeply_nested_complex_subject_is_refused(depth: int, where: str, client: FlaskClient,
                                                    bridge: Services) -> None:
    answer = client.post("/events/dev", data=_signed(depth, where),
                         headers={"Content-Type": "application/secevent+jwt"})
    assert answer.status_code == 400, answer.get_data(as_text=True)[:200]
    assert answer.get_json()["err"] == "invalid_request"
    with bridge.db.transaction() as session:
        assert session.query(DeprovisionedSubject).count() == 0
        assert session.query(ReceivedSecurityEvent).count() == 0


def test_a_complex_subject_one_level_deep_still_names_the_person(client: FlaskClient,
                                                                  bridge: Services) -> None:
    token = TRANSMITTER.set({RISC + "account-disabled": {}}, sub_id=_nested(1))
    answer = client.post("/events/dev", data=token,
                         headers={"Content-Type": "application/secevent+jwt"})
    assert answer.status_code == 202
    with bridge.db.transaction() as session:
        assert session.query(DeprovisionedSubject).count() == 1


def test_an_error_of_the_bridge_is_answered_in_rfc_8935s_shape(
        client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # A 5xx is what a transmitter retries; its body is still the receiver's JSON, not a page.
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("bridge.provisioning.security_events.SecurityEvents.receive", broken)
    answer = client.post("/events/dev", data=TRANSMITTER.set({RISC + "account-disabled": {}},
                                                             sub_id=user(ALICE_NAME_ID)),
                         headers={"Content-Type": "application/secevent+jwt",
                                  "Accept": "text/html"})
    assert answer.status_code == 500
    assert answer.mimetype == "application/json"
    assert answer.get_json()["err"] == "server_error"
    assert "a bug" not in answer.get_data(as_text=True)
