"""Our compact JWS encoding (tokens/signing.py) against PyJWT's: the same bytes where the
algorithm is deterministic, the same header and payload where it is not, and signatures that
PyJWT verifies."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from bridge.tokens.keys import ActiveKey
from bridge.tokens.signing import sign

PAYLOAD = {
    # As an IdP may send them: non-ASCII, quotes, slashes, a list, nested objects.
    "name": "Zoë \"Ö\" d'Árc / 李", "groups": ["a/b", "c\\d"], "ver": 2, "cnf": {"jkt": "x"},
    "iss": "https://bridge.example.com", "aud": "api", "exp": 1_790_000_300,
    "iat": 1_790_000_000, "jti": "t1790000000123.abc", "flag": True, "none": None,
}
KEYS = {
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "EdDSA": ed25519.Ed25519PrivateKey.generate(),
}


def _pyjwt(key: ActiveKey, typ: str) -> str:
    return jwt.encode(PAYLOAD, key.private_key, algorithm=key.alg,
                      headers={"kid": key.kid, "typ": typ})


@pytest.mark.parametrize("alg", sorted(KEYS))
def test_the_header_and_payload_are_pyjwts_and_pyjwt_verifies_the_signature(alg: str) -> None:
    key = ActiveKey(kid=f"kid-{alg}", alg=alg, private_key=KEYS[alg])
    for typ in ("at+jwt", "JWT"):
        ours, theirs = sign(PAYLOAD, key, typ=typ), _pyjwt(key, typ)
        assert ours.split(".")[:2] == theirs.split(".")[:2]
        if alg != "ES256":  # RSASSA-PKCS1-v1_5 and Ed25519 sign deterministically
            assert ours == theirs
        assert jwt.get_unverified_header(ours) == {"alg": alg, "kid": key.kid, "typ": typ}
        decoded = jwt.decode(ours, KEYS[alg].public_key(), algorithms=[alg], audience="api",
                             options={"verify_exp": False, "verify_iat": False})
        assert decoded == PAYLOAD


def test_an_es256_signature_is_r_and_s_of_32_bytes_each() -> None:
    key = ActiveKey(kid="k", alg="ES256", private_key=KEYS["ES256"])
    for _ in range(50):  # r or s with leading zero bytes must keep their 32 bytes
        token = sign({"n": _}, key, typ="JWT")
        head, body, signature = token.split(".")
        raw = base64.urlsafe_b64decode(signature + "==")
        assert len(raw) == 64
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                   int.from_bytes(raw[32:], "big"))
        KEYS["ES256"].public_key().verify(der, f"{head}.{body}".encode(),
                                          ec.ECDSA(hashes.SHA256()))


def test_the_payload_segment_is_compact_ascii_json() -> None:
    key = ActiveKey(kid="k", alg="EdDSA", private_key=KEYS["EdDSA"])
    body = sign(PAYLOAD, key, typ="JWT").split(".")[1]
    text = base64.urlsafe_b64decode(body + "==").decode("ascii")
    assert text == json.dumps(PAYLOAD, separators=(",", ":"))
    assert "=" not in body


@pytest.mark.parametrize("alg,other", [("ES256", "RS256"), ("RS256", "EdDSA"),
                                       ("EdDSA", "ES256"), ("HS256", "ES256")])
def test_a_key_that_cannot_make_its_algorithm_signs_nothing(alg: str, other: str) -> None:
    key = ActiveKey(kid="k", alg=alg, private_key=KEYS[other])
    with pytest.raises(ValueError, match="cannot sign"):
        sign(PAYLOAD, key, typ="JWT")


def test_es256_signs_with_a_p256_key_only() -> None:
    p384 = ActiveKey(kid="k", alg="ES256", private_key=ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError, match="cannot sign"):
        sign(PAYLOAD, p384, typ="JWT")  # ES256 is P-256 and SHA-256 (RFC 7518 §3.4)
