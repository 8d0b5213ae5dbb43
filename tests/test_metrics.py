"""/metrics in the Prometheus format: logins by IdP and result, tokens, reuse detections,
latency, certificate days left, the database pool."""

from __future__ import annotations

import re
from pathlib import Path

from flask.testing import FlaskClient

from bridge.clock import SystemClock
from bridge.services import build_services
from bridge.store.db import Database
from bridge.web import create_app
from tests.conftest import make_settings
from tests.helpers import Browser


def _value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_what_happened(browser: Browser, client: FlaskClient) -> None:
    before = client.get("/metrics").get_data(as_text=True)
    tokens = browser.tokens()
    browser.refresh(tokens["refresh_token"])
    browser.refresh(tokens["refresh_token"])  # within the reuse interval: a retry, not reuse
    browser.post_acs("garbage")
    after = client.get("/metrics").get_data(as_text=True)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("bridge_logins_total", idp="dev", result="success") == 1
    assert delta("bridge_logins_total", idp="dev", result="refused", code="saml_malformed") == 1
    assert delta("bridge_tokens_issued_total", client="demo", grant="code") == 1
    assert delta("bridge_tokens_issued_total", client="demo", grant="refresh") == 2
    assert delta("bridge_request_duration_seconds_count", method="POST", endpoint="/token",
                 status="200") == 3
    assert 300 < _value(after, "bridge_idp_certificate_days_left", idp="dev") < 400
    assert "bridge_db_pool_connections" in after
    # The refreshes' connection went back to those kept beside the pool.
    assert _value(after, "bridge_db_pool_connections", state="kept_idle") >= 1


def test_metrics_token(database: Database, idp_dir: Path, tmp_path: Path) -> None:
    # The token is a setting (BRIDGE_METRICS_TOKEN or _FILE), read once when the app is made.
    settings = make_settings(database, idp_dir, tmp_path, metrics_token="scrape-secret-0123456789")
    bridge = build_services(settings, SystemClock())
    try:
        client = create_app(services=bridge).test_client()
        assert client.get("/metrics").status_code == 401
        # Any byte a header may carry is a wrong token like another, not a server error.
        for wrong in ("Bearer \xe9", "Bearer scrape-secret-012345678\xe9", "Bearer \xff" * 3):
            assert client.get("/metrics", headers={"Authorization": wrong}).status_code == 401
        ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-0123456789"})
        assert ok.status_code == 200
    finally:
        bridge.db.dispose()
