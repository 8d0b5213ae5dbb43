"""SCIM 2.0 over HTTP (RFC 7644), one endpoint per IdP at ``/scim/v2/<slug>``: every request
carries the IdP's SCIM bearer token; bodies are ``application/scim+json`` (plain JSON is accepted,
as Entra ID sends it); errors are RFC 7644 §3.12 documents (bridge.web.errors).

The SCIM modules are imported by the first SCIM request, not with the app: scim2-models and
pydantic under them weigh about 14 MB in every worker, which a node that serves no SCIM client
need not carry (docs/performance.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, json, request

from bridge.errors import NotFound, ProvisioningError
from bridge.unicode_text import not_text_at, not_text_problem
from bridge.web.context import application, services
from bridge.web.errors import render_error

if TYPE_CHECKING:
    from bridge.provisioning.scim_users import Caller, Shown

scim = Blueprint("scim", __name__, url_prefix="/scim/v2/<slug>")
SCIM_JSON = "application/scim+json"


def _caller(slug: str) -> Caller:
    from bridge.provisioning.scim_users import Caller

    token_id = application().scim_tokens.authenticate(slug, request.headers.get("Authorization", ""))
    return Caller(idp=services().idps[slug], token_id=token_id)


def _answer(document: dict[str, Any], status: int = 200) -> Response:
    response = Response(json.dumps(document), status=status, mimetype=SCIM_JSON)
    response.headers["Cache-Control"] = "no-store"
    return response


def _body() -> object:
    try:
        body = request.get_json(force=True, silent=True)
    except RecursionError:
        return None  # refused by the use case like any body that does not parse
    where = not_text_at(body, "body")
    if where is not None:
        raise ProvisioningError("scim_invalid", not_text_problem(where), scim_type="invalidValue")
    return body


@scim.errorhandler(RecursionError)
def _nested_too_deeply(_error: RecursionError) -> Response:
    # A body nested deeper than the JSON decoder follows: it does not parse (RFC 7644 §3.12).
    return render_error(ProvisioningError("scim_invalid", "The body is nested too deeply.",
                                          scim_type="invalidSyntax"))


def _integer(name: str, default: int) -> int:
    value = request.args.get(name)
    try:
        return int(value) if value is not None else default
    except ValueError:
        raise ProvisioningError("scim_invalid", f"{name}: an integer", scim_type="invalidValue") \
            from None


def _shown() -> Shown:
    from bridge.provisioning.scim_users import response_parameters

    return response_parameters(request.args.get("attributes"),
                               request.args.get("excludedAttributes"))


def _base(slug: str) -> str:
    return f"{services().settings.base_url}/scim/v2/{slug}"


@scim.get("/ServiceProviderConfig")
def service_provider_config(slug: str) -> Response:
    from bridge.provisioning import scim_discovery

    _caller(slug)
    return _answer(scim_discovery.service_provider_config(_base(slug)))


@scim.get("/ResourceTypes")
@scim.get("/ResourceTypes/<name>")
def resource_types(slug: str, name: str | None = None) -> Response:
    from bridge.provisioning import scim_discovery

    _caller(slug)
    return _one_or_all(scim_discovery.resource_types(_base(slug)), name)


@scim.get("/Schemas")
@scim.get("/Schemas/<name>")
def schemas(slug: str, name: str | None = None) -> Response:
    from bridge.provisioning import scim_discovery

    _caller(slug)
    return _one_or_all(scim_discovery.schemas(_base(slug)), name)


def _one_or_all(documents: list[dict[str, Any]], name: str | None) -> Response:
    from bridge.provisioning import scim_discovery

    if name is None:
        return _answer(scim_discovery.listed(documents))
    for document in documents:
        if document["id"] == name:
            return _answer(document)
    raise NotFound("scim_resource_unknown", "No such resource.")


@scim.post("/Users")
def create_user(slug: str) -> Response:
    caller = _caller(slug)
    created = application().scim_users().create(caller, _body(), _shown())
    response = _answer(created, 201)
    response.headers["Location"] = application().scim_users().location(slug, created["id"])
    return response


@scim.get("/Users")
def list_users(slug: str) -> Response:
    from bridge.provisioning.scim_search import MAX_COUNT

    caller = _caller(slug)
    return _answer(application().scim_users().search(
        caller, filter_text=request.args.get("filter"),
        start_index=_integer("startIndex", 1), count=_integer("count", MAX_COUNT),
        shown=_shown()))


@scim.post("/Users/.search")
@scim.post("/.search")  # across every resource type: Users is the only one
def search_users(slug: str) -> Response:
    return _answer(application().scim_users().search_posted(_caller(slug), _body()))


@scim.get("/Users/<user_id>")
def get_user(slug: str, user_id: str) -> Response:
    return _answer(application().scim_users().get(_caller(slug), user_id, _shown()))


@scim.put("/Users/<user_id>")
def replace_user(slug: str, user_id: str) -> Response:
    return _answer(application().scim_users().replace(_caller(slug), user_id, _body(), _shown()))


@scim.patch("/Users/<user_id>")
def patch_user(slug: str, user_id: str) -> Response:
    return _answer(application().scim_users().patch(_caller(slug), user_id, _body(), _shown()))


@scim.delete("/Users/<user_id>")
def delete_user(slug: str, user_id: str) -> tuple[str, int]:
    application().scim_users().delete(_caller(slug), user_id)
    return "", 204
