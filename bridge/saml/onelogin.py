"""The one wrapper around python3-saml (``onelogin.saml2``).

python3-saml is the library-level validator: strict mode, every security option set explicitly
below. It reports problems as booleans, error lists and a mix of exception types; this module turns
all of them into ``SamlRejected``. Four adjustments, each scoped to this module:

* its XML Schema, XPath expressions and the IdP's certificates are compiled or loaded once per
  thread instead of on every call (measured by scripts/bench: docs/performance.md);
* the common form of its SAML times is parsed without ``strptime``, to the same result;
* its clock reads our injected clock (through a context variable set only while we validate),
  shifted back by the IdP's skew so its expiry checks honour the configured skew;
* its ``Conditions`` time check is replaced by one using that clock and skew in both directions
  (it otherwise uses a fixed five-minute drift).

Everything it leaves to the application (exact URLs, replay, request binding, algorithm
allow-lists, reading only signed content) is done in ``bridge.saml.response``.
"""

from __future__ import annotations

import calendar
import contextvars
import datetime as dt
import os
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import xmlsec
from lxml import etree
from onelogin.saml2 import utils as onelogin_utils
from onelogin.saml2 import xml_utils as onelogin_xml_utils
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.errors import OneLogin_Saml2_ValidationError as VE
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from bridge.errors import SamlRejected
from bridge.saml import ns
from bridge.saml.verify import verification_key
from bridge.saml.xml_io import ensure_this_thread

# --- clock -------------------------------------------------------------------------------------

_validation_now: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "bridge_saml_validation_now", default=None
)
_library_now = OneLogin_Saml2_Utils.now


def _now() -> int:
    at = _validation_now.get()
    return _library_now() if at is None else int(at)


OneLogin_Saml2_Utils.now = staticmethod(_now)

# --- SAML times, parsed without strptime ------------------------------------------------------
# The library parses each of a response's four or five times with ``datetime.strptime`` (about
# 7 µs each). The common form (ASCII digits, optional fraction, "Z") is read here with the same
# result; everything else is the library's to parse or refuse, as before.
_SAML_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
                        r"(?:\.[0-9]+)?Z\Z")
_library_parse_time = OneLogin_Saml2_Utils.parse_SAML_to_time


def _parse_time(timestr: Any) -> int:
    match = _SAML_TIME.match(timestr) if isinstance(timestr, str) else None
    if match is not None:
        try:
            year, month, day, hour, minute, second = map(int, match.groups())
            moment = dt.datetime(year, month, day, hour, minute, second)  # noqa: DTZ001 - "Z"
        except ValueError:  # no such day, hour 24, a leap second: the library decides
            pass
        else:
            return calendar.timegm(moment.utctimetuple())
    return int(_library_parse_time(timestr))


OneLogin_Saml2_Utils.parse_SAML_to_time = staticmethod(_parse_time)

# --- schema, compiled once ---------------------------------------------------------------------

_schemas = threading.local()  # per thread: compiled schemas and XPath expressions
_SCHEMA_DIR = os.path.join(os.path.dirname(onelogin_xml_utils.__file__), "schemas")
# One compilation at a time in a process: a worker's threads first validate at the same moment
# under load, and one such compilation failed once under gunicorn ("Document is not valid XML
# Schema", nothing in its error log); it costs nothing after each thread's first login.
_COMPILING = threading.Lock()


def _validate_xml(xml: Any, schema: str, debug: bool = False) -> Any:
    cache = getattr(_schemas, "compiled", None)
    if cache is None:
        cache = _schemas.compiled = {}
    compiled = cache.get(schema)
    if compiled is None:
        with _COMPILING, open(os.path.join(_SCHEMA_DIR, schema), "rb") as handle:
            compiled = cache[schema] = etree.XMLSchema(etree.parse(handle))
    document = OneLogin_Saml2_XML.to_etree(xml)
    if not compiled.validate(document):
        return "invalid_xml"
    return document


OneLogin_Saml2_XML.validate_xml = staticmethod(_validate_xml)

# --- XPath, compiled once ----------------------------------------------------------------------
# python3-saml compiles each of its ~40 XPath expressions on every call (`element.xpath(str)`), a
# tenth of a login. The expressions are constants of the library (values travel as the `$tagid`
# variable), so compiled ones are kept per thread (lxml serialises evaluations of one XPath
# object); the bound keeps an unexpected dynamic expression from growing the cache.
_XPATH_CACHE_LIMIT = 256


def _query(dom: Any, query: str, context: Any = None, tagid: str | None = None) -> Any:
    cache = getattr(_schemas, "xpath", None)
    if cache is None or len(cache) > _XPATH_CACHE_LIMIT:
        cache = _schemas.xpath = {}
    compiled = cache.get(query)
    if compiled is None:
        compiled = cache[query] = etree.XPath(query, namespaces=C.NSMAP)
    source = dom if context is None else context
    return compiled(source) if tagid is None else compiled(source, tagid=tagid)


