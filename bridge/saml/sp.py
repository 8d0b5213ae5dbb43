"""Our side of SAML: the messages we send (AuthnRequest, LogoutRequest, LogoutResponse) and the
SP metadata document.

Messages are built here with lxml, so every value (a NameID or SessionIndex the IdP gave us, an
ID it chose, a URL from its metadata) is XML text or an attribute value, never markup: what we
sign is exactly the message we mean. Each is signed with our SP signing key when the IdP's
settings say so (``SamlIdp.signs_authn_requests`` / ``signs_logout_messages``) and put on
the binding its metadata offers (``bridge.saml.bindings``).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lxml import etree

from bridge.saml import ns
from bridge.saml.bindings import OutgoingMessage, encode
from bridge.saml.idp import SamlIdp
from bridge.saml.keys import SigningKey
from bridge.saml.ns import q
from bridge.saml.response import ServiceProvider


def new_message_id() -> str:
    # SAML Core §1.3.4: at least 128 bits of randomness; an xs:ID may not start with a digit.
    return "_" + secrets.token_hex(20)


def _instant(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _message(tag: str, *, message_id: str, now: float, destination: str, issuer: str,
             **attributes: str) -> etree._Element:
    """A SAML protocol message (SAML Core §3.2.1, §3.2.2) with its Issuer."""
    root = etree.Element(q(ns.SAMLP, tag), nsmap={"samlp": ns.SAMLP, "saml": ns.SAML})
    root.set("ID", message_id)
    root.set("Version", "2.0")
    root.set("IssueInstant", _instant(now))
    root.set("Destination", destination)
    for name, value in attributes.items():
        root.set(name, value)
    etree.SubElement(root, q(ns.SAML, "Issuer")).text = issuer
    return root


@dataclass(frozen=True)
class AuthnOptions:
    """What an AuthnRequest asks of the authentication itself (SAML Core §3.4.1)."""

    force_authn: bool = False
    is_passive: bool = False
    # RequestedAuthnContext (§3.3.2.2.1): class references in order of preference.
    class_refs: tuple[str, ...] = ()
    comparison: str = "exact"


PLAIN = AuthnOptions()


def authn_request(idp: SamlIdp, sp: ServiceProvider, *, now: float,
                  signing_key: Callable[[], SigningKey],
                  options: AuthnOptions = PLAIN) -> tuple[str, OutgoingMessage]:
    """Return (request ID, the AuthnRequest on its way to the IdP).

    The request names its ACS by ``AssertionConsumerServiceURL`` (SAML Core §3.4.1). No RelayState:
    the response is matched to the stored request by its signed ``InResponseTo``. Signed with
    ``signing_key()`` when the IdP's settings say so; ``options`` are inside what is signed.
    """
    binding, url = idp.authn_request_endpoint()
    request_id = new_message_id()
    flags = {}
    if options.force_authn:
        flags["ForceAuthn"] = "true"
    if options.is_passive:
        flags["IsPassive"] = "true"
    message = _message("AuthnRequest", message_id=request_id, now=now, destination=url,
                       issuer=sp.entity_id, ProtocolBinding=ns.BINDING_POST,
                       AssertionConsumerServiceURL=sp.acs_url, **flags)
    etree.SubElement(message, q(ns.SAMLP, "NameIDPolicy"), Format=ns.NAMEID_UNSPECIFIED,
                     AllowCreate="true")
    if options.class_refs:
        # Schema order: after NameIDPolicy (and Conditions, which we never send).
        requested = etree.SubElement(message, q(ns.SAMLP, "RequestedAuthnContext"),
                                     Comparison=options.comparison)
        for class_ref in options.class_refs:
            etree.SubElement(requested, q(ns.SAML, "AuthnContextClassRef")).text = class_ref
    signer = signing_key() if idp.signs_authn_requests else None
    return request_id, encode(message, binding=binding, destination=url, parameter="SAMLRequest",
                              key=signer)


def logout_request(idp: SamlIdp, sp: ServiceProvider, *, name_id: str,
                   session_index: str | None, now: float,
                   signing_key: Callable[[], SigningKey],
                   message_id: str | None = None) -> OutgoingMessage | None:
    """Our LogoutRequest (SAML Core §3.7.1) to the IdP's Single Logout service, if it has one;
    ``message_id`` (default: a random one) lets the caller recognise the IdP's answer."""
    endpoint = idp.logout_endpoint()
    if endpoint is None:
        return None
    binding, url = endpoint
    message = _message("LogoutRequest", message_id=message_id or new_message_id(), now=now,
                       destination=url, issuer=sp.entity_id)
    etree.SubElement(message, q(ns.SAML, "NameID")).text = name_id
    if session_index:
        etree.SubElement(message, q(ns.SAMLP, "SessionIndex")).text = session_index
    signer = signing_key() if idp.signs_logout_messages else None
    return encode(message, binding=binding, destination=url, parameter="SAMLRequest", key=signer)


