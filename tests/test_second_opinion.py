"""What ``saml/onelogin.py`` changes in python3-saml, the second opinion, changes no answer:
its times in the common form are parsed without ``strptime`` to the library's own result (every
other form reaches the library, which parses or refuses it as it always did), and it reads no
certificate file of its own while it checks a response."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from onelogin.saml2 import settings as onelogin_settings

from bridge.dev.saml_idp import USERS, DevIdp
from bridge.saml import onelogin
from tests.attacks import xml_tools as x
from tests.conftest import BRIDGE_URL

LIBRARY = onelogin._library_parse_time
OURS = onelogin.OneLogin_Saml2_Utils.parse_SAML_to_time


def _outcome(parse: object, text: object) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except Exception as error:  # noqa: BLE001 - the kind of refusal is the outcome
        return type(error)


@pytest.mark.parametrize("text", [
    "2026-12-03T19:20:00Z", "2026-12-03T19:20:00.5Z", "2026-12-03T19:20:00.123456Z",
    "2026-12-03T19:20:00.1234567Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
    "2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z", "2026-12-03T24:00:00Z",
    "2026-12-03T19:20:60Z", "2026-12-03T19:20:61Z", "2026-13-03T19:20:00Z", "0000-01-01T00:00:00Z",
    "2026-12-03T19:20:00", "2026-12-03T19:20:00Z\n", "2026-12-03T19:20:00.Z",
    "2026-12-03T19:20:00+00:00", "2026-1-3T1:2:3Z", " 2026-12-03T19:20:00Z",
    "２０２６-12-03T19:20:00Z", "2026-12-03t19:20:00z", "", "2026-12-03T19:20:00.00000000000001Z",
])
def test_the_same_answer_as_the_library(text: str) -> None:
    assert OURS is onelogin._parse_time
    assert _outcome(OURS, text) == _outcome(LIBRARY, text)


def test_random_times_and_near_misses() -> None:
    chance = random.Random(3)
    alphabet = "0123456789-T:.Z +"
    for _ in range(3000):
        text = (f"{chance.randrange(10000):04d}-{chance.randrange(14):02d}-"
                f"{chance.randrange(33):02d}T{chance.randrange(26):02d}:{chance.randrange(61):02d}:"
                f"{chance.randrange(63):02d}" + chance.choice(["Z", ".0Z", ".999999Z", ""]))
        if chance.random() < 0.3:
            at = chance.randrange(len(text) + 1)
            text = text[:at] + chance.choice(alphabet) + text[at + 1:]
        assert _outcome(OURS, text) == _outcome(LIBRARY, text), text


def test_no_certificate_file_is_looked_for(session_dev_idp: DevIdp, idp_key_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Given only a list of signing certificates, the library looked for an ``idp.crt`` in its
    own directory on every response (a file anyone able to write there could have slipped in)."""
    acs = f"{BRIDGE_URL}/saml/dev/acs"
    response = session_dev_idp.response_for(None, USERS["alice"], acs_url=acs,
                                            sp_entity_id=f"{BRIDGE_URL}/saml/metadata")
    settings = onelogin.build_settings(onelogin.OneLoginParams(
        sp_entity_id=f"{BRIDGE_URL}/saml/metadata", acs_url=acs,
        idp_entity_id=session_dev_idp.entity_id, idp_sso_url=f"{session_dev_idp.entity_id}/sso",
        idp_certificates=(x.load_keypair(idp_key_dir).cert_pem.decode(),), allow_sha1=False))

    def no_file(path: str) -> bool:
        raise AssertionError(f"looked for {path}")

    monkeypatch.setattr(onelogin_settings, "exists", no_file)
    onelogin.strict_validate(settings, response, acs_url=acs, request_id=None, now=time.time(),
                             skew_seconds=60)
