"""Two requests giving one userName to two users at once: the unique index lets one through, the
other is a SCIM ``uniqueness`` error (409), never a 500, whether it creates, replaces or patches.
On PostgreSQL the rename's own check runs while the other write is uncommitted (so it sees
nothing) and its write then waits on the index until the other commits."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.test import TestResponse

from bridge.provisioning.scim_model import name_key
from bridge.store.db import Database
from tests.provisioning.conftest import Scim
from tests.provisioning.scim_shapes import PATCH, okta_user

TAKEN = "taken@example.com"
RENAMES: dict[str, tuple[str, Any]] = {
    "PUT": ("PUT", okta_user(TAKEN, "b")),
    "PATCH": ("PATCH", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "userName", "value": TAKEN}]}),
}


@pytest.mark.parametrize("method", sorted(RENAMES))
def test_a_rename_racing_another_write_of_the_name_is_a_uniqueness_error(
        method: str, app: Flask, scim: Scim, database: Database) -> None:
    user = scim("POST", "/Users", okta_user("b@example.com", "b")).get_json()
    verb, body = RENAMES[method]
    answers: list[TestResponse] = []
    with database.engine.connect() as other:
        other.begin()
        other.execute(sa.text(
            "INSERT INTO scim_users (id, idp_slug, user_name_key, external_id, active, subject, "
            "resource_json, version, created_at, updated_at) VALUES ('racer', 'dev', :key, NULL, "
            ":active, NULL, :resource, 1, 0, 0)"),
            {"key": name_key(TAKEN), "active": True, "resource": json.dumps({"userName": TAKEN})})
        racing = threading.Thread(target=lambda: answers.append(
            Scim(app.test_client(), scim.token)(verb, f"/Users/{user['id']}", body)))
        racing.start()
        time.sleep(0.5)  # the rename is waiting on the index (PostgreSQL) or the lock (SQLite)
        other.commit()
        racing.join(30)
    assert len(answers) == 1
    answer = answers[0]
    assert answer.status_code == 409, answer.get_data(as_text=True)
    assert answer.get_json()["scimType"] == "uniqueness"
    assert scim("GET", f"/Users/{user['id']}").get_json()["userName"] == "b@example.com"
