"""The admin API (JSON), documented in ``openapi/admin.json`` and served at /admin/openapi.json.

Every route requires an admin (token or session, see admin_auth). Validation errors are 422
problem documents listing every problem with its location; nothing changes when one is refused.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.wrappers import Response as BaseResponse

from bridge import audit
from bridge.claims.mapping import parse_mapping
from bridge.claims.presets import MAPPING_PRESETS, PRESETS
from bridge.errors import InvalidInput, SamlRejected, StaleChange
from bridge.idps.preview import facts_from_document, facts_from_response, preview_login, refused
from bridge.idps.settings_text import json_settings
from bridge.provisioning.status import deprovisioning_status
from bridge.web.admin_auth import actor, admin_api, current_admin, owner
from bridge.web.context import administration, application, services
from bridge.web.json_input import request_json
from bridge.web.sso import metadata_response

admin_api_blueprint = Blueprint("admin_api", __name__, url_prefix="/admin")
MAX_METADATA = 2 * 1024 * 1024


def _json_body() -> dict[str, Any]:
    body = request_json()
    if not isinstance(body, dict):
        raise InvalidInput("body: a JSON object is required")
    return body


def _plain_text(value: object, most: int) -> bool:
    return (isinstance(value, str) and 0 < len(value) <= most
            and not any(c < " " or c == "\x7f" for c in value))


def _metadata_from_request() -> tuple[bytes | None, str | None]:
    """Metadata as an uploaded file, a raw XML body, or {"metadata_url": ...} / {"metadata_xml"}."""
    upload = request.files.get("metadata")
    if upload is not None:
        return upload.read(MAX_METADATA + 1), None
    if request.mimetype in ("application/xml", "text/xml", "application/samlmetadata+xml"):
        return request.get_data(), None
    body = _json_body()
    url = body.get("metadata_url")
    xml = body.get("metadata_xml")
    if url is not None and not isinstance(url, str):
        raise InvalidInput("metadata_url: must be a string")
    if xml is not None and not isinstance(xml, str):
        raise InvalidInput("metadata_xml: must be a string")
    return (xml.encode() if xml else None), url


@admin_api_blueprint.get("/openapi.json")
@admin_api
def openapi() -> Response:
    document = resources.files("bridge.web").joinpath("openapi/admin.json").read_text()
    return Response(document, mimetype="application/json")


@admin_api_blueprint.get("/api/idps")
@admin_api
def list_idps() -> Response:
    return jsonify({"idps": administration().idps.list_idps()})


@admin_api_blueprint.post("/api/idps")
@admin_api
def create_idp() -> tuple[Response, int]:
    if request.files or request.form:
        slug = request.form.get("slug", "")
        settings = json_settings(request.form.get("settings") or "{}")
        xml, url = _metadata_from_request()
        url = url or request.form.get("metadata_url") or None
    else:
        body = _json_body()
        slug, settings = body.get("slug", ""), body.get("settings", {})
        xml, url = _metadata_from_request()
    created = administration().idps.create_idp(str(slug), xml=xml, url=url, settings=settings,
                                         actor=actor())
    return jsonify(created), 201


@admin_api_blueprint.get("/api/idps/<slug>")
@admin_api
def get_idp(slug: str) -> Response:
    return jsonify(administration().idps.get_idp(slug))


@admin_api_blueprint.delete("/api/idps/<slug>")
@admin_api
def delete_idp(slug: str) -> tuple[str, int]:
    """A deletion may name the slug a second time, ``?confirm_slug=<slug>`` or
    ``{"confirm_slug": "<slug>"}``, as the admin pages require: a script that builds the URL from
    one variable and the confirmation from another deletes nothing when they disagree. Without
    it the deletion goes ahead, as it always has for automation; a deleted IdP can be restored."""
    admin = administration().idps
    admin.get_idp(slug)  # an unknown slug is a 404 before anything else
    confirm: object = request.args.get("confirm_slug")
    given = confirm is not None
    if not given and request.get_data():
        body = _json_body()
        # A confirmation that is given must name the IdP: null, "" or a number names none.
        given, confirm = "confirm_slug" in body, body.get("confirm_slug")
    if given and (not isinstance(confirm, str) or confirm.strip() != slug):
        raise InvalidInput(f"confirm_slug: {slug} was to be deleted, the confirmation names "
                           "another slug; nothing was deleted", code="idp_delete_unconfirmed")
    admin.delete_idp(slug, actor())
    return "", 204


# --- drafts, going live and restoring (what the admin pages do, for automation) ------------------

@admin_api_blueprint.post("/api/idp-drafts")
@admin_api
def create_draft() -> tuple[Response, int]:
    """A draft IdP: a slug and settings, no metadata yet (decision 25). Its metadata comes later
    through ``POST /api/idps/<slug>/metadata``, which puts it in testing."""
    body = _json_body()
    unknown = sorted(set(body) - {"slug", "settings"})
    if unknown:
        raise InvalidInput([f"{key}: not a field of a draft (slug, settings)" for key in unknown])
    slug, settings = body.get("slug", ""), body.get("settings", {})
    if not isinstance(slug, str):
        raise InvalidInput("slug: must be a string")
    return jsonify(administration().idps.create_draft(slug, settings=settings,
                                                      actor=actor())), 201


@admin_api_blueprint.get("/api/idps/<slug>/test-login")
@admin_api
def test_login_state(slug: str) -> Response:
    """Whether a test login has passed with the metadata and settings in force, and where an
    admin starts one (in a browser, signed in to the admin pages: it is a SAML login)."""
    detail = administration().idps.get_idp(slug)
    return jsonify({
        "slug": slug, "state": detail["state"], "version_id": detail["version_id"],
        "tested": detail["tested"], "tested_version_id": detail["tested_version_id"],
        "settings_tested": detail["settings_tested"],
        "served": detail["served"], "not_served_reason": detail["not_served_reason"],
        # None while no test login can start: a draft has no metadata, and no login goes
        # through an IdP that is not served (the reason says why).
        "start_url": f"{services().settings.base_url}/admin/idps/{slug}/test-login"
        if detail["version_id"] is not None and detail["served"] else None,
    })


@admin_api_blueprint.post("/api/idps/<slug>/go-live")
@admin_api
def go_live(slug: str) -> Response:
    """Offer the IdP to users once a test login passed with the metadata and settings in force;
    ``{"without_test": true}`` goes live without one, recorded as such in the audit trail."""
    body = _json_body() if request.get_data() else {}
    unknown = sorted(set(body) - {"without_test"})
    without_test = body.get("without_test", False)
    if unknown or not isinstance(without_test, bool):
        raise InvalidInput([f"{key}: not a field of going live (without_test)" for key in unknown]
                           or ["without_test: true or false"])
    return jsonify(administration().idps.go_live(slug, actor=actor(), without_test=without_test))


@admin_api_blueprint.get("/api/deleted-idps")
@admin_api
def deleted_idps() -> Response:
    return jsonify({"idps": administration().idps.deleted_idps()})


@admin_api_blueprint.post("/api/deleted-idps/<slug>/restore")
@admin_api
def restore_deleted(slug: str) -> Response:
    """A deleted IdP back with the settings and metadata it had, in testing."""
    return jsonify(administration().idps.restore_deleted(slug, actor=actor()))


# The settings' entity tag is their fingerprint (what the settings page sends back as well): a
# script that reads them (GET, ETag) and writes them back with If-Match changes nothing when
# another admin saved settings in between (412 settings_changed), instead of undoing that change.
SETTINGS_CHANGED = ("settings: the settings changed since the If-Match entity tag was read "
                    "(another admin saved them); nothing was saved. Read them again (GET, ETag), "
                    "then make the change again.")


@admin_api_blueprint.get("/api/idps/<slug>/settings")
@admin_api
def get_settings(slug: str) -> Response:
    detail = administration().idps.get_idp(slug)
    return _with_etag(jsonify({"settings": detail["settings"],
                               "settings_fingerprint": detail["settings_fingerprint"]}),
                      detail["settings_fingerprint"])


@admin_api_blueprint.put("/api/idps/<slug>/settings")
@admin_api
def update_settings(slug: str) -> Response:
    admin = administration().idps
    based_on = _if_match()
    # RFC 9110 §13.2: an unknown IdP is a 404 and a file IdP's settings a 409 whatever the
    # precondition says; otherwise the precondition is judged before the body (and again, under
    # the row's lock, as the settings are saved).
    current = admin.get_idp(slug)["settings_fingerprint"]
    if based_on is not None and current is not None and current not in based_on:
        raise StaleChange(SETTINGS_CHANGED, code="settings_changed")
    detail = admin.update_settings(slug, _json_body(), actor(), based_on=based_on,
                                   stale=SETTINGS_CHANGED)
    return _with_etag(jsonify(detail), detail["settings_fingerprint"])


def _if_match() -> frozenset[str] | None:
    """The settings fingerprints an ``If-Match`` accepts (RFC 9110 §13.1.1: strong comparison, so
    a weak tag matches nothing); None without the header or with ``*`` (any settings)."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    tags = request.if_match
    if tags.star_tag:
        return None
    if not tags:
        raise InvalidInput("If-Match: an entity tag is required, in double quotes, as ETag gives "
                           "it (or *)", code="if_match_invalid")
    return frozenset(tags.as_set())