def logout_response(idp: SamlIdp, sp: ServiceProvider, *, in_response_to: str,
                    now: float, signing_key: Callable[[], SigningKey]) -> OutgoingMessage | None:
    """Our LogoutResponse (Success) to a LogoutRequest of the IdP, sent to its Single Logout
    service (its ResponseLocation, SAML Metadata §2.2.2) so that the IdP's logout chain goes on;
    None when it has no such service."""
    endpoint = idp.logout_endpoint(response=True)
    if endpoint is None:
        return None
    binding, url = endpoint
    message = _message("LogoutResponse", message_id=new_message_id(), now=now, destination=url,
                       issuer=sp.entity_id, InResponseTo=in_response_to)
    status = etree.SubElement(message, q(ns.SAMLP, "Status"))
    etree.SubElement(status, q(ns.SAMLP, "StatusCode"), Value=ns.STATUS_SUCCESS)
    signer = signing_key() if idp.signs_logout_messages else None
    return encode(message, binding=binding, destination=url, parameter="SAMLResponse", key=signer)


# Offered to IdPs that encrypt, strongest first (SAML metadata EncryptionMethod, XML Enc 1.1).
ENCRYPTION_METHODS = (
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
)


def _key_descriptor(parent: etree._Element, use: str, pem: str) -> etree._Element:
    key = etree.SubElement(parent, q(ns.MD, "KeyDescriptor"), use=use)
    info = etree.SubElement(key, q(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
    data = etree.SubElement(info, q(ns.DS, "X509Data"))
    body = "".join(line for line in pem.strip().splitlines() if "CERTIFICATE" not in line)
    etree.SubElement(data, q(ns.DS, "X509Certificate")).text = body
    return key


def sp_metadata(entity_id: str, acs_urls: Iterable[str],
                encryption_certificates: Iterable[str] = (), slo_urls: Iterable[str] = (), *,
                signing_certificates: Iterable[str] = (),
                authn_requests_signed: bool = False) -> bytes:
    """SP metadata: entity ID, every ACS URL (HTTP-POST binding), the certificates of our signing
    keys (every one published: the one that signs, the next, and recently retired ones) and of
    our encryption keys, and the Single Logout endpoints (HTTP-Redirect binding).

    ``authn_requests_signed`` (SAML Metadata §2.4.4) is true only when every IdP the document is
    for receives signed AuthnRequests: an IdP that reads it as a requirement (AD FS does) must not
    then receive an unsigned one."""
    md = etree.Element(q(ns.MD, "EntityDescriptor"), nsmap={"md": ns.MD}, entityID=entity_id)
    descriptor = etree.SubElement(
        md,
        q(ns.MD, "SPSSODescriptor"),
        AuthnRequestsSigned="true" if authn_requests_signed else "false",
        WantAssertionsSigned="true",
        protocolSupportEnumeration=ns.SAMLP,
    )
    for pem in signing_certificates:
        _key_descriptor(descriptor, "signing", pem)
    for pem in encryption_certificates:
        key = _key_descriptor(descriptor, "encryption", pem)
        for algorithm in ENCRYPTION_METHODS:
            etree.SubElement(key, q(ns.MD, "EncryptionMethod"), Algorithm=algorithm)
    for url in slo_urls:
        etree.SubElement(descriptor, q(ns.MD, "SingleLogoutService"), Binding=ns.BINDING_REDIRECT,
                         Location=url)
    for name_format in (ns.NAMEID_PERSISTENT, ns.NAMEID_EMAIL, ns.NAMEID_UNSPECIFIED):
        etree.SubElement(descriptor, q(ns.MD, "NameIDFormat")).text = name_format
    for index, url in enumerate(acs_urls):
        etree.SubElement(
            descriptor,
            q(ns.MD, "AssertionConsumerService"),
            Binding=ns.BINDING_POST,
            Location=url,
            index=str(index),
            isDefault="true" if index == 0 else "false",
        )
    return etree.tostring(md, xml_declaration=True, encoding="UTF-8", pretty_print=True)
