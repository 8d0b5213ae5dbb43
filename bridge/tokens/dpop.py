"""DPoP proofs (RFC 9449): the checks of §4.3 that need nothing but the proof, the request it came
with and the time. Whether its ``jti`` was seen before and whether its nonce is current are asked
of the database and of ``dpop_nonce`` by the caller (``bridge/oauth/dpop.py``).

The proof chooses nothing it should not: the algorithm must be one of ours and agree with the
embedded key's type and curve, the key must be public, and the key is built here from its
coordinates rather than handed to a library that would accept any key type (RFC 8725 §3.1).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import OKPAlgorithm

from bridge.errors import DpopError
from bridge.unicode_text import not_text_at

PROOF_TYPE = "dpop+jwt"
# Asymmetric only: never "none", never an HMAC (the verifier would need the client's secret).
ALGORITHMS = ("ES256", "ES384", "EdDSA", "Ed25519")
# PyJWT knows Ed25519 signatures under the name EdDSA only; RFC 9864 names them Ed25519 too.
_JWS = jwt.PyJWS(algorithms=["ES256", "ES384", "EdDSA"])
_JWS.register_algorithm("Ed25519", OKPAlgorithm())
_CURVES: dict[str, tuple[str, ec.EllipticCurve, int]] = {
    "ES256": ("P-256", ec.SECP256R1(), 32),
    "ES384": ("P-384", ec.SECP384R1(), 48),
}
# Members that only a private JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4): a proof that carries one
# gave its private key away, and is no proof of possession any more.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# A proof is a header and a few claims: anything much larger is not one.
MAX_PROOF_LENGTH = 4096
MAX_JTI_LENGTH = 256


@dataclass(frozen=True)
class ProofRequirements:
    """What a proof must match: the request it came with, the time, and the access token it is
    presented with (at a resource, §7)."""

    method: str
    url: str
    now: float
    max_age_seconds: int
    clock_skew_seconds: int
    access_token: str | None = None


@dataclass(frozen=True)
class VerifiedProof:
    jkt: str  # RFC 7638 thumbprint of the proof's public key
    jti: str
    iat: float
    nonce: str | None


def refuse(why: str, detail: str = "The DPoP proof is not valid.") -> DpopError:
    return DpopError("invalid_dpop_proof", detail, log_detail={"why": why})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: object, length: int) -> bytes:
    if not isinstance(text, str) or "=" in text:
        raise refuse("a key coordinate is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise refuse("a key coordinate is not base64url") from None
    if len(raw) != length or b64url(raw) != text:
        raise refuse("a key coordinate has the wrong length")
    return raw


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, without whitespace, base64url."""
    required = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"),
                           sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def access_token_hash(access_token: str) -> str:
    """§4.2 ``ath``: base64url SHA-256 of the access token's ASCII."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def public_key(alg: str, jwk: object) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    """The public key of ``jwk``, which must be of the type and curve ``alg`` signs with."""
    if not isinstance(jwk, dict):
        raise refuse("jwk is not an object")
    if _PRIVATE_MEMBERS & jwk.keys():
        raise refuse("the jwk holds a private key", "The DPoP proof's jwk must be a public key.")
    if alg in ("EdDSA", "Ed25519"):
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise refuse(f"kty {jwk.get('kty')!r} crv {jwk.get('crv')!r} for {alg}")
        return ed25519.Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk.get("x"), 32))
    crv, curve, size = _CURVES[alg]
    if jwk.get("kty") != "EC" or jwk.get("crv") != crv:
        raise refuse(f"kty {jwk.get('kty')!r} crv {jwk.get('crv')!r} for {alg}")
    x = int.from_bytes(_b64url_decode(jwk.get("x"), size), "big")
    y = int.from_bytes(_b64url_decode(jwk.get("y"), size), "big")
    try:
        return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    except ValueError:
        raise refuse("the jwk's point is not on its curve") from None


def _json_object(part: str, name: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except ValueError:
        raise refuse(f"the {name} is not base64url JSON") from None
    except RecursionError:  # nested deeper than the decoder follows, within the length limit
        raise refuse(f"the {name} is nested too deeply") from None
    if not isinstance(value, dict):
        raise refuse(f"the {name} is not an object")
    if not_text_at(value) is not None:  # a lone surrogate: nothing stores or shows it
        raise refuse(f"the {name} holds a string that is not Unicode text")
    return value


def _a_time(value: object) -> TypeGuard[int | float]:
    """A number the checks below can compare and subtract as seconds: NaN passes every
    comparison (json.loads reads it), and an integer past a float's range cannot be subtracted
    from one (``OverflowError``)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= 2**53
    return isinstance(value, float) and math.isfinite(value)


def normalize_htu(url: str) -> str:
    """§4.3 item 9: compare URIs without query and fragment, after RFC 3986 §6.2.2-6.2.3
    normalisation of scheme, host and default port. Empty for what is no URL of ours."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    if "@" in parts.netloc:
        return ""  # userinfo: a URL we never serve, not ours with a name attached
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and (scheme, port) not in (("https", 443), ("http", 80)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", "", ""))


def verify_proof(proof: str, requirements: ProofRequirements) -> VerifiedProof:
    """Check one proof against the request it came with (RFC 9449 §4.3, items 2-12 but the
    nonce, which the caller checks with ``VerifiedProof.nonce``); raise ``DpopError``."""
    if not proof or len(proof) > MAX_PROOF_LENGTH or proof.count(".") != 2:
        raise refuse("not a compact JWT of reasonable size")
    header = _json_object(proof.partition(".")[0], "header")
    if header.get("typ") != PROOF_TYPE:
        raise refuse(f"typ {str(header.get('typ'))[:40]!r}")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise refuse(f"alg {str(alg)[:40]!r} is not allowed")
    if "crit" in header:
        raise refuse("crit names extensions we do not understand")
    key = public_key(alg, header.get("jwk"))
    try:
        _JWS.decode_complete(proof, key, algorithms=[alg])
    except jwt.PyJWTError as error:
        raise refuse(type(error).__name__) from None
    claims = _json_object(proof.split(".")[1], "claims")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise refuse("jti is missing or not a short string")
    if claims.get("htm") != requirements.method:
        raise refuse(f"htm {str(claims.get('htm'))[:16]!r} is not {requirements.method}",
                     "The DPoP proof is for another HTTP method.")
    htu = claims.get("htu")
    if not isinstance(htu, str) or normalize_htu(htu) != normalize_htu(requirements.url):
        raise refuse(f"htu {str(htu)[:200]!r}", "The DPoP proof is for another URL.")
    iat = claims.get("iat")
    if not _a_time(iat):
        raise refuse("iat is not a finite number of seconds")
    now, skew = requirements.now, requirements.clock_skew_seconds
    if iat > now + skew:
        raise refuse(f"iat {iat} is {iat - now:.0f}s ahead", "The DPoP proof is from the future.")
    if iat < now - requirements.max_age_seconds - skew:
        raise refuse(f"iat {iat} is {now - iat:.0f}s old", "The DPoP proof is too old.")
    token = requirements.access_token
    if token is not None and claims.get("ath") != access_token_hash(token):
        raise refuse("ath is not the hash of the access token",
                     "The DPoP proof is not for this access token.")
    nonce = claims.get("nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise refuse("nonce is not a string")
    return VerifiedProof(jkt=jwk_thumbprint(header["jwk"]), jti=jti, iat=float(iat), nonce=nonce)
