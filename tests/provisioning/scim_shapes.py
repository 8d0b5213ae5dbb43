"""Requests as Okta's and Entra ID's SCIM 2.0 provisioning clients send them (the shapes of the
vendors' published provisioning traffic: Okta's capitalised nothing and sends the whole user on
PUT; Entra ID writes "Replace" and booleans as the strings "True"/"False", and filters on
userName before every create)."""

from __future__ import annotations

from typing import Any

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
OKTA_HEADERS = {"Accept": "application/scim+json", "Content-Type": "application/scim+json",
                "User-Agent": "Okta SCIM Client 1.0.0"}
ENTRA_HEADERS = {"Accept": "application/scim+json", "Content-Type": "application/scim+json",
                 "User-Agent": "Microsoft.Identity.Provisioning"}


def okta_user(user_name: str, external_id: str, *, active: bool = True) -> dict[str, Any]:
    return {"schemas": [CORE], "userName": user_name,
            "name": {"givenName": "Test", "familyName": "User"},
            "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
            "displayName": "Test User", "locale": "en-US", "externalId": external_id,
            "groups": [], "password": "1mz050nq", "active": active}


OKTA_DEACTIVATE = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
OKTA_REACTIVATE = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": True}}]}


def entra_user(user_name: str, external_id: str) -> dict[str, Any]:
    return {"schemas": [CORE, ENTERPRISE], "externalId": external_id, "userName": user_name,
            "active": True,
            "emails": [{"primary": True, "type": "work",
                        "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName",
                     "givenName": "givenName"},
            "roles": [],
            ENTERPRISE: {"department": "Sales", "employeeNumber": "1234"}}


ENTRA_UPDATE = {"schemas": [PATCH], "Operations": [
    {"op": "Add", "path": 'emails[type eq "work"].value', "value": "updatedEmail@microsoft.com"},
    {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
    {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Marketing"}]}
ENTRA_DISABLE = {"schemas": [PATCH], "Operations": [
    {"op": "Replace", "path": "active", "value": "False"}]}
ENTRA_ENABLE = {"schemas": [PATCH], "Operations": [
    {"op": "Replace", "path": "active", "value": "True"}]}

# Entra ID's profile updates for a user with a manager and a mobile number it never had: the
# manager as a bare id, and an "Add" through a filter that matches no entry yet.
ENTRA_MANAGER_AND_PHONE = {"schemas": [PATCH], "Operations": [
    {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "2819c223-7f76-453a-919d-413861904646"},
    {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555 0100"}]}
# With the aadOptscim062020 flag, Entra ID writes the operation and the boolean as RFC 7644 does.
ENTRA_DISABLE_FLAGGED = {"schemas": [PATCH], "Operations": [
    {"op": "replace", "path": "active", "value": False}]}
OKTA_CUSTOM_SCHEMA = "urn:okta:bridge:1.0:user:custom"


def okta_user_with_custom_attributes(user_name: str, external_id: str) -> dict[str, Any]:
    """Okta sends the attributes an admin added to the app's profile under a schema of its own."""
    user = okta_user(user_name, external_id)
    return {**user, "schemas": [CORE, OKTA_CUSTOM_SCHEMA],
            OKTA_CUSTOM_SCHEMA: {"costCenter": "4711"}}