OneLogin_Saml2_XML.query = staticmethod(_query)

# --- certificates, loaded once -------------------------------------------------------------------
# python3-saml loads the IdP's certificate into a fresh xmlsec key for every signature it checks
# (about 40 µs each, two per login). A certificate always gives the same public key, and a
# signature context or keys manager takes its own copy of a key it is given, so each thread keeps
# the keys it loaded, a plain RSA or EC key bare (``verify.verification_key``: cheaper to copy). The
# library loads certificates only to verify signatures on the paths the bridge calls (it encrypts
# no NameID: ``nameIdEncrypted`` is off). Private keys (PEM) are loaded as the library does: it
# may add certificates to those.
_KEY_CACHE_LIMIT = 64


class _Keys:
    """Stands in for ``xmlsec.Key`` inside python3-saml: ``from_memory`` of a certificate comes
    from the thread's cache; everything else is xmlsec's own."""

    def __getattr__(self, name: str) -> Any:
        return getattr(xmlsec.Key, name)

    @staticmethod
    def from_memory(data: Any, format: int, password: Any = None) -> xmlsec.Key:  # noqa: A002
        if format != xmlsec.constants.KeyDataFormatCertPem or password is not None:
            return xmlsec.Key.from_memory(data, format, password)
        cache = getattr(_schemas, "keys", None)
        if cache is None or len(cache) > _KEY_CACHE_LIMIT:
            cache = _schemas.keys = {}
        key = cache.get(data)
        if key is None:
            key = cache[data] = verification_key(data)
        return key


class _Xmlsec:
    """The ``xmlsec`` module as python3-saml's utilities see it: itself, but with ``_Keys``."""

    Key = _Keys()

    def __getattr__(self, name: str) -> Any:
        return getattr(xmlsec, name)


onelogin_utils.xmlsec = _Xmlsec()


class _Response(OneLogin_Saml2_Response):
    skew_seconds: float = 0.0

    def validate_timestamps(self, raise_exceptions: bool = False) -> bool:  # noqa: ARG002
        # SAML Core §2.5.1.2: NotBefore <= now < NotOnOrAfter, each widened by the skew.
        # _now() is already shifted back by the skew (for the library's expiry checks), so
        # the real "now" is _now() + skew.
        now = _now() + self.skew_seconds
        for conditions in self._query_assertion("/saml:Conditions"):
            not_before = conditions.get("NotBefore")
            not_on_or_after = conditions.get("NotOnOrAfter")
            parse = OneLogin_Saml2_Utils.parse_SAML_to_time
            if not_before and parse(not_before) > now + self.skew_seconds:
                raise VE("not yet valid", VE.ASSERTION_TOO_EARLY)
            if not_on_or_after and parse(not_on_or_after) <= now - self.skew_seconds:
                raise VE("expired", VE.ASSERTION_EXPIRED)
        return True


# --- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OneLoginParams:
    sp_entity_id: str
    acs_url: str
    idp_entity_id: str
    idp_sso_url: str
    idp_certificates: tuple[str, ...]
    allow_sha1: bool
    sp_private_key: str = ""
    sp_certificate: str = ""
    idp_slo_url: str | None = None


def build_settings(params: OneLoginParams) -> OneLogin_Saml2_Settings:
    """python3-saml settings with every security option explicit."""
    certs = list(params.idp_certificates)
    settings = {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": params.sp_entity_id,
            "assertionConsumerService": {"url": params.acs_url, "binding": C.BINDING_HTTP_POST},
            "NameIDFormat": C.NAMEID_UNSPECIFIED,
            # Used only to decrypt EncryptedAssertions. python3-saml never signs for us: our
            # messages are built and signed in bridge.saml.sp and bridge.saml.signing.
            "x509cert": params.sp_certificate,
            "privateKey": params.sp_private_key,
        },
        "idp": {
            "entityId": params.idp_entity_id,
            "singleSignOnService": {"url": params.idp_sso_url, "binding": C.BINDING_HTTP_REDIRECT},
            **({"singleLogoutService": {"url": params.idp_slo_url,
                                        "binding": C.BINDING_HTTP_REDIRECT}}
               if params.idp_slo_url else {}),
            "x509certMulti": {"signing": certs},
            # Never read: the signing list above decides. Without it the library looks for an
            # idp.crt file in its own directory on every response it checks.
            "x509cert": certs[0] if certs else "",
        },
        "security": {
            "nameIdEncrypted": False,
            "authnRequestsSigned": False,
            "logoutRequestSigned": False,
            "logoutResponseSigned": False,
            "signMetadata": False,
            "wantMessagesSigned": False,
            "wantAssertionsSigned": True,
            "wantNameId": True,
            "wantNameIdEncrypted": False,
            "wantAssertionsEncrypted": False,
            "wantAttributeStatement": False,
            "allowSingleLabelDomains": False,
            "signatureAlgorithm": C.RSA_SHA256,
            "digestAlgorithm": C.SHA256,
            "rejectDeprecatedAlgorithm": not params.allow_sha1,
            "allowRepeatAttributeName": False,
            "requestedAuthnContext": False,
            "failOnAuthnContextMismatch": False,
            "metadataValidUntil": None,
            "metadataCacheDuration": None,
        },
    }
    return OneLogin_Saml2_Settings(settings, sp_validation_only=False)


