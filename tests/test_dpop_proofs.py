"""DPoP proof checks (RFC 9449 §4.3) and server nonces (§8), on proofs made by joserfc."""

from __future__ import annotations

import json
from typing import Any

import jwt as pyjwt
import pytest
from joserfc import jws

from bridge.errors import DpopError
from bridge.tokens.dpop import ProofRequirements, normalize_htu, verify_proof
from bridge.tokens.dpop_nonce import DpopNonces
from tests.dpop_tools import DpopKey, unsigned_proof

NOW = 1_800_000_000.0
URL = "https://bridge.example.com/token"


def _requirements(**overrides: Any) -> ProofRequirements:
    values: dict[str, Any] = {"method": "POST", "url": URL, "now": NOW, "max_age_seconds": 60,
                              "clock_skew_seconds": 5}
    values.update(overrides)
    return ProofRequirements(**values)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "Ed25519"])
def test_a_proof_gives_its_keys_rfc_7638_thumbprint(alg: str) -> None:
    key = DpopKey(alg)
    verified = verify_proof(key.proof("POST", URL, iat=NOW, jti="j-1", nonce="n"),
                            _requirements())
    assert verified.jkt == key.jkt  # as joserfc computes it
    assert (verified.jti, verified.iat, verified.nonce) == ("j-1", NOW, "n")


@pytest.mark.parametrize("htu", [
    "https://bridge.example.com/token?x=1", "https://bridge.example.com/token#frag",
    "HTTPS://Bridge.Example.COM/token", "https://bridge.example.com:443/token"])
def test_htu_is_compared_without_query_fragment_case_or_default_port(htu: str) -> None:
    key = DpopKey()
    assert verify_proof(key.proof("POST", htu, iat=NOW), _requirements()).jkt == key.jkt


@pytest.mark.parametrize("htu", [
    "https://bridge.example.com/token/", "https://bridge.example.com/userinfo",
    "http://bridge.example.com/token", "https://bridge.example.com:8443/token",
    "https://evil.example.com/token", "not a url", "https://[::1/token",
    "https://user@bridge.example.com/token", "https://:pw@bridge.example.com/token",
    "https://evil.example.com@bridge.example.com/token"])
def test_a_proof_for_another_url_is_refused(htu: str) -> None:
    with pytest.raises(DpopError) as refused:
        verify_proof(DpopKey().proof("POST", htu, iat=NOW), _requirements())
    assert refused.value.oauth_error == "invalid_dpop_proof"


def test_normalised_urls_keep_their_path_and_other_ports() -> None:
    assert normalize_htu("https://a.example:8443") == "https://a.example:8443/"
    assert normalize_htu("http://A.example:80/x?y#z") == "http://a.example/x"


@pytest.mark.parametrize("iat,ok", [(NOW - 65, True), (NOW - 66, False), (NOW + 5, True),
                                    (NOW + 6, False)])
def test_iat_window_is_max_age_and_skew(iat: float, ok: bool) -> None:
    proof = DpopKey().proof("POST", URL, iat=iat)
    if ok:
        verify_proof(proof, _requirements())
    else:
        with pytest.raises(DpopError):
            verify_proof(proof, _requirements())


@pytest.mark.parametrize("iat", [float("nan"), float("inf"), float("-inf")])
def test_an_iat_that_is_not_a_finite_number_is_refused(iat: float) -> None:
    """NaN passes every comparison: a proof made today with it would stay fresh for ever."""
    proof = DpopKey().proof("POST", URL, iat=NOW, claims={"iat": iat})
    assert "NaN" in _payload(proof) or "Infinity" in _payload(proof)  # signed as sent
    for now in (NOW, NOW + 10 * 365 * 86400):
        with pytest.raises(DpopError) as refused:
            verify_proof(proof, _requirements(now=now))
        assert refused.value.oauth_error == "invalid_dpop_proof"


def _payload(proof: str) -> str:
    body = proof.split(".")[1]
    return pyjwt.utils.base64url_decode(body.encode()).decode()


def test_ath_must_be_the_hash_of_the_presented_access_token() -> None:
    key = DpopKey()
    proof = key.proof("GET", URL, iat=NOW, access_token="token-a")
    verify_proof(proof, _requirements(method="GET", access_token="token-a"))
    with pytest.raises(DpopError):
        verify_proof(proof, _requirements(method="GET", access_token="token-b"))
    with pytest.raises(DpopError):  # no ath at all
        verify_proof(key.proof("GET", URL, iat=NOW),
                     _requirements(method="GET", access_token="token-a"))


def _claims() -> dict[str, Any]:
    return {"jti": "j", "htm": "POST", "htu": URL, "iat": int(NOW)}