def _with_etag(response: Response, fingerprint: str | None) -> Response:
    if fingerprint is not None:
        response.set_etag(fingerprint)
    return response


@admin_api_blueprint.put("/api/idps/<slug>/metadata-url")
@admin_api
def set_metadata_url(slug: str) -> Response:
    url = _json_body().get("metadata_url")
    if url is not None and not isinstance(url, str):
        raise InvalidInput("metadata_url: a string or null")
    return jsonify(administration().idps.set_metadata_url(slug, url, actor()))


@admin_api_blueprint.post("/api/idps/<slug>/metadata")
@admin_api
def propose_metadata(slug: str) -> Response:
    xml, url = _metadata_from_request()
    return jsonify(administration().idps.propose_metadata(slug, xml=xml, url=url, actor=actor()))


@admin_api_blueprint.post("/api/idps/<slug>/metadata/refresh")
@admin_api
def refresh_metadata(slug: str) -> Response:
    return jsonify(administration().idps.refresh(slug, actor=actor()))


@admin_api_blueprint.get("/api/idps/<slug>/metadata/versions")
@admin_api
def versions(slug: str) -> Response:
    return jsonify({"versions": administration().idps.versions(slug)})


@admin_api_blueprint.get("/api/idps/<slug>/metadata/versions/<int:version_id>")
@admin_api
def version_xml(slug: str, version_id: int) -> Response:
    return Response(administration().idps.version_xml(slug, version_id),
                    mimetype="application/samlmetadata+xml")


