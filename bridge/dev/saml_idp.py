"""A development IdP built on pysaml2: an independent SAML implementation that signs real
assertions with its own throwaway key. Used by the demo (``scripts/dev``) and by the tests.

Never deploy it: it accepts the passwords printed in its source.
"""

from __future__ import annotations

import base64
import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_plus, urlencode

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, class_name
from saml2.attribute_converter import AttributeConverter
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.s_utils import UnknownPrincipal, UnsupportedBinding, deflate_and_base64_encode
from saml2.saml import NAME_FORMAT_BASIC, NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT, NameID
from saml2.samlp import LogoutRequest, Response
from saml2.server import Server
from saml2.sigver import pre_signature_part, signed_instance_factory, verify_redirect_signature
from saml2.xmldsig import DIGEST_SHA256, SIG_ECDSA_SHA256, SIG_RSA_SHA256

from bridge.dev.xmlsec_signer import InProcessSigningBackend


@dataclass(frozen=True)
class User:
    username: str
    password: str
    persistent_id: str
    attributes: dict[str, list[str]]


# The development users. Attribute keys are pysaml2 friendly names; it sends them with their
# urn:oid: names (the SAML V2.0 X.500/LDAP attribute profile), as Shibboleth does.
USERS = {
    "alice": User("alice", "alice", "a1b2c3d4-0001", {
        "mail": ["alice@example.com"],
        "displayName": ["Alice Andersen"],
        "givenName": ["Alice"],
        "sn": ["Andersen"],
        "isMemberOf": ["engineering", "bridge-admins"],
    }),
    "bob": User("bob", "bob", "a1b2c3d4-0002", {
        "mail": ["bob@example.com"],
        "displayName": ["Bob Brown"],
        "givenName": ["Bob"],
        "sn": ["Brown"],
        "isMemberOf": ["sales"],
    }),
}


def make_key_and_cert(directory: Path, common_name: str, *, days: int = 365,
                      key_type: str = "rsa") -> tuple[Path, Path]:
    """A throwaway key (RSA 2048, or EC P-256 for ``key_type="ec"``) and self-signed certificate,
    written once and reused."""
    key_path, cert_path = directory / "idp.key", directory / "idp.crt"
    if key_path.exists() and cert_path.exists():
        return key_path, cert_path
    directory.mkdir(parents=True, exist_ok=True)
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
# The development IdP's second factor is the REFEDS MFA profile (its settings use the
# shibboleth preset of [authn_contexts]); the code to type is printed on its login page.
MFA_CONTEXT = "https://refeds.org/profile/mfa"
SECOND_FACTOR_CODE = "123456"
STATUS_NO_PASSIVE = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"


@dataclass
class PendingRequest:
    request_id: str
    sp_entity_id: str
    acs_url: str
    relay_state: str | None
    force_authn: bool = False
    is_passive: bool = False
    # RequestedAuthnContext's class references, in the SP's order.
    requested_contexts: tuple[str, ...] = ()

    @property
    def wants_mfa(self) -> bool:
        return MFA_CONTEXT in self.requested_contexts


@dataclass(frozen=True)
class ReceivedLogout:
    """A LogoutRequest the IdP accepted (pysaml2 parsed it and, when required, verified it)."""

    message: LogoutRequest
    name_id: str
    session_indexes: list[str]


