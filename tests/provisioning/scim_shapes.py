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