@admin_api_blueprint.post("/api/idps/<slug>/metadata/versions/<int:version_id>/apply")
@admin_api
def apply_version(slug: str, version_id: int) -> Response:
    return jsonify(administration().idps.apply_version(slug, version_id, actor=actor()))


@admin_api_blueprint.post("/api/idps/<slug>/metadata/versions/<int:version_id>/restore")
@admin_api
def restore_version(slug: str, version_id: int) -> Response:
    return jsonify(administration().idps.restore_version(slug, version_id, actor=actor()))


@admin_api_blueprint.post("/api/idps/<slug>/metadata/versions/<int:version_id>/discard")
@admin_api
def discard_version(slug: str, version_id: int) -> tuple[str, int]:
    administration().idps.discard_version(slug, version_id, actor=actor())
    return "", 204


@admin_api_blueprint.get("/api/idps/<slug>/sp-metadata")
@admin_api
def sp_metadata(slug: str) -> BaseResponse:
    return metadata_response(administration().idps.sp_metadata(slug),
                             download_as=f"sp-metadata-{slug}.xml")


@admin_api_blueprint.post("/api/idps/<slug>/claims-preview")
@admin_api
def claims_preview(slug: str) -> Response:
    """Dry run: the claims of every version from attributes (or a SAML response, read unverified),
    under the mapping in force and, if given, under a proposed mapping; or the code a login with
    these facts would be refused with (``outcome``: accepted or refused)."""
    body = _json_body()
    idp = administration().idps.idp(slug)
    proposed = None
    if body.get("mapping") is not None:
        proposed = parse_mapping(body["mapping"], source="proposed", presets=MAPPING_PRESETS)
    try:
        if "saml_response" in body:
            import base64
            import binascii

            try:
                raw = base64.b64decode(str(body["saml_response"]), validate=True)
            except (binascii.Error, ValueError):
                raw = str(body["saml_response"]).encode()
            facts = facts_from_response(
                raw, idp, max_bytes=services().settings.max_saml_response_bytes)
        else:
            facts = facts_from_document(body, idp)
    except SamlRejected as error:  # what a login with this response would be refused with
        return jsonify(refused(error))
    return jsonify(preview_login(facts, idp, proposed))


@admin_api_blueprint.get("/api/clients")
@admin_api
def list_clients() -> Response:
    return jsonify({"clients": administration().clients.list_clients()})


@admin_api_blueprint.post("/api/clients")
@admin_api
def create_client() -> tuple[Response, int]:
    client, secret = administration().clients.create_client(_json_body(), actor())
    return _no_store(jsonify({"client": client, "client_secret": secret})), 201


@admin_api_blueprint.get("/api/clients/<client_id>")
@admin_api
def get_client(client_id: str) -> Response:
    return jsonify(administration().clients.get_client(client_id))


@admin_api_blueprint.put("/api/clients/<client_id>")
@admin_api
def update_client(client_id: str) -> Response:
    return jsonify(administration().clients.update_client(client_id, _json_body(), actor()))


