"""An IdP's settings and its metadata in force are each checked with the other; a change to one
half is written only if the other half is still the one it was checked with. Another change
that lands between the check and the write (another admin, a scheduled refresh) gets the first
refused with 409 ``idp_changed_meanwhile``, and nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from bridge.dev.saml_idp import DevIdp
from bridge.idps.lifecycle import IdpAdmin
from bridge.services import Services
from bridge.store.models import AuditEvent, IdpMetadataVersion, IdpRecord
from tests.attacks import xml_tools as x
from tests.test_admin_api import _metadata_with, _new_keypair
from tests.test_unloadable_idps import _caller, _create, acme, token  # noqa: F401

OTHER_SETTINGS = {"display_name": "Acme", "clock_skew_seconds": 30}


def _save_other_settings(bridge: Services) -> None:
    """What another admin's settings save writes."""
    with bridge.db.transaction() as session:
        record = session.get(IdpRecord, "other")
        assert record is not None
        record.settings_json = json.dumps(OTHER_SETTINGS, sort_keys=True)
        record.updated_at += 1


def _during_the_check(monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]) -> None:
    """Make ``change`` once, while the next change of an IdP is being checked (after its check
    read what it checks with, before its write)."""
    checking = IdpAdmin._validated
    done: list[bool] = []

    def validated(self: IdpAdmin, *args: Any, **kwargs: Any) -> Any:
        result = checking(self, *args, **kwargs)
        if not done:
            done.append(True)
            change()
        return result
    monkeypatch.setattr(IdpAdmin, "_validated", validated)


def _row(bridge: Services) -> tuple[int | None, str]:
    with bridge.db.transaction() as session:
        record = session.get(IdpRecord, "other")
        assert record is not None
        return record.version_id, record.settings_json


def _second_version(bridge: Services, idp: DevIdp, *, in_force: bool = True) -> int:
    """Another version of the same document: put in force by hand, or left pending."""
    with bridge.db.transaction() as session:
        record = session.get(IdpRecord, "other")
        assert record is not None
        version = IdpMetadataVersion(slug="other", xml=idp.metadata_xml().decode(),
                                     sha256="1" * 64, status="applied" if in_force else "pending",
                                     source="upload", created_at=record.created_at,
                                     created_by="test", diff_json="{}")
        session.add(version)
        session.flush()
        if in_force:
            record.version_id, record.updated_at = version.id, record.updated_at + 1
        return version.id


def _events(bridge: Services, name: str) -> int:
    with bridge.db.transaction() as session:
        return len(list(session.scalars(select(AuditEvent.id).where(
            AuditEvent.event == name, AuditEvent.idp_slug == "other"))))


