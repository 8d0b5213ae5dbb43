"""Vendor presets: how each IdP family names its attributes, what it signs by default, and what an
admin has to do on the IdP side. Shared by attribute mapping and IdP onboarding.

``$nameid`` as a source means the assertion's NameID value (Google sends the e-mail there).
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.claims.mapping import NAMEID_SOURCE as NAMEID
from bridge.claims.mapping import ClaimMapping, ClaimRule

_MS = "http://schemas.microsoft.com"
_XMLSOAP = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"
ENTRA_OBJECT_ID = f"{_MS}/identity/claims/objectidentifier"
ENTRA_TENANT_ID = f"{_MS}/identity/claims/tenantid"
ENTRA_GROUPS = f"{_MS}/ws/2008/06/identity/claims/groups"
ADFS_GROUPS = "http://schemas.xmlsoap.org/claims/Group"
ADFS_ROLE = f"{_MS}/ws/2008/06/identity/claims/role"


@dataclass(frozen=True)
class Preset:
    name: str
    display_name: str
    mapping: ClaimMapping
    subject_attribute: str | None
    signs: str
    instructions: tuple[str, ...]


def _rule(*sources: str) -> ClaimRule:
    return ClaimRule(sources=sources)

# The default recognizes every vendor's names (the behaviour of claims version 1).
DEFAULT = ClaimMapping(claims={
    "email": _rule("email", "mail", "emailAddress", f"{_XMLSOAP}/emailaddress",
                   "urn:oid:0.9.2342.19200300.100.1.3", f"{_XMLSOAP}/upn",
                   "urn:oid:1.3.6.1.4.1.5923.1.1.1.6"),
    "name": _rule("displayName", "name", f"{_MS}/identity/claims/displayname",
                  "urn:oid:2.16.840.1.113730.3.1.241", "cn", "urn:oid:2.5.4.3"),
    "given_name": _rule("firstName", "givenName", "given_name", f"{_XMLSOAP}/givenname",
                        "urn:oid:2.5.4.42"),
    "family_name": _rule("lastName", "surname", "sn", "family_name", f"{_XMLSOAP}/surname",
                         "urn:oid:2.5.4.4"),
    "groups": _rule("groups", "memberOf", ENTRA_GROUPS, ADFS_GROUPS,
                    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1", "urn:oid:1.3.6.1.4.1.5923.1.1.1.7"),
    "tenant": _rule(ENTRA_TENANT_ID, "urn:oid:1.3.6.1.4.1.25178.1.2.9"),
})

PRESETS: dict[str, Preset] = {
    "adfs": Preset(
        "adfs", "Microsoft AD FS",
        ClaimMapping(claims={
            "email": _rule(f"{_XMLSOAP}/emailaddress", f"{_XMLSOAP}/upn"),
            "name": _rule(f"{_XMLSOAP}/name", f"{_MS}/identity/claims/displayname"),
            "given_name": _rule(f"{_XMLSOAP}/givenname"),
            "family_name": _rule(f"{_XMLSOAP}/surname"),
            "groups": _rule(ADFS_GROUPS, ADFS_ROLE),
        }),
        subject_attribute=None,
        signs="the assertion (Signing: 'Sign assertion only' by default); use SHA-256",
        instructions=(
            "AD FS Management > Relying Party Trusts > Add Relying Party Trust > Claims aware > "
            "Import data about the relying party from a file: the SP metadata downloaded here.",
            "Edit the trust's Advanced tab: Secure hash algorithm SHA-256.",
            "Edit Claim Issuance Policy > Add Rule > Send LDAP Attributes as Claims: "
            "E-Mail-Addresses -> E-Mail Address, Display-Name -> Name, Given-Name -> Given Name, "
            "Surname -> Surname, Token-Groups - Unqualified Names -> Group.",
            "Add Rule > Transform an Incoming Claim: UPN (or objectGUID) -> Name ID, "
            "format Persistent Identifier, so the subject survives e-mail changes.",
        ),
    ),
    "entra": Preset(
        "entra", "Microsoft Entra ID",
        ClaimMapping(claims={
            "email": _rule(f"{_XMLSOAP}/emailaddress", f"{_XMLSOAP}/name"),
            "name": _rule(f"{_MS}/identity/claims/displayname"),
            "given_name": _rule(f"{_XMLSOAP}/givenname"),
            "family_name": _rule(f"{_XMLSOAP}/surname"),
            "groups": _rule(ENTRA_GROUPS),
            "tenant": _rule(ENTRA_TENANT_ID),
        }),
        subject_attribute=ENTRA_OBJECT_ID,
        signs="the assertion by default (Signing option 'Sign SAML assertion'); SHA-256",
        instructions=(
            "Entra admin center > Enterprise applications > New application > Create your own "
            "application (non-gallery) > Single sign-on > SAML > Upload metadata file: the SP "
            "metadata downloaded here.",
            "Attributes & Claims > Add a group claim: 'Groups assigned to the application' keeps "
            "the list short; Entra sends group object IDs (GUIDs): map them to names with "
            "group_names in this IdP's mapping.",
            "Users with more than 150 groups get no groups claim but a groups.link overage "
            "claim; assign only the groups the application needs.",
            "The subject is the user's object ID (objectidentifier claim, sent by default), "
            "never the UPN, which changes when people do.",
        ),
    ),
    "okta": Preset(
        "okta", "Okta",
        ClaimMapping(claims={
            "email": _rule("email", NAMEID),
            "name": _rule("displayName", "name"),
            "given_name": _rule("firstName"),
            "family_name": _rule("lastName"),
            "groups": _rule("groups"),
        }),
        subject_attribute=None,
        signs="the assertion (Assertion Signature: Signed) and, optionally, the response",
        instructions=(
            "Okta Admin Console > Applications > Create App Integration > SAML 2.0.",
            "Single sign-on URL: the ACS URL shown here (tick 'Use this for Recipient URL and "
            "Destination URL'); Audience URI: our SP entity ID.",
            "Name ID format: Persistent; Application username: Okta username.",
            "Attribute statements: email = user.email, firstName = user.firstName, lastName = "
            "user.lastName; group attribute statement groups, filter matching the app's groups.",
        ),
    ),
    "google": Preset(
        "google", "Google Workspace",
        ClaimMapping(claims={
            "email": _rule(NAMEID, "email"),
            "given_name": _rule("first_name", "firstName"),
            "family_name": _rule("last_name", "lastName"),
            "groups": _rule("groups"),
        }, email_verified=True),
        subject_attribute=None,
        signs="the response (and the assertion inside it)",
        instructions=(
            "Google Admin console > Apps > Web and mobile apps > Add app > Add custom SAML app.",
            "ACS URL and Entity ID from this page; Name ID format EMAIL, Name ID Basic "
            "Information > Primary email.",
            "Attribute mapping: First name -> first_name, Last name -> last_name; Group "
            "membership -> groups (only the groups the app needs).",
            "Google uses the primary e-mail as NameID: if people can be renamed, set "
            "subject_attribute to an attribute carrying an employee ID instead.",
        ),
    ),
    "shibboleth": Preset(
        "shibboleth", "Shibboleth / eduPerson (urn:oid: names)",
        ClaimMapping(claims={
            "email": _rule("urn:oid:0.9.2342.19200300.100.1.3"),
            "name": _rule("urn:oid:2.16.840.1.113730.3.1.241", "urn:oid:2.5.4.3"),
            "given_name": _rule("urn:oid:2.5.4.42"),
            "family_name": _rule("urn:oid:2.5.4.4"),
            "groups": _rule("urn:oid:1.3.6.1.4.1.5923.1.5.1.1", "urn:oid:1.3.6.1.4.1.5923.1.1.1.7"),
            "tenant": _rule("urn:oid:1.3.6.1.4.1.25178.1.2.9"),
        }),
        subject_attribute=None,
        signs="the assertion; encrypts it by default (AES-GCM, RSA-OAEP) to our SP certificate",
        instructions=(
            "Add our SP metadata to the IdP's metadata providers (metadata-providers.xml).",
            "Release mail, displayName, givenName, sn, isMemberOf (or eduPersonEntitlement) and "
            "a persistent NameID (or samlPairwiseID, then set subject_attribute to "
            "urn:oasis:names:tc:SAML:attribute:pairwise-id) in attribute-filter.xml.",
        ),
    ),
    "keycloak": Preset(
        "keycloak", "Keycloak",
        ClaimMapping(claims={
            "email": _rule("email", "urn:oid:1.2.840.113549.1.9.1"),
            "name": _rule("name", "displayName"),
            "given_name": _rule("firstName", "urn:oid:2.5.4.42"),
            "family_name": _rule("lastName", "urn:oid:2.5.4.4"),
            "groups": _rule("groups", "member", "Role"),
        }),
        subject_attribute=None,
        signs="documents and assertions (client settings 'Sign documents', 'Sign assertions')",
        instructions=(
            "Clients > Import client: the SP metadata downloaded here (client type SAML).",
            "Settings: Name ID format persistent; Keys: 'Sign assertions' on, algorithm RS256.",
            "Client scopes > dedicated scope > Add mapper: User Property email, firstName, "
            "lastName; Group list mapper named groups (full path off).",
        ),
    ),
}

MAPPING_PRESETS: dict[str, ClaimMapping] = {
    "default": DEFAULT,
    **{name: preset.mapping for name, preset in PRESETS.items()},
}
