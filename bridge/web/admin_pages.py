"""Admin pages: server-rendered, over the same services as the admin API, no JavaScript needed
(the IdP page's copy buttons, rule rows and settings preview add to what works without it).

Every form carries the session's CSRF token; every change redirects back (post/redirect/get) with
a notice, or re-renders the page with the problems when it was refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from bridge.admin.access import SESSION_SECONDS
from bridge.admin.logins import ADMIN_SIGN_IN
from bridge.claims.mapping import CLAIMS
from bridge.claims.presets import MAPPING_PRESETS, PRESETS
from bridge.errors import ConfigError, Conflict, NotFound
from bridge.idps.preview import facts_from_test_login, preview_login
from bridge.idps.registry import NOT_SERVED_REASONS
from bridge.idps.settings import offered
from bridge.idps.settings_form import (
    FINGERPRINT_FIELD,
    ROLE_RULES_FIELD,
    form_values,
    posted_form_values,
    settings_from_form,
)
from bridge.idps.settings_text import form_value, settings_as_toml, settings_from_text
from bridge.provisioning.status import deprovisioning_status
from bridge.web.admin_auth import actor, admin_page, current_admin, owner, session_cookie_name
from bridge.web.context import administration, application, services
from bridge.web.cookies import login_cookie_name, set_admin_cookie, set_login_cookie
from bridge.web.idp_setup import (
    COPY_SCRIPT,
    PREVIEW_INTEGRITY,
    PREVIEW_SCRIPT,
    allow_page_scripts,
    setup_context,
)
from bridge.web.saml_binding import send as send_saml
from bridge.web.sso import metadata_response

admin_pages = Blueprint("admin_pages", __name__, url_prefix="/admin")


@admin_pages.app_template_filter("when")
def _when(value: float | None) -> str:
    if not value:
        return "—"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@admin_pages.app_template_filter("not_served_because")
def _not_served_because(reason: str | None) -> str:
    return NOT_SERVED_REASONS.get(reason or "", "the log says why")


@admin_pages.app_template_filter("form_date")
def _form_date(value: Any) -> str:
    return form_value("insecure_allow_sha1_until", value)


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, admin=current_admin(), **context), status=status)


def _back(slug: str | None, notice: str) -> BaseResponse:
    target = url_for("admin_pages.idp", slug=slug) if slug else url_for("admin_pages.index")
    return redirect(target + "?" + urlencode({"notice": notice}), code=303)


# --- signing in ---------------------------------------------------------------------------------

@admin_pages.get("/login")
def login() -> Response:
    the_services = services()
    idps = sorted(((slug, idp.display_name) for slug, idp in offered(the_services.idps).items()),
                  key=lambda item: item[1])
    return _page("admin/login.html", idps=idps, role=the_services.settings.admin_role)


@admin_pages.get("/login/<slug>")
def login_at(slug: str) -> BaseResponse:
    the_services = services()
    idp = offered(the_services.idps).get(slug)
    if idp is None:  # an IdP still in testing signs nobody in
        raise NotFound("idp_unknown", "No such IdP.")
    start = application().login.start_completion_login(
        ADMIN_SIGN_IN, idp, f"{the_services.settings.base_url}/admin/callback",
        request.cookies.get(login_cookie_name(the_services.settings)))
    response = send_saml(start.message)
    set_login_cookie(response, the_services.settings, start.browser_token)
    return response


@admin_pages.get("/callback")
def callback() -> BaseResponse:
    session_id = administration().access.claim_ticket(request.args.get("ticket", ""))
    if session_id is None:
        return redirect(url_for("admin_pages.login"), code=303)
    response = redirect(url_for("admin_pages.index"), code=303)
    set_admin_cookie(response, services().settings, session_cookie_name(), session_id,
                     max_age=SESSION_SECONDS)
    return response


@admin_pages.post("/logout")
@admin_page
def logout() -> BaseResponse:
    administration().access.end_session(request.cookies.get(session_cookie_name(), ""))
    response = redirect(url_for("admin_pages.login"), code=303)
    response.delete_cookie(session_cookie_name(), path="/")
    return response


# --- IdPs ---------------------------------------------------------------------------------------

@admin_pages.get("/")
@admin_page
def index() -> Response:
    return _page("admin/idps.html", idps=administration().idps.list_idps(),
                 deleted=administration().idps.deleted_idps(), notice=request.args.get("notice"))


@admin_pages.route("/idps/new", methods=["GET", "POST"])
@admin_page
def new_idp() -> BaseResponse:
    presets = list(PRESETS.values())
    if request.method == "GET":
        return _page("admin/new_idp.html", presets=presets, form={})
    form = request.form
    settings: dict[str, Any] = {}
    if form.get("display_name"):
        settings["display_name"] = form["display_name"]
    if form.get("preset"):
        settings["mapping"] = {"preset": form["preset"]}
    upload = request.files.get("metadata")
    xml = upload.read() if upload is not None and upload.filename else None
    url = form.get("metadata_url") or None
    slug = form.get("slug", "")
    try:
        administration().idps.create_draft(slug, settings=settings, actor=actor())
    except ConfigError as error:
        return _page("admin/new_idp.html", status=422, presets=presets, form=form,
                     problems=error.problems)
    if xml is None and url is None:
        return _back(slug, "Draft created: enter these values at the IdP, then add its metadata.")
    # The metadata came along: the draft stays if it is refused, with the reason on its page.
    return _act(slug, lambda: administration().idps.first_metadata(slug, xml=xml, url=url,
                                                                   actor=actor()),
                "IdP added.", first_notice="IdP added.")


@admin_pages.get("/idps/<slug>")
@admin_page
def idp(slug: str) -> BaseResponse:
    return _idp_page(slug, notice=request.args.get("notice"))


def _idp_page(slug: str, status: int = 200, **context: Any) -> BaseResponse:
    detail = administration().idps.get_idp(slug)
    context.setdefault("settings_text", settings_as_toml(detail["settings"] or {}))
    context.setdefault("settings_fingerprint", detail["settings_fingerprint"] or "")
    context.setdefault("settings_form", _form_context(detail["settings"] or {},
                                                      fingerprint=detail["settings_fingerprint"]))
    return allow_page_scripts(_page("admin/idp.html", status=status, idp=detail, presets=PRESETS,
                                    setup=setup_context(services().settings, detail),
                                    copy_script=COPY_SCRIPT,
                                    preview_integrity=PREVIEW_INTEGRITY,
                                    # A draft has no metadata yet, so nothing to deprovision.
                                    deprovisioning=deprovisioning_status(
                                        services(), application().scim_tokens, slug)
                                    if slug in services().idps else None,
                                    **context))


def _form_context(settings: dict[str, Any], posted: dict[str, list[str]] | None = None, *,
                  fingerprint: str | None = None) -> dict[str, Any]:
    """What the settings form shows: the stored settings, or what was posted when it was
    refused (nothing typed is lost); with each claim's sources under the preset, as hints.
    ``fingerprint``: of the stored settings shown, which a save sends back; a refused post
    keeps the one it was sent with."""
    values = posted_form_values(posted) if posted is not None else form_values(settings)
    common = dict(settings)
    if posted is not None:
        fingerprint = (posted.get(FINGERPRINT_FIELD) or [""])[0]
        common = {"mapping": {"preset": (posted.get("preset") or [""])[0]},
                  **{key: (posted.get(key) or [""])[0] for key in (
                      "clock_skew_seconds", "sign_requests", "insecure_allow_sha1_until")}}
    mapping = common.get("mapping")
    preset = mapping.get("preset") if isinstance(mapping, dict) else None
    base = MAPPING_PRESETS.get(preset if isinstance(preset, str) else "default",
                               MAPPING_PRESETS["default"])
    return {**values, "common": common, "claims": CLAIMS, "role_rules_field": ROLE_RULES_FIELD,
            "fingerprint": fingerprint or "",
            "preset_sources": {claim: "\n".join(base.claims[claim].sources)
                               if claim in base.claims else "" for claim in CLAIMS}}


FIRST_METADATA = ("Metadata added: the IdP is in testing, not offered to users yet. Test a login, "
                  "then go live.")


def _act(slug: str, action: Any, notice: str | Callable[[Any], str],
         first_notice: str = FIRST_METADATA) -> BaseResponse:
    """Do ``action`` and go back to the IdP's page with ``notice`` (or what it makes of the
    action's result); a ConfigError shows the page again with its problems."""
    try:
        result = action()
    except ConfigError as error:
        return _idp_page(slug, status=422, problems=error.problems,
                         **({"settings_text": request.form["settings_text"]}
                            if request.form.get("settings_text") else {}))
    if callable(notice):
        notice = notice(result)
    if isinstance(result, dict) and result.get("first"):
        notice = first_notice
    elif isinstance(result, dict) and result.get("status") in ("pending", "applied", "identical",
                                                              "not_modified"):
        notice = {"pending": "The new metadata waits for your approval below.",
                  "applied": "The new metadata was applied (certificate additions apply at once).",
                  "identical": "The metadata is identical to what is in force.",
                  "not_modified": "The metadata has not changed since the last fetch."}[
                      result["status"]]
        if result.get("certificates_applied"):
            notice = ("Its new certificates are in force already (version "
                      f"{result['certificates_applied']}); the other changes wait for your "
                      "approval below.")
    return _back(slug, notice)


