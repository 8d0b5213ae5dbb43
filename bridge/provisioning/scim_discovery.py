"""The SCIM discovery documents of an IdP's endpoint (RFC 7644 §4): what it supports (one
resource type, Users with the enterprise extension; PATCH and filters; no bulk, sorting, ETags or
password changes), built from scim2-models' own descriptions of the models."""

from __future__ import annotations

from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    ETag,
    Filter,
    Meta,
    Patch,
    ResourceType,
    ServiceProviderConfig,
    Sort,
)

from bridge.provisioning.scim_model import User
from bridge.provisioning.scim_search import MAX_COUNT

_RESPONSE = Context.RESOURCE_QUERY_RESPONSE


def service_provider_config(base: str) -> dict[str, Any]:
    config = ServiceProviderConfig(
        patch=Patch(supported=True), bulk=Bulk(supported=False, max_operations=0,
                                               max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_COUNT),
        change_password=ChangePassword(supported=False), sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[AuthenticationScheme(
            type=AuthenticationScheme.Type.oauthbearertoken, name="Bearer token",
            description="The IdP's SCIM token, issued on the IdP's admin page", primary=True)],
        meta=Meta(resource_type="ServiceProviderConfig",
                  location=f"{base}/ServiceProviderConfig"))
    document: dict[str, Any] = config.model_dump(scim_ctx=_RESPONSE)
    return document


def resource_types(base: str) -> list[dict[str, Any]]:
    user = ResourceType.from_resource(User)
    user.meta = Meta(resource_type="ResourceType", location=f"{base}/ResourceTypes/User")
    return [user.model_dump(scim_ctx=_RESPONSE)]


def schemas(base: str) -> list[dict[str, Any]]:
    found = []
    for model in (User, EnterpriseUser):
        schema = model.to_schema()
        schema.meta = Meta(resource_type="Schema", location=f"{base}/Schemas/{schema.id}")
        found.append(schema.model_dump(scim_ctx=_RESPONSE))
    return found


def listed(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": len(resources), "startIndex": 1, "itemsPerPage": len(resources),
            "Resources": resources}
