"""How a SAML message of ours travels to the IdP through the browser (SAML Bindings §3.4, §3.5).

* HTTP-Redirect: the message, DEFLATE-compressed and base64-encoded, in the query of a URL at
  the IdP; signed, the query also carries ``SigAlg`` and ``Signature`` (§3.4.4.1).
* HTTP-POST: the message, base64-encoded, in a form the browser posts to the IdP; signed, the
  signature is inside the XML (§3.5.4).

The result is an ``OutgoingMessage``: plain values for the web layer to turn into a 302 or an
auto-submitting form.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from urllib.parse import urlencode

from lxml import etree

from bridge.saml import ns
from bridge.saml.keys import SigningKey
from bridge.saml.signing import RSA_SHA256, sign_enveloped, sign_query

REDIRECT = ns.BINDING_REDIRECT
POST = ns.BINDING_POST


@dataclass(frozen=True)
class OutgoingMessage:
    binding: str
    # HTTP-Redirect: the whole URL, message included. HTTP-POST: the form's action.
    url: str
    # HTTP-POST: the form's fields (SAMLRequest or SAMLResponse, and RelayState).
    fields: tuple[tuple[str, str], ...] = ()
    signed: bool = False


def _deflated(xml: bytes) -> str:
    # SAML Bindings §3.4.4.1: raw DEFLATE (RFC 1951), no zlib header or checksum.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(xml) + compressor.flush()).decode("ascii")


def encode(message: etree._Element, *, binding: str, destination: str, parameter: str,
           key: SigningKey | None, relay_state: str | None = None) -> OutgoingMessage:
    """Put ``message`` (whose Destination is ``destination``) on ``binding``; sign it with
    ``key`` unless that is None. ``parameter`` is ``SAMLRequest`` or ``SAMLResponse``."""
    if parameter not in ("SAMLRequest", "SAMLResponse"):
        raise ValueError(parameter)
    if binding == REDIRECT:
        # The XML itself carries no signature with this binding (§3.4.4.1).
        pairs = [(parameter, _deflated(etree.tostring(message)))]
        if relay_state is not None:
            pairs.append(("RelayState", relay_state))
        if key is not None:
            pairs.append(("SigAlg", RSA_SHA256))
        query = urlencode(pairs)
        if key is not None:
            # The signature covers these bytes exactly as they appear in the URL: same order,
            # same percent-encoding.
            signature = base64.b64encode(sign_query(query.encode("ascii"), key)).decode("ascii")
            query += "&" + urlencode({"Signature": signature})
        separator = "&" if "?" in destination else "?"
        return OutgoingMessage(REDIRECT, destination + separator + query, signed=key is not None)
    if binding == POST:
        if key is not None:
            sign_enveloped(message, key)
        xml = etree.tostring(message, xml_declaration=True, encoding="UTF-8")
        fields = [(parameter, base64.b64encode(xml).decode("ascii"))]
        if relay_state is not None:
            fields.append(("RelayState", relay_state))
        return OutgoingMessage(POST, destination, tuple(fields), signed=key is not None)
    raise ValueError(f"unsupported binding {binding}")