@admin_pages.post("/idps/<slug>/metadata")
@admin_page
def upload_metadata(slug: str) -> BaseResponse:
    upload = request.files.get("metadata")
    url = request.form.get("metadata_url") or None
    xml = upload.read() if upload is not None and upload.filename else (None if url else b"")
    return _act(slug, lambda: administration().idps.propose_metadata(slug, xml=xml, url=url,
                                                                     actor=actor()),
                "Metadata proposed.")


@admin_pages.post("/idps/<slug>/refresh")
@admin_page
def refresh(slug: str) -> BaseResponse:
    return _act(slug, lambda: administration().idps.refresh(slug, actor=actor()), "Fetched.")


@admin_pages.post("/idps/<slug>/versions/<int:version_id>/<action>")
@admin_page
def version_action(slug: str, version_id: int, action: str) -> BaseResponse:
    admin = administration().idps
    actions = {"apply": lambda: admin.apply_version(slug, version_id, actor=actor()),
               "restore": lambda: admin.restore_version(slug, version_id, actor=actor()),
               "discard": lambda: admin.discard_version(slug, version_id, actor=actor())}
    if action not in actions:
        raise NotFound("not_found", "No such action.")
    return _act(slug, actions[action], {"apply": "Version applied.",
                                        "restore": "Rolled back.",
                                        "discard": "Version discarded."}[action])