# --- validation --------------------------------------------------------------------------------

# python3-saml error codes -> our stable codes. Most of these are caught earlier by our own,
# stricter checks; this table keeps any that slip through precise.
_CODES = {
    VE.UNSUPPORTED_SAML_VERSION: "saml_malformed",
    VE.MISSING_ID: "saml_malformed",
    VE.INVALID_XML_FORMAT: "saml_malformed",
    VE.STATUS_CODE_IS_NOT_SUCCESS: "saml_status_not_success",
    VE.WRONG_NUMBER_OF_ASSERTIONS: "saml_assertion_count",
    VE.WRONG_INRESPONSETO: "saml_request_mismatch",
    VE.MISSING_CONDITIONS: "saml_malformed",
    VE.ASSERTION_TOO_EARLY: "saml_not_yet_valid",
    VE.ASSERTION_EXPIRED: "saml_expired",
    VE.WRONG_NUMBER_OF_AUTHSTATEMENTS: "saml_malformed",
    VE.WRONG_DESTINATION: "saml_destination_mismatch",
    VE.EMPTY_DESTINATION: "saml_destination_mismatch",
    VE.WRONG_AUDIENCE: "saml_audience_mismatch",
    VE.WRONG_ISSUER: "saml_issuer_mismatch",
    VE.ISSUER_MULTIPLE_IN_RESPONSE: "saml_issuer_mismatch",
    VE.ISSUER_NOT_FOUND_IN_ASSERTION: "saml_issuer_mismatch",
    VE.SESSION_EXPIRED: "saml_session_expired",
    VE.WRONG_SUBJECTCONFIRMATION: "saml_subject_confirmation",
    VE.NO_SIGNED_ASSERTION: "saml_signature_missing",
    VE.NO_SIGNATURE_FOUND: "saml_signature_missing",
    VE.INVALID_SIGNATURE: "saml_signature_invalid",
    VE.DEPRECATED_SIGNATURE_METHOD: "saml_signature_algorithm",
    VE.DEPRECATED_DIGEST_METHOD: "saml_signature_algorithm",
    VE.NO_NAMEID: "saml_subject_missing",
    VE.EMPTY_NAMEID: "saml_subject_missing",
    VE.DUPLICATED_ATTRIBUTE_NAME_FOUND: "saml_attribute_invalid",
}


def strict_validate(
    settings: OneLogin_Saml2_Settings,
    saml_response_b64: str,
    *,
    acs_url: str,
    request_id: str | None,
    now: float,
    skew_seconds: float,
) -> None:
    """Run python3-saml's strict validation; raise ``SamlRejected`` on any failure."""
    parts = urlsplit(acs_url)
    # Built from our configured ACS URL, never from the Host header of the request.
    request_data = {
        "https": "on" if parts.scheme == "https" else "off",
        "http_host": parts.netloc,
        "script_name": parts.path,
    }
    ensure_this_thread()
    token = _validation_now.set(now - skew_seconds)
    try:
        response = _Response(settings, saml_response_b64)
        response.skew_seconds = skew_seconds
        response.is_valid(request_data, request_id, raise_exceptions=True)
        # Reading the NameID runs its strict NameID checks (presence, SPNameQualifier).
        response.get_nameid_data()
    except VE as exc:
        raise SamlRejected(
            _CODES.get(exc.code, "saml_invalid"),
            "The SAML response failed validation.",
            log_detail={"python3_saml": str(exc)[:300], "python3_saml_code": exc.code},
        ) from None
    except Exception as exc:  # noqa: BLE001 - xmlsec.Error and whatever else it lets through
        # Our own pipeline has accepted the response by now; whatever the second opinion trips
        # over is a refusal, never a 500.
        raise SamlRejected(
            "saml_malformed", "The SAML response could not be processed.",
            log_detail={"python3_saml": f"{type(exc).__name__}: {str(exc)[:300]}"},
        ) from None
    finally:
        _validation_now.reset(token)


__all__ = ["OneLoginParams", "build_settings", "strict_validate", "ns"]
