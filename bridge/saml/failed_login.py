"""A Response that carries no assertion: the IdP says the login did not happen (SAML Core §3.2.2.2:
a status other than Success, e.g. NoPassive for a request with IsPassive="true").

Nothing is issued for it, whatever it says. It is read only so that the client that asked can be
told why (``prompt=none`` -> ``login_required``); so it must answer one of our requests, be
addressed to our ACS, come from this IdP, and verify when it is signed.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from bridge.errors import SamlRejected
from bridge.saml import ns
from bridge.saml.idp import SamlIdp
from bridge.saml.ns import q
from bridge.saml.signature_policy import check_signature, check_unique_ids
from bridge.saml.verify import verify_signature

STATUS_NO_PASSIVE = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
_SIGNATURE = q(ns.DS, "Signature")


class FailedAtIdp(SamlRejected):
    """Raised by ``receive`` for a Response without an assertion; ``verify_failure`` reads it."""

    def __init__(self, root: etree._Element) -> None:
        super().__init__("saml_status_not_success", "The IdP reported that login failed.")
        self.root = root


@dataclass(frozen=True)
class FailedLogin:
    in_response_to: str
    status: str | None
    # The second-level status code (SAML Core §3.2.2.2), e.g. NoPassive.
    sub_status: str | None

    @property
    def no_passive(self) -> bool:
        return self.sub_status == STATUS_NO_PASSIVE


def has_no_assertion(root: etree._Element) -> bool:
    """A Response with no assertion anywhere and a status other than Success (one that claims
    Success goes on to be refused for its missing assertion)."""
    status = root.find(f"{q(ns.SAMLP, 'Status')}/{q(ns.SAMLP, 'StatusCode')}")
    return (root.tag == q(ns.SAMLP, "Response")
            and status is not None and status.get("Value") != ns.STATUS_SUCCESS
            and next(root.iter(q(ns.SAML, "Assertion"), q(ns.SAML, "EncryptedAssertion")),
                     None) is None)


def verify_failure(failure: FailedAtIdp, *, idp: SamlIdp, acs_url: str,
                   allow_sha1: bool) -> FailedLogin:
    root = failure.root
    status = root.find(f"{q(ns.SAMLP, 'Status')}/{q(ns.SAMLP, 'StatusCode')}")
    value = status.get("Value") if status is not None else None
    sub = status.find(q(ns.SAMLP, "StatusCode")) if status is not None else None
    log = {"status": value, "sub_status": sub.get("Value") if sub is not None else None}
    if root.get("Version") != "2.0" or not root.get("ID"):
        raise SamlRejected("saml_malformed", "A Response without an assertion must report why.",
                           log_detail=log)
    check_unique_ids(root)
    signatures = list(root.iter(_SIGNATURE))
    if len(signatures) > 1 or (signatures and signatures[0].getparent() is not root):
        raise SamlRejected("saml_signature_structure", "A signature appears where none is allowed.")
    if signatures:
        uses_sha1 = check_signature(signatures[0], root, allow_sha1=allow_sha1)
        verify_signature(signatures[0], root, idp.keys, uses_sha1=uses_sha1)
    issuer = root.find(q(ns.SAML, "Issuer"))
    if issuer is not None and (issuer.text or "").strip() != idp.metadata.entity_id:
        raise SamlRejected("saml_issuer_mismatch", "The response comes from another issuer.",
                           log_detail={"got": (issuer.text or "")[:256],
                                       "expected": idp.metadata.entity_id})
    if root.get("Destination") != acs_url:
        raise SamlRejected("saml_destination_mismatch",
                           "The response was addressed to another endpoint.",
                           log_detail={"got": root.get("Destination"), "expected": acs_url})
    in_response_to = root.get("InResponseTo")
    if not in_response_to:
        raise SamlRejected("saml_status_not_success", "The IdP reported that login failed.",
                           log_detail=log)
    return FailedLogin(in_response_to, value, log["sub_status"])