def _based_on() -> str | None:
    """The fingerprint of the stored settings the posted page showed (None from a post that
    does not say, which is then applied onto whatever is stored)."""
    return request.form.get(FINGERPRINT_FIELD) or None


@admin_pages.post("/idps/<slug>/settings")
@admin_page
def settings(slug: str) -> BaseResponse:
    typed = request.form.get("settings_text", "")
    try:
        administration().idps.update_settings(slug, settings_from_text(typed), actor(),
                                              based_on=_based_on())
    except ConfigError as error:
        # Refused: shown again as typed (with the fingerprint it was typed against).
        return _idp_page(slug, status=409 if isinstance(error, Conflict) else 422,
                         problems=error.problems,
                         **({"settings_text": typed, "settings_fingerprint": _based_on() or ""}
                            if typed else {}))
    return _back(slug, "Settings saved.")


@admin_pages.post("/idps/<slug>/settings/common")
@admin_page
def common_settings(slug: str) -> BaseResponse:
    """The settings form: the common settings, the attribute sources and the role rules, onto
    the stored settings (what the form does not show is kept), checked as TOML is."""
    admin = administration().idps
    current = admin.get_idp(slug)["settings"] or {}
    posted = request.form.to_dict(flat=False)
    try:
        admin.update_settings(slug, settings_from_form(current, posted), actor(),
                              based_on=_based_on())
    except ConfigError as error:
        return _idp_page(slug, status=409 if isinstance(error, Conflict) else 422,
                         problems=error.problems, settings_form=_form_context(current, posted))
    return _back(slug, "Settings saved.")


NO_TEST_LOGIN = ("No test login yet: use \u201cTest a login\u201d above and sign in at the IdP; "
                 "then this shows what that login would produce with the settings as edited here.")
NO_METADATA = ("No test login yet: a draft has no metadata, and an IdP that is not loadable has "
               "none that loads. Add the IdP's metadata (or apply a version that loads), test a "
               "login, and this shows what it would produce with the settings as edited here.")


