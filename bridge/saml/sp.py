"""Our side of SAML: AuthnRequests (HTTP-Redirect binding) and the SP metadata document."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

from lxml import etree

from bridge.saml import ns, onelogin
from bridge.saml.idp import IdentityProvider
from bridge.saml.ns import q
from bridge.saml.response import ServiceProvider


def authn_request_redirect(idp: IdentityProvider, sp: ServiceProvider) -> tuple[str, str]:
    """Return (request ID, URL that carries the AuthnRequest to the IdP).

    The request names its ACS by ``AssertionConsumerServiceURL`` (SAML Core §3.4.1). No RelayState:
    the response is matched to the stored request by its signed ``InResponseTo``.
    """
    request_id, encoded = onelogin.authn_request(idp.onelogin_settings(sp))
    separator = "&" if "?" in idp.sso_url else "?"
    return request_id, idp.sso_url + separator + urlencode({"SAMLRequest": encoded})


# Offered to IdPs that encrypt, strongest first (SAML metadata EncryptionMethod, XML Enc 1.1).
ENCRYPTION_METHODS = (
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
)


def logout_redirect(idp: IdentityProvider, sp: ServiceProvider, *, name_id: str,
                    session_index: str | None) -> str | None:
    """URL that continues a logout to the IdP's Single Logout service, if it has one."""
    url = idp.metadata.slo_redirect_url
    if url is None:
        return None
    encoded = onelogin.logout_request(idp.onelogin_settings(sp), name_id=name_id,
                                      session_index=session_index)
    return url + ("&" if "?" in url else "?") + urlencode({"SAMLRequest": encoded})


def sp_metadata(entity_id: str, acs_urls: Iterable[str],
                encryption_certificates: Iterable[str] = (), slo_urls: Iterable[str] = ()) -> bytes:
    """SP metadata: entity ID, every ACS URL (HTTP-POST binding), encryption certificates, and
    the Single Logout endpoints (HTTP-Redirect binding)."""
    md = etree.Element(q(ns.MD, "EntityDescriptor"), nsmap={"md": ns.MD}, entityID=entity_id)
    descriptor = etree.SubElement(
        md,
        q(ns.MD, "SPSSODescriptor"),
        AuthnRequestsSigned="false",
        WantAssertionsSigned="true",
        protocolSupportEnumeration=ns.SAMLP,
    )
    for pem in encryption_certificates:
        key = etree.SubElement(descriptor, q(ns.MD, "KeyDescriptor"), use="encryption")
        info = etree.SubElement(key, q(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
        data = etree.SubElement(info, q(ns.DS, "X509Data"))
        body = "".join(line for line in pem.strip().splitlines() if "CERTIFICATE" not in line)
        etree.SubElement(data, q(ns.DS, "X509Certificate")).text = body
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
