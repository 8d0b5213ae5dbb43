"""Admin pages for OAuth clients: list, register, edit, rotate the secret, delete; over the same
``ClientAdmin`` as the admin API and ``bridge clients``.

A new secret is shown on the page that answers the form (never stored, never in a redirect URL),
with ``Cache-Control: no-store``; everything else redirects back with a notice."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

from flask import Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from bridge.errors import ConfigError, InvalidInput
from bridge.web.admin_auth import actor, admin_page, current_admin
from bridge.web.admin_pages import admin_pages
from bridge.web.context import administration
from bridge.web.json_input import form_json

# ASCII digits only (str.isdigit also takes "²", which int() refuses), and few enough for int().
WHOLE_NUMBER = re.compile(r"[0-9]{1,9}\Z")


def _page(template: str, status: int = 200, **context: Any) -> Response:
    response = Response(render_template(template, admin=current_admin(), **context), status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _back(client_id: str | None, notice: str) -> BaseResponse:
    target = (url_for("admin_pages.client", client_id=client_id) if client_id
              else url_for("admin_pages.clients"))
    return redirect(target + "?" + urlencode({"notice": notice}), code=303)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def table_from_form(form: Any) -> dict[str, Any]:
    """The client's ``[[clients]]`` table from the registration form: the common settings as
    fields, any other as JSON; a field left empty takes the default."""
    table = form_json(form.get("other_settings") or "{}", "other settings")
    if not isinstance(table, dict):
        raise InvalidInput("other settings: a JSON object, like {\"scopes\": [\"openid\"]}")
    table.update({"client_id": form.get("client_id", "").strip(),
                  "redirect_uris": _lines(form.get("redirect_uris", "")),
                  "audience": form.get("audience", "").strip(),
                  "public": form.get("kind", "public") == "public"})
    if form.get("claims_version"):
        if not WHOLE_NUMBER.fullmatch(form["claims_version"]):
            raise InvalidInput("claims version: 1 or 2")
        table["claims_version"] = int(form["claims_version"])
    if form.get("refresh_token_delivery"):
        table["refresh_token_delivery"] = form["refresh_token_delivery"]
    if _lines(form.get("allowed_origins", "")):
        table["allowed_origins"] = _lines(form["allowed_origins"])
    return table


@admin_pages.get("/clients")
@admin_page
def clients() -> Response:
    return _page("admin/clients.html", clients=administration().clients.list_clients(),
                 notice=request.args.get("notice"))


@admin_pages.route("/clients/new", methods=["GET", "POST"])
@admin_page
def new_client() -> BaseResponse:
    if request.method == "GET":
        return _page("admin/new_client.html", form={})
    try:
        detail, secret = administration().clients.create_client(table_from_form(request.form),
                                                                actor())
    except ConfigError as error:
        return _page("admin/new_client.html", status=422, form=request.form,
                     problems=error.problems)
    if secret is None:
        return _back(detail["client_id"], "Client registered.")
    return _page("admin/client.html", client=detail, secret=secret, **_editing(detail),
                 notice="Client registered. Copy its secret now: it is not shown again.")


def _editing(detail: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    return {"settings_text": text or json.dumps(detail["settings"] or {}, indent=2)}


@admin_pages.get("/clients/<client_id>")
@admin_page
def client(client_id: str) -> Response:
    detail = administration().clients.get_client(client_id)
    return _page("admin/client.html", client=detail, notice=request.args.get("notice"),
                 **_editing(detail))


@admin_pages.post("/clients/<client_id>/settings")
@admin_page
def client_settings(client_id: str) -> BaseResponse:
    admin = administration().clients
    text = request.form.get("settings_json", "")
    try:
        admin.update_client(client_id, form_json(text, "settings"), actor())
    except ConfigError as error:
        detail = admin.get_client(client_id)
        return _page("admin/client.html", status=422, client=detail, problems=error.problems,
                     **_editing(detail, text))
    return _back(client_id, "Settings saved.")


@admin_pages.post("/clients/<client_id>/secret")
@admin_page
def rotate_client_secret(client_id: str) -> BaseResponse:
    admin = administration().clients
    raw = request.form.get("overlap_seconds", "").strip()
    try:
        if raw and not WHOLE_NUMBER.fullmatch(raw):
            raise InvalidInput("overlap: a whole number of seconds")
        detail, secret = admin.rotate_secret(client_id, actor(),
                                             overlap_seconds=int(raw) if raw else None)
    except ConfigError as error:
        detail = admin.get_client(client_id)
        return _page("admin/client.html", status=422, client=detail, problems=error.problems,
                     **_editing(detail))
    return _page("admin/client.html", client=detail, secret=secret, **_editing(detail),
                 notice="New secret made. Copy it now: it is not shown again. The older one "
                        "keeps working until the time shown below.")


@admin_pages.post("/clients/<client_id>/delete")
@admin_page
def delete_client(client_id: str) -> BaseResponse:
    administration().clients.delete_client(client_id, actor())
    return _back(None, f"Client {client_id} deleted; its logins have ended.")