@admin_api_blueprint.post("/api/clients/<client_id>/secret")
@admin_api
def rotate_client_secret(client_id: str) -> Response:
    # No body: the defaults. A body that does not parse is refused, not taken for none.
    body = request_json() if request.get_data() else {}
    if not isinstance(body, dict):
        raise InvalidInput("body: a JSON object, {\"overlap_seconds\": ...}, or none")
    client, secret = administration().clients.rotate_secret(
        client_id, actor(), overlap_seconds=body.get("overlap_seconds"))
    return _no_store(jsonify({"client": client, "client_secret": secret}))


@admin_api_blueprint.delete("/api/clients/<client_id>")
@admin_api
def delete_client(client_id: str) -> tuple[str, int]:
    administration().clients.delete_client(client_id, actor())
    return "", 204


def _no_store(response: Response) -> Response:
    # The answer holds a client secret, shown this once.
    response.headers["Cache-Control"] = "no-store"
    return response


@admin_api_blueprint.get("/api/test-logins/<test_id>")
@admin_api
def test_login_result(test_id: str) -> Response:
    result = administration().test_logins.result(test_id)
    if result is None:
        from bridge.errors import NotFound

        raise NotFound("test_login_unknown", "No such test login.")
    return jsonify(result)


@admin_api_blueprint.get("/api/presets")
@admin_api
def presets() -> Response:
    return jsonify({"presets": [
        {"name": p.name, "display_name": p.display_name, "signs": p.signs,
         "subject_attribute": p.subject_attribute, "instructions": list(p.instructions),
         "attributes": {claim: list(rule.sources) for claim, rule in p.mapping.claims.items()}}
        for p in PRESETS.values()]})


@admin_api_blueprint.get("/api/audit")
@admin_api
def audit_events() -> Response:
    limit = min(max(request.args.get("limit", 100, type=int) or 100, 1), 1000)
    return jsonify({"events": audit.audit_events(services().db, limit)})


@admin_api_blueprint.post("/api/revocations")
@admin_api
def revoke_all() -> Response:
    body = _json_body()
    subject, idp = body.get("subject"), body.get("idp")
    reason = body.get("reason", "admin")
    # Strings only, as long as the columns they are compared with and recorded in (a list, a
    # number or a NUL character was a 500).
    problems = [f"{name}: a string of 1 to {most} characters, no control characters"
                for name, value, most in (("subject", subject, 128), ("idp", idp, 63),
                                          ("reason", reason, 64))
                if value is not None and not _plain_text(value, most)]
    if problems:
        raise InvalidInput(problems)
    if (subject is None) == (idp is None):
        raise InvalidInput("give exactly one of subject, idp")
    count = application().revocation.revoke_all(subject=subject, idp_slug=idp, actor=actor(),
                                               reason=reason)
    return jsonify({"revoked": count})


@admin_api_blueprint.get("/api/tokens")
@admin_api
def list_tokens() -> Response:
    return jsonify({"tokens": administration().access.list_tokens()})


@admin_api_blueprint.post("/api/tokens")
@admin_api
def create_token() -> tuple[Response, int]:
    body = _json_body()
    expires_in = body.get("expires_in", 30 * 86400)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        raise InvalidInput("expires_in: a number of seconds")
    admin = current_admin()
    assert admin is not None
    # The token is its maker's power: a person's ends with their deprovisioning.
    token_id, token = administration().access.create_token(
        body.get("name", ""), expires_in=float(expires_in), actor=actor(), owner=admin.owner)
    return jsonify({"id": token_id, "token": token}), 201


@admin_api_blueprint.delete("/api/tokens/<token_id>")
@admin_api
def revoke_token(token_id: str) -> tuple[str, int]:
    administration().access.revoke_token(token_id, actor=actor())
    return "", 204


@admin_api_blueprint.get("/api/idps/<slug>/deprovisioning")
@admin_api
def deprovisioning(slug: str) -> Response:
    return jsonify(deprovisioning_status(services(), application().scim_tokens, slug))


@admin_api_blueprint.post("/api/idps/<slug>/scim-token")
@admin_api
def issue_scim_token(slug: str) -> tuple[Response, int]:
    token_id, token = application().scim_tokens.issue(slug, actor=actor(), owner=owner())
    return jsonify({"id": token_id, "token": token,
                    "scim_base_url": application().scim_users().base_url(slug)}), 201


@admin_api_blueprint.delete("/api/idps/<slug>/scim-token")
@admin_api
def revoke_scim_token(slug: str) -> tuple[str, int]:
    application().scim_tokens.revoke(slug, actor=actor())
    return "", 204
