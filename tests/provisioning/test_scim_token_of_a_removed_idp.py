"""An IdP removed from idp_metadata/ (files are read at start-up) leaves its SCIM token, users and
refusals in the database. When an admin later creates another IdP under the same slug through the
admin API, that IdP must start clean, as one created after ``DELETE /admin/api/idps/<slug>``
does (bridge.oauth.deprovisioned.forget_provisioning): the removed IdP's SCIM client may not
read or change its users."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.test import TestResponse

from bridge.admin.access import AdminAccess
from bridge.dev.saml_idp import DevIdp
from bridge.services import Services, build_services
from bridge.store.db import Database
from bridge.store.models import DeprovisionedSubject
from bridge.web import create_app
from tests.conftest import DEMO_CLIENT, MovableClock, make_settings, test_sp_metadata
from tests.leaks import remember
from tests.provisioning.conftest import Scim, issue_token
from tests.provisioning.scim_shapes import okta_user


def _restarted_without(slug: str, database: Database, idp_dir: Path,
                       tmp_path: Path) -> tuple[Services, Flask, str]:
    """The operator removes the IdP's files and restarts; an admin token for what follows."""
    for file in idp_dir.glob(f"{slug}.*"):
        file.unlink()
    restarted = build_services(make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT]),
                               MovableClock())
    access = AdminAccess(restarted.db, restarted.clock, restarted.idps)
    admin = access.create_token("t", expires_in=600, actor="test")[1]
    remember(admin)
    return restarted, create_app(services=restarted), admin


def _create(node: Flask, admin: str, how: str, tmp_path: Path) -> TestResponse:
    """A new IdP "other" (of another organisation) through the admin API: at once, or a draft."""
    headers = {"Authorization": f"Bearer {admin}"}
    if how == "draft":
        return node.test_client().post("/admin/api/idp-drafts", headers=headers, json={
            "slug": "other", "settings": {"display_name": "New org"}})
    newcomer = DevIdp(base_url="https://new-org.example.net", state_dir=tmp_path / "new-org",
                      sp_metadata=test_sp_metadata)
    (tmp_path / "new-org").mkdir()
    return node.test_client().post("/admin/api/idps", headers=headers,
                                   content_type="multipart/form-data", data={
        "slug": "other", "settings": json.dumps({"display_name": "New org"}),
        "metadata": (io.BytesIO(newcomer.metadata_xml()), "new.xml")})


@pytest.mark.parametrize("how", ["at once", "draft"])
def test_a_new_idp_under_a_removed_file_idps_slug_does_not_accept_its_scim_token(
        how: str, app: Flask, database: Database, idp_dir: Path, tmp_path: Path) -> None:
    old_token = issue_token(app, "other")
    old_client = Scim(app.test_client(), old_token, slug="other")
    assert old_client("POST", "/Users", okta_user("someone@old-org.example", "x")
                      ).status_code == 201

    restarted, node, admin = _restarted_without("other", database, idp_dir, tmp_path)
    try:
        created = _create(node, admin, how, tmp_path)
        assert created.status_code == 201, created.get_data(as_text=True)
        if how == "draft":  # its metadata later: then the IdP answers at /scim/v2/other
            newcomer = DevIdp(base_url="https://new-org.example.net",
                              state_dir=tmp_path / "new-org", sp_metadata=test_sp_metadata)
            (tmp_path / "new-org").mkdir()
            given = node.test_client().post(
                "/admin/api/idps/other/metadata", headers={"Authorization": f"Bearer {admin}"},
                content_type="multipart/form-data",
                data={"metadata": (io.BytesIO(newcomer.metadata_xml()), "new.xml")})
            assert given.status_code in (200, 201), given.get_data(as_text=True)

        listed = Scim(node.test_client(), old_token, slug="other")("GET", "/Users")
        # No token was issued for the new IdP: the old one opens nothing.
        assert listed.status_code == 401, (listed.status_code, listed.get_data(as_text=True)[:200])
        # A token issued for the new IdP sees none of the old IdP's users.
        new_token = issue_token(node, "other")
        mine = Scim(node.test_client(), new_token, slug="other")("GET", "/Users")
        assert mine.status_code == 200 and mine.get_json()["totalResults"] == 0
    finally:
        restarted.db.dispose()


def test_refusals_of_a_removed_file_idp_stay_for_an_idp_made_under_its_slug(
        app: Flask, database: Database, idp_dir: Path, tmp_path: Path) -> None:
    """A refusal names a person by a sub derived from the entity ID: kept, it still refuses the
    same IdP's people should it come back under its slug, and names nobody at another."""
    with database.transaction() as session:
        session.add(DeprovisionedSubject(idp_slug="other", subject="refused-sub", source="scim",
                                         reason="scim_deactivated", at=0))
    restarted, node, admin = _restarted_without("other", database, idp_dir, tmp_path)
    try:
        assert _create(node, admin, "at once", tmp_path).status_code == 201
        with database.transaction() as session:
            assert session.scalars(select(DeprovisionedSubject.subject)).all() == ["refused-sub"]
    finally:
        restarted.db.dispose()