@dataclass
class DevIdp:
    """pysaml2 IdP server. ``sp_metadata`` is called when the first request arrives, so the IdP
    can start before the bridge whose metadata it needs."""

    base_url: str
    state_dir: Path
    sp_metadata: Callable[[], bytes]
    users: dict[str, User] = field(default_factory=lambda: dict(USERS))
    # "rsa" (RSA-SHA256 signatures) or "ec" (an EC P-256 key, ECDSA-SHA256 signatures).
    key_type: str = "rsa"
    # pysaml2's want_authn_requests_signed: its metadata says WantAuthnRequestsSigned="true", and
    # pysaml2 itself then refuses AuthnRequests and LogoutRequests (and here LogoutResponses) that
    # are not signed by a key in the SP's metadata, on either binding.
    want_authn_requests_signed: bool = False
    # The bindings of its SingleSignOnService and SingleLogoutService endpoints.
    sso_bindings: tuple[str, ...] = (BINDING_HTTP_REDIRECT,)
    slo_bindings: tuple[str, ...] = (BINDING_HTTP_REDIRECT,)
    # How its attributes are named: "uri" (urn:oid: names, as Shibboleth does) or "basic" (the
    # users' attribute keys as they are, email, firstName, groups..., as Okta and Google do).
    attribute_names: str = "uri"
    _server: Server | None = field(default=None, init=False, repr=False)
    _metadata: bytes | None = field(default=None, init=False, repr=False)

    @property
    def entity_id(self) -> str:
        return f"{self.base_url}/metadata"

    def _config(self, sp_metadata: bytes | None) -> IdPConfig:
        key_path, cert_path = make_key_and_cert(self.state_dir, "bridge development IdP",
                                                key_type=self.key_type)
        xmlsec = shutil.which("xmlsec1")
        if xmlsec is None:
            raise RuntimeError("the development IdP verifies and encrypts with xmlsec1: install "
                               "Debian's xmlsec1 (scripts/setup does)")
        config = {
            "entityid": self.entity_id,
            "service": {
                "idp": {
                    "name": "Bridge development IdP",
                    "endpoints": {
                        "single_sign_on_service": [
                            (self.endpoint("sso", b), b) for b in self.sso_bindings],
                        "single_logout_service": [
                            (self.endpoint("slo", b), b) for b in self.slo_bindings],
                    },
                    "policy": {
                        "default": {
                            "lifetime": {"minutes": 5},
                            "attribute_restrictions": None,
                            "name_form": (NAME_FORMAT_BASIC if self.attribute_names == "basic"
                                          else NAME_FORMAT_URI),
                        },
                    },
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    "sign_assertion": True,
                    "sign_response": True,
                    "want_authn_requests_signed": self.want_authn_requests_signed,
                },
            },
            "key_file": str(key_path),
            "cert_file": str(cert_path),
            "xmlsec_binary": xmlsec,
            # pysaml2 signs with RSA only; an "ec" IdP signs through _sign_with_ecdsa.
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
            "metadata": {"inline": [sp_metadata.decode()]} if sp_metadata else {},
            "accepted_time_diff": 60,
        }
        idp_config = IdPConfig()
        idp_config.load(config)
        if self.attribute_names == "basic":
            # pysaml2 names attributes through its converters: one that keeps every name.
            names = {key: key for user in self.users.values() for key in user.attributes}
            converter = AttributeConverter(NAME_FORMAT_BASIC)
            converter.from_dict({"identifier": NAME_FORMAT_BASIC, "to": names, "fro": names})
            idp_config.attribute_converters = [converter]
        return idp_config

    def endpoint(self, service: str, binding: str) -> str:
        """The URL of its ``service`` ("sso" or "slo") for ``binding``."""
        return f"{self.base_url}/{service}/{'post' if binding == BINDING_HTTP_POST else 'redirect'}"

    def metadata_xml(self) -> bytes:
        if self._metadata is None:
            document = create_metadata_string(None, config=self._config(None), valid=None,
                                              sign=False)
            self._metadata = document.rstrip() + b"\n"
        return self._metadata

    def write_metadata(self, directory: Path, slug: str = "dev") -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{slug}.xml"
        path.write_bytes(self.metadata_xml())
        # alice is in bridge-admins: in the demo she may also use the admin pages.
        (directory / f"{slug}.toml").write_text(
            'display_name = "Development IdP"\nemail_domains = ["example.com"]\n'
            '[authn_contexts]\npreset = "shibboleth"\n'
            '[[mapping.roles]]\nexact = "bridge-admins"\nrole = "bridge-admin"\n'
            '[[mapping.roles]]\nexact = "engineering"\nrole = "engineer"\n'
        )
        return path

    def server(self) -> Server:
        if self._server is None:
            server = Server(config=self._config(self.sp_metadata()))
            # Signs in-process with libxmlsec1; verifies and encrypts through xmlsec1 as before.
            server.sec.crypto = InProcessSigningBackend(server.sec.crypto.xmlsec)
            self._server = server
        return self._server

    def reload_sp_metadata(self) -> None:
        """Read the SP's metadata again (as an IdP refreshes it), e.g. to learn a new key."""
        self._server = None

    def parse_request(self, saml_request: str, relay_state: str | None, *,
                      binding: str = BINDING_HTTP_REDIRECT, sigalg: str | None = None,
                      signature: str | None = None) -> PendingRequest:
        """An AuthnRequest as it arrived on ``binding`` (for HTTP-Redirect, with the query's
        SigAlg and Signature). pysaml2 verifies it: with ``want_authn_requests_signed`` an
        unsigned or wrongly signed one raises (saml2.sigver.SignatureError or a subclass)."""
        server = self.server()
        parsed = server.parse_authn_request(saml_request, binding, relay_state=relay_state,
                                            sigalg=sigalg, signature=signature)
        message = parsed.message
        sp_entity_id = message.issuer.text
        try:
            acs_url = message.assertion_consumer_service_url
            if acs_url is None:
                acs_url, _ = server.pick_binding("assertion_consumer_service", [BINDING_HTTP_POST],
                                                 entity_id=sp_entity_id)
        except (UnknownPrincipal, UnsupportedBinding) as exc:
            raise ValueError(f"unknown SP {sp_entity_id}: {exc}") from exc
        requested = message.requested_authn_context
        contexts = tuple(ref.text for ref in requested.authn_context_class_ref) if requested else ()
        return PendingRequest(message.id, sp_entity_id, acs_url, relay_state,
                              force_authn=message.force_authn == "true",
                              is_passive=message.is_passive == "true",
                              requested_contexts=contexts)

    def response_for(self, pending: PendingRequest | None, user: User, *,
                     acs_url: str | None = None, sp_entity_id: str | None = None,
                     sign_response: bool = True, sign_assertion: bool = True,
                     class_ref: str | None = PASSWORD_CONTEXT,
                     authn_instant: int | None = None) -> str:
        """A signed Response (base64) for ``user``; ``pending=None`` makes it unsolicited.
        ``class_ref`` is the AuthnContextClassRef (None: an AuthnStatement without one) and
        ``authn_instant`` the AuthnInstant (default: now)."""
        authn: dict[str, object] = {"authn_auth": self.entity_id}
        if class_ref is not None:
            authn["class_ref"] = class_ref
        if authn_instant is not None:
            authn["authn_instant"] = authn_instant
        server = self.server()
        ec_key = self.key_type == "ec"
        response = server.create_authn_response(
            identity=user.attributes,
            in_response_to=pending.request_id if pending else None,
            destination=acs_url or (pending.acs_url if pending else ""),
            sp_entity_id=sp_entity_id or (pending.sp_entity_id if pending else ""),
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=user.persistent_id),
            authn=authn,
            sign_response=sign_response and not ec_key,
            sign_assertion=sign_assertion and not ec_key,
            sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
        )
        if ec_key:
            response = self._sign_with_ecdsa(response, sign_response=sign_response,
                                             sign_assertion=sign_assertion)
        return base64.b64encode(str(response).encode("utf-8")).decode("ascii")

    def failure_for(self, pending: PendingRequest, status: str = STATUS_NO_PASSIVE, *,
                    sign: bool = True) -> str:
        """A Response (base64) that reports failure with second-level ``status`` and carries
        no assertion, as an IdP answers a passive request it cannot meet."""
        response = self.server().create_error_response(
            pending.request_id, pending.acs_url, (status, "no login without interaction"),
            sign=sign and self.key_type != "ec", sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256)
        return base64.b64encode(str(response).encode("utf-8")).decode("ascii")

    def _sign_with_ecdsa(self, response: Response, *, sign_response: bool,
                         sign_assertion: bool) -> str:
        """pysaml2 refuses ECDSA as a signing algorithm, though its xmlsec1 backend signs with
        any key: put the ECDSA-SHA256 templates in place and let libxmlsec1 sign (assertion first,
        then the Response that contains it)."""
        to_sign = []
        if sign_assertion:
            response.assertion.signature = pre_signature_part(
                response.assertion.id, sign_alg=SIG_ECDSA_SHA256, digest_alg=DIGEST_SHA256)
            to_sign.append((class_name(response.assertion), response.assertion.id))
        if sign_response:
            response.signature = pre_signature_part(response.id, sign_alg=SIG_ECDSA_SHA256,
                                                    digest_alg=DIGEST_SHA256)
            to_sign.append((class_name(response), response.id))
        return str(signed_instance_factory(response, self.server().sec, to_sign))


    def parse_logout(self, saml_request: str) -> tuple[str, list[str]]:
        """(NameID, SessionIndexes) of a LogoutRequest sent with the HTTP-Redirect binding."""
        received = self.receive_logout_request(saml_request)
        return received.name_id, received.session_indexes

    def receive_logout_request(self, saml_request: str, *, binding: str = BINDING_HTTP_REDIRECT,
                               relay_state: str | None = None, sigalg: str | None = None,
                               signature: str | None = None) -> ReceivedLogout:
        """An SP's LogoutRequest as it arrived on ``binding``; pysaml2 verifies its signature
        when ``want_authn_requests_signed`` (it applies that setting to every request)."""
        message = self.server().parse_logout_request(
            saml_request, binding, relay_state=relay_state, sigalg=sigalg,
            signature=signature).message
        return ReceivedLogout(message, message.name_id.text,
                              [index.text for index in message.session_index])

    def receive_logout_response(self, saml_response: str, *, binding: str = BINDING_HTTP_REDIRECT,
                                relay_state: str | None = None, sigalg: str | None = None,
                                signature: str | None = None) -> str:
        """An SP's LogoutResponse as it arrived on ``binding``: its status code. pysaml2 checks
        it (destination, issuer, time) and, when ``want_authn_requests_signed``, its signature:
        on the query for HTTP-Redirect (saml2.sigver.verify_redirect_signature, with the keys of
        the SP's metadata), inside the XML for HTTP-POST. Raises ValueError when unsigned or
        wrongly signed."""
        server = self.server()
        if self.want_authn_requests_signed:
            if binding == BINDING_HTTP_REDIRECT:
                issuer = server.parse_logout_request_response(saml_response, binding).issuer()
                if sigalg is None or signature is None:
                    raise ValueError("the LogoutResponse is not signed")
                query = {"SAMLResponse": saml_response, "SigAlg": sigalg, "Signature": signature}
                if relay_state is not None:
                    query["RelayState"] = relay_state
                certs = server.metadata.certs(issuer, "any", "signing")
                if not any(verify_redirect_signature(query, server.sec.sec_backend, cert)
                           for _, cert in certs):
                    raise ValueError("the LogoutResponse's signature does not verify")
            else:
                xml = base64.b64decode(saml_response).decode("utf-8")
                try:
                    server.sec.correctly_signed_logout_response(xml, must=True)
                except Exception as exc:  # pysaml2 raises several unrelated types
                    raise ValueError(f"the LogoutResponse's signature: {exc}") from exc
        response = server.parse_logout_request_response(saml_response, binding)
        if response is None:
            raise ValueError("not a valid LogoutResponse")
        return str(response.response.status.status_code.value)

    def logout_response_url(self, request: LogoutRequest) -> str:
        """Its (signed) LogoutResponse to an SP's LogoutRequest, over HTTP-Redirect to the SP's
        Single Logout service as the SP's metadata names it."""
        server = self.server()
        response = server.create_logout_response(request, [BINDING_HTTP_REDIRECT], sign=False)
        binding = server.apply_binding(BINDING_HTTP_REDIRECT, str(response), response.destination,
                                       relay_state="", response=True, sign=True,
                                       sigalg=SIG_RSA_SHA256)
        return str(dict(binding["headers"])["Location"])

    def logout_request_url(self, destination: str, sp_entity_id: str, name_id: str,
                           session_indexes: list[str], *,
                           edit: Callable[[LogoutRequest], object] | None = None) -> str:
        """A LogoutRequest to the SP's Single Logout URL, signed for the HTTP-Redirect binding.
        ``edit`` changes the message before it is signed (an IdP that really sent that)."""
        server = self.server()
        _, request = server.create_logout_request(
            destination, sp_entity_id,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=name_id),
            session_indexes=session_indexes,
            # SAML Bindings §3.4.4.1: with this binding the signature is in the query only.
            sign=False)
        if edit is not None:
            edit(request)
        if self.key_type == "ec":
            return self._ecdsa_redirect_url(destination, str(request))
        binding = server.apply_binding(BINDING_HTTP_REDIRECT, str(request), destination,
                                       relay_state="", sign=True, sigalg=SIG_RSA_SHA256)
        return str(dict(binding["headers"])["Location"])

    def _ecdsa_redirect_url(self, destination: str, xml: str) -> str:
        """SAML Bindings §3.4.4.1 signed by libxmlsec1, as python3-saml signs its own redirects:
        pysaml2 signs this binding with RSA only. The signature value is what XML-DSig defines for
        ECDSA (RFC 4050 / XML-DSig 1.1 §6.4.3: r and s concatenated), not DER."""
        key_path, _ = make_key_and_cert(self.state_dir, "bridge development IdP",
                                        key_type=self.key_type)
        signed = urlencode({"SAMLRequest": deflate_and_base64_encode(xml),
                            "SigAlg": SIG_ECDSA_SHA256})
        context = xmlsec.SignatureContext()
        context.key = xmlsec.Key.from_file(str(key_path), xmlsec.constants.KeyDataFormatPem)
        signature = context.sign_binary(signed.encode("ascii"),
                                        xmlsec.constants.TransformEcdsaSha256)
        separator = "&" if "?" in destination else "?"
        return (f"{destination}{separator}{signed}"
                f"&Signature={quote_plus(base64.b64encode(signature).decode('ascii'))}")
