"""Attribute names that IdPs use for the facts claims version 1 needs, in order of preference.

Okta and Google send short names; Entra ID and AD FS send claim-type URIs; Shibboleth and other
eduPerson IdPs send ``urn:oid:`` names (SAML V2.0 X.500/LDAP Attribute Profile).
"""

EMAIL = (
    "email",
    "mail",
    "emailAddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",  # mail
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",  # eduPersonPrincipalName
)
DISPLAY_NAME = (
    "displayName",
    "name",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "urn:oid:2.16.840.1.113730.3.1.241",  # displayName
    "cn",
    "urn:oid:2.5.4.3",  # cn
)
GIVEN_NAME = (
    "firstName",
    "givenName",
    "given_name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    "urn:oid:2.5.4.42",  # givenName
)
FAMILY_NAME = (
    "lastName",
    "surname",
    "sn",
    "family_name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
    "urn:oid:2.5.4.4",  # sn
)
GROUPS = (
    "groups",
    "memberOf",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "http://schemas.xmlsoap.org/claims/Group",  # AD FS "Token-Groups" rule
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",  # isMemberOf
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.7",  # eduPersonEntitlement
)