@admin_pages.post("/idps/<slug>/settings/preview")
@admin_page
def settings_preview(slug: str) -> tuple[Response, int]:
    """What the IdP's last test login would produce with the settings as edited (the form's
    fields, or ``settings_text``), checked as a save checks them; nothing is saved or issued.
    Like every admin page: a session and its CSRF token, or the way to the sign-in page."""
    admin = administration().idps
    try:
        current = admin.get_idp(slug)["settings"] or {}
        proposed = (settings_from_text(request.form["settings_text"])
                    if "settings_text" in request.form
                    else settings_from_form(current, request.form.to_dict(flat=False)))
        _, idp = admin.checked_settings(slug, proposed)
    except ConfigError as error:
        return jsonify({"outcome": "invalid", "code": error.code, "problems": error.problems,
                        "message": "These settings would be refused (nothing was saved):"}), 422
    test = administration().test_logins.last_accepted(slug) if idp is not None else None
    if idp is None or test is None:
        return jsonify({"outcome": "no_test_login",
                        "message": NO_METADATA if idp is None else NO_TEST_LOGIN}), 200
    result = preview_login(facts_from_test_login(test["result"], idp), idp)
    about = {"id": test["id"], "started_by": test["started_by"],
             "completed_at": test["completed_at"]}
    when = _when(test["completed_at"])
    if result["outcome"] == "refused":
        return jsonify({"outcome": "refused", "test_login": about, "code": result["code"],
                        "reason": result["reason"],
                        "message": f"The last test login ({when}) would be refused with these "
                                   f"settings: {result['code']}: {result['reason']}"}), 200
    return jsonify({"outcome": "accepted", "test_login": about, "sub": result["sub"],
                    "claims": result["in_force"],
                    "message": f"The last test login ({when}) with these settings, not yet "
                               "saved:"}), 200


@admin_pages.get("/settings-preview.js")
@admin_page
def preview_script() -> Response:
    """The settings form's script, which the IdP page loads with its hash as integrity."""
    response = Response(PREVIEW_SCRIPT, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    return response


@admin_pages.post("/idps/<slug>/go-live")
@admin_page
def go_live(slug: str) -> BaseResponse:
    without_test = request.form.get("without_test") == "yes"
    return _act(slug, lambda: administration().idps.go_live(slug, actor=actor(),
                                                            without_test=without_test),
                _went_live)


def _went_live(detail: dict[str, Any]) -> str:
    if detail["served"]:
        return "Live: users can log in through it now."
    # Live, and still no login goes through it: say so rather than promise logins.
    return (f"Live, but not served: {_not_served_because(detail['not_served_reason'])}. No user "
            "can log in through it until that is mended.")


@admin_pages.post("/idps/<slug>/scim-token")
@admin_page
def issue_scim_token(slug: str) -> BaseResponse:
    # Shown on this answer only, never put in a URL: the page is not redirected.
    _, token = application().scim_tokens.issue(slug, actor=actor(), owner=owner())
    response = _idp_page(slug, new_scim_token=token,
                         notice="SCIM token issued: copy it now, it is not shown again. The "
                                "token before it no longer works.")
    response.headers["Cache-Control"] = "no-store"
    return response


@admin_pages.post("/idps/<slug>/scim-token/revoke")
@admin_page
def revoke_scim_token(slug: str) -> BaseResponse:
    application().scim_tokens.revoke(slug, actor=actor())
    return _back(slug, "SCIM token revoked: the IdP's SCIM client is refused until a new one "
                       "is issued.")


@admin_pages.post("/idps/<slug>/delete")
@admin_page
def delete(slug: str) -> BaseResponse:
    if request.form.get("confirm_slug", "").strip() != slug:
        return _idp_page(slug, status=422, problems=[
            f"delete: type the slug {slug} to confirm; nothing was deleted"])
    administration().idps.delete_idp(slug, actor())
    return _back(None, f"IdP {slug} deleted. It can be restored below.")


@admin_pages.post("/deleted/<slug>/restore")
@admin_page
def restore_deleted(slug: str) -> BaseResponse:
    try:
        administration().idps.restore_deleted(slug, actor=actor())
    except ConfigError as error:
        return _page("admin/idps.html", status=422, idps=administration().idps.list_idps(),
                     deleted=administration().idps.deleted_idps(), problems=error.problems)
    return _back(slug, "Restored, in testing: test a login, then go live.")


@admin_pages.get("/idps/<slug>/sp-metadata")
@admin_page
def sp_metadata(slug: str) -> Response:
    return metadata_response(administration().idps.sp_metadata(slug),
                             download_as=f"sp-metadata-{slug}.xml")


@admin_pages.get("/idps/<slug>/test-login")
@admin_page
def test_login(slug: str) -> BaseResponse:
    the_services = services()
    _, message, browser_token = administration().test_logins.start(
        administration().idps.idp(slug), actor=actor(),
        result_page=f"{the_services.settings.base_url}/admin/test-logins/{{id}}",
        browser_token=request.cookies.get(login_cookie_name(the_services.settings)))
    response = send_saml(message)
    set_login_cookie(response, the_services.settings, browser_token)
    return response


@admin_pages.get("/test-logins/<test_id>")
@admin_page
def test_login_result(test_id: str) -> Response:
    result = administration().test_logins.result(test_id)
    if result is None:
        raise NotFound("test_login_unknown", "No such test login.")
    return _page("admin/test_login.html", test=result)