def test_settings_checked_with_a_version_replaced_meanwhile_are_not_saved(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    api = _caller(client, token)
    assert _create(api, acme).status_code == 201
    replaced: list[int] = []
    _during_the_check(monkeypatch, lambda: replaced.append(_second_version(bridge, acme)))
    refused = api("PUT", "/admin/api/idps/other/settings", json=OTHER_SETTINGS)
    assert refused.status_code == 409, refused.get_data(as_text=True)
    assert refused.get_json()["code"] == "idp_changed_meanwhile"
    version_id, settings_json = _row(bridge)
    assert version_id == replaced[0] and json.loads(settings_json) == {"display_name": "Acme"}
    assert _events(bridge, "idp_settings_changed") == 0
    # Tried again, it is checked with the version in force now, and saved.
    monkeypatch.undo()
    assert api("PUT", "/admin/api/idps/other/settings", json=OTHER_SETTINGS).status_code == 200


@pytest.mark.parametrize("how", ["apply", "restore"])
def test_a_version_checked_with_settings_replaced_meanwhile_is_not_put_in_force(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    api = _caller(client, token)
    assert _create(api, acme).status_code == 201
    first, _ = _row(bridge)
    if how == "apply":
        target = _second_version(bridge, acme, in_force=False)
    else:
        _second_version(bridge, acme)
        target = first
    before, _ = _row(bridge)

    _during_the_check(monkeypatch, lambda: _save_other_settings(bridge))
    refused = api("POST", f"/admin/api/idps/other/metadata/versions/{target}/{how}")
    assert refused.status_code == 409, refused.get_data(as_text=True)
    assert refused.get_json()["code"] == "idp_changed_meanwhile"
    assert _row(bridge)[0] == before
    assert _events(bridge, "idp_metadata_applied") == 0
    monkeypatch.undo()
    assert api("POST", f"/admin/api/idps/other/metadata/versions/{target}/{how}").status_code == 200


def _upload_while_settings_change(bridge: Services, api, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                  document: bytes, in_force: int | None) -> dict[str, Any]:
    """Upload ``document`` while another admin saves other settings; check that it is answered
    as pending, with nothing put in force (``in_force`` still the version in force)."""
    _during_the_check(monkeypatch, lambda: _save_other_settings(bridge))
    answered = api("POST", "/admin/api/idps/other/metadata", data=document,
                   content_type="application/samlmetadata+xml")
    assert answered.status_code == 200, answered.get_data(as_text=True)
    body: dict[str, Any] = answered.get_json()
    assert body["status"] == "pending" and "certificates_applied" not in body
    assert _row(bridge)[0] == in_force
    assert _events(bridge, "idp_metadata_applied") == 0
    return body


def test_an_automatic_apply_checked_with_settings_replaced_meanwhile_waits_for_a_person(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """New certificates are applied by themselves (the default policy), unless the settings
    they were checked with were replaced meanwhile: then the upload is answered as pending, as
    one that waits for a person, with nothing in force changed and nothing said to be."""
    api = _caller(client, token)
    assert _create(api, acme).status_code == 201
    before, _ = _row(bridge)
    current = x.load_keypair(acme.state_dir)

    added = _metadata_with(acme, current.cert_pem, _new_keypair(tmp_path).cert_pem)
    body = _upload_while_settings_change(bridge, api, monkeypatch, added, before)
    with bridge.db.transaction() as session:
        proposal = session.get(IdpMetadataVersion, body["version"])
        assert proposal is not None
        assert "certificates_applied_as" not in json.loads(proposal.diff_json)
    # Without a race the same upload puts the new certificate in force by itself.
    monkeypatch.undo()
    again = api("POST", "/admin/api/idps/other/metadata", data=added,
                content_type="application/samlmetadata+xml").get_json()
    assert again.get("certificates_applied") is not None or again["status"] == "applied"


def test_certificates_split_off_a_proposal_that_lose_a_race_leave_only_the_proposal(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A proposal that adds a certificate and moves the SSO URL: the certificate goes in force by
    itself as a version of its own, unless the settings were replaced meanwhile. Then nothing
    goes in force, the proposal waits for a person, and the version split off is discarded."""
    api = _caller(client, token)
    assert _create(api, acme).status_code == 201
    before, _ = _row(bridge)
    current = x.load_keypair(acme.state_dir)
    moved = _metadata_with(acme, current.cert_pem, _new_keypair(tmp_path).cert_pem).replace(
        b"https://other-idp.example.net/sso/redirect", b"https://sso.acme.example/saml2")
    body = _upload_while_settings_change(bridge, api, monkeypatch, moved, before)
    with bridge.db.transaction() as session:
        versions = {v.id: v for v in session.scalars(select(IdpMetadataVersion).where(
            IdpMetadataVersion.slug == "other"))}
    assert "certificates_applied_as" not in json.loads(versions[body["version"]].diff_json)
    split_off = [v for v in versions.values() if v.source == "certificates"]
    assert [v.status for v in split_off] == ["discarded"]
    assert [v.id for v in versions.values() if v.status == "pending"] == [body["version"]]