# Each case and the reason the refusal must give (so that it is refused for that reason).
CASES = {"alg none": "alg 'none'", "HS256": "alg 'HS256'", "typ JWT": "typ 'JWT'",
         "no typ": "typ 'None'", "no jwk": "jwk is not an object",
         "private jwk": "private key", "jwk of another type": "kty 'OKP'",
         "signed by another key": "InvalidSignatureError", "crit": "crit",
         "claims not an object": "not an object", "not a JWT": "compact JWT"}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_proofs_are_refused(case: str) -> None:
    key, other = DpopKey(), DpopKey()
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk}
    if case == "alg none":
        proof = unsigned_proof({**header, "alg": "none"}, _claims())
    elif case == "HS256":
        # Signed with a secret: "verifiable" by anyone who reads the secret off the proof.
        proof = pyjwt.encode(_claims(), "a-shared-secret-of-enough-length-32b", algorithm="HS256",
                             headers={"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": "c2VjcmV0"}})
    elif case == "typ JWT":
        proof = key.proof("POST", URL, iat=NOW, header={"typ": "JWT"})
    elif case == "no typ":
        proof = unsigned_proof({k: v for k, v in header.items() if k != "typ"}, _claims())
    elif case == "no jwk":
        proof = unsigned_proof({k: v for k, v in header.items() if k != "jwk"}, _claims())
    elif case == "private jwk":
        proof = key.proof("POST", URL, iat=NOW,
                          header={"jwk": dict(key.key.as_dict(private=True))})
    elif case == "jwk of another type":
        proof = key.proof("POST", URL, iat=NOW, header={"jwk": DpopKey("EdDSA").public_jwk})
    elif case == "signed by another key":
        proof = key.proof("POST", URL, iat=NOW, header={"jwk": other.public_jwk})
    elif case == "crit":
        proof = unsigned_proof({**header, "crit": ["exp"], "exp": 1}, _claims(), b"x" * 64)
    elif case == "claims not an object":
        proof = jws.serialize_compact(header, b"[1]", key.key)
    else:
        proof = "a.b"
    with pytest.raises(DpopError) as refused:
        verify_proof(proof, _requirements())
    assert refused.value.oauth_error == "invalid_dpop_proof"
    assert refused.value.code == "invalid_dpop_proof"
    assert CASES[case] in refused.value.log_detail["why"]


@pytest.mark.parametrize("claims", [{"jti": None}, {"jti": ""}, {"jti": "x" * 257},
                                    {"iat": "1800000000"}, {"iat": True}, {"htm": "GET"},
                                    {"nonce": 5}])
def test_claims_of_the_wrong_kind_are_refused(claims: dict[str, Any]) -> None:
    proof = DpopKey().proof("POST", URL, iat=NOW, claims=claims)
    with pytest.raises(DpopError):
        verify_proof(proof, _requirements())


def test_nonces_rotate_by_window_and_the_previous_one_stays_good() -> None:
    nonces = DpopNonces(b"k" * 32, lifetime_seconds=300)
    first = nonces.current(NOW)
    assert nonces.accepts(first, NOW)
    assert nonces.current(NOW + 300) != first
    assert nonces.accepts(first, NOW + 300)  # the window before
    assert not nonces.accepts(first, NOW + 600)
    assert not nonces.accepts(first, NOW - 300)  # not from a later window
    another_node = DpopNonces(b"k" * 32, lifetime_seconds=300)
    assert another_node.accepts(first, NOW)
    assert not DpopNonces(b"x" * 32, lifetime_seconds=300).accepts(first, NOW)
    window, _, _ = first.partition(".")
    for forged in ("", None, "abc", f"{window}.", f"{window}.AAAA", "1" * 30 + ".x"):
        assert not nonces.accepts(forged, NOW)


def test_nonces_in_other_scripts_are_refused_not_an_error() -> None:
    nonces = DpopNonces(b"k" * 32, lifetime_seconds=300)
    window, _, mac = nonces.current(NOW).partition(".")
    arabic_indic = window.translate({ord(d): 0x0660 + int(d) for d in "0123456789"})
    for forged in (f"{arabic_indic}.{mac}", f"{window}.{mac[:-1]}é", f"{window}.é"):
        assert not nonces.accepts(forged, NOW)


@pytest.mark.parametrize("claims", [{"jti": "a\ud800"}, {"\udfffx": "y"},
                                    {"htu": URL + "\ud800"}])
def test_a_proof_with_a_string_that_is_not_text_is_refused(claims: dict[str, Any]) -> None:
    """JSON can carry a lone surrogate, which no replay store keeps and no log line encodes."""
    key = DpopKey()
    body = {"jti": "j1", "htm": "POST", "htu": URL, "iat": int(NOW), **claims}
    # Signed over the JSON as a client would send it (the escapes as written).
    proof = jws.serialize_compact({"typ": "dpop+jwt", "alg": key.alg, "jwk": key.public_jwk},
                                  json.dumps(body).encode(), key.key)
    with pytest.raises(DpopError) as refused:
        verify_proof(proof, _requirements())
    assert refused.value.code == "invalid_dpop_proof"
    assert "not Unicode text" in refused.value.log_detail["why"]
