"""Many nodes on PostgreSQL: two bridge processes (gunicorn, two workers each) behind nginx.

Proves that every piece of state lives in the database: an assertion replayed to the other node is
refused, a refresh token reused on the other node revokes the family, a rotated key verifies on
both, an IdP change made through one node is in force on the other, an Okta- or Entra-shaped SCIM
deactivation through one node ends the login on the other within 2 s. Faults: a node killed with
SIGKILL under load (the proxy routes to the other; no family is left half-rotated), and the
database cut away under load (503 with Retry-After, never 500; service resumes by itself).
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
import sqlalchemy as sa

from tests.cluster import KEY_CACHE_SECONDS, Cluster, start_cluster
from tests.conftest import TEST_KEK
from tests.databases import create_postgres_database, drop_postgres_database
from tests.provisioning.scim_shapes import (
    ENTRA_DISABLE,
    ENTRA_ENABLE,
    ENTRA_HEADERS,
    OKTA_DEACTIVATE,
    OKTA_REACTIVATE,
    entra_user,
)

# Under pytest-xdist (--dist loadgroup) one worker runs them all: their module fixture starts once.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("cluster")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    name = f"bridge_cluster_{uuid.uuid4().hex[:10]}"
    url = create_postgres_database(name)
    running = start_cluster(tmp_path_factory.mktemp("cluster"), url, TEST_KEK,
                            tmp_path_factory.mktemp("cluster-idp"))
    try:
        yield running
    finally:
        running.stop()
        drop_postgres_database(name)


def _verify(cluster: Cluster, token: str) -> dict:
    jwks = jwt.PyJWKClient(cluster.proxy_url + "/.well-known/jwks.json", cache_keys=False)
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["ES256"], audience="demo-api",
                      issuer=cluster.proxy_url)


def test_a_login_through_the_proxy(cluster: Cluster) -> None:
    tokens = cluster.tokens(requests.Session())
    assert _verify(cluster, tokens["access_token"])["idp"] == "dev"


def test_metrics_add_up_across_a_nodes_workers(cluster: Cluster) -> None:
    node = cluster.nodes[-1]
    for _ in range(6):  # spread over both workers
        requests.get(node.url + "/.well-known/jwks.json", timeout=5)
    text = requests.get(node.url + "/metrics", timeout=5).text
    line = next(line for line in text.splitlines() if line.startswith(
        'bridge_request_duration_seconds_count{endpoint="/.well-known/jwks.json",method="GET"'))
    assert float(line.rsplit(" ", 1)[1]) >= 6
    assert "bridge_idp_certificate_days_left" in text


def test_an_assertion_replayed_to_the_other_node_is_refused(cluster: Cluster) -> None:
    a, b = cluster.nodes[:2]
    browser = requests.Session()
    _, _, saml_response = cluster.login(browser, acs_via=a.url)
    replay = browser.post(b.url + "/saml/dev/acs", data={"SAMLResponse": saml_response},
                          headers={"Accept": "application/json"}, allow_redirects=False)
    assert replay.status_code == 400
    assert replay.json()["code"] == "saml_replay"


def test_a_refresh_token_reused_on_the_other_node_revokes_the_family(cluster: Cluster) -> None:
    a, b = cluster.nodes[:2]
    tokens = cluster.tokens(requests.Session(), via=a.url)
    form = {"grant_type": "refresh_token", "client_id": "demo"}
    rotated = requests.post(a.url + "/token", data={**form, "refresh_token": tokens["refresh_token"]},
                            timeout=10)
    assert rotated.status_code == 200
    reused = requests.post(b.url + "/token", data={**form, "refresh_token": tokens["refresh_token"]},
                           timeout=10)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    successor = requests.post(a.url + "/token",
                              data={**form, "refresh_token": rotated.json()["refresh_token"]},
                              timeout=10)
    assert successor.status_code == 400  # the whole family died, on every node


def test_a_key_rotated_on_one_node_verifies_on_both(cluster: Cluster) -> None:
    before = cluster.tokens(requests.Session())["access_token"]
    cluster.cli("keys", "rotate", "--now")
    time.sleep(KEY_CACHE_SECONDS + 1)  # every node's key cache expires
    fresh = {node.name: cluster.tokens(requests.Session(), via=node.url)["access_token"]
             for node in cluster.nodes}
    kids = {jwt.get_unverified_header(t)["kid"] for t in fresh.values()}
    assert len(kids) == 1 and jwt.get_unverified_header(before)["kid"] not in kids
    for token in (before, *fresh.values()):
        for node in cluster.nodes:  # every node publishes both keys
            keys = requests.get(node.url + "/.well-known/jwks.json", timeout=5).json()["keys"]
            assert jwt.get_unverified_header(token)["kid"] in {k["kid"] for k in keys}
        _verify(cluster, token)


def test_an_idp_change_through_one_node_is_in_force_on_the_other(cluster: Cluster,
                                                                 tmp_path: Path) -> None:
    from tests.test_idp_metadata import certificate, metadata

    a, b = cluster.nodes[:2]
    token = cluster.cli("admin", "create-token", "--name", "multi-node").strip().splitlines()[-1]
    created = requests.post(a.url + "/admin/api/idps", headers={"Authorization": f"Bearer {token}"},
                            json={"slug": "acme", "metadata_xml": metadata(
                                certificate(), entity_id="https://acme.example.com")}, timeout=10)
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 10
    while b"/saml/acme/acs" not in requests.get(b.url + "/saml/metadata", timeout=5).content:
        assert time.monotonic() < deadline, "the other node never saw the new IdP"
        time.sleep(0.5)


def _hammer(cluster: Cluster, stop: threading.Event, outcomes: list[int], tokens: list[str]) -> None:
    """Refresh chains through the proxy until stopped; record every status."""
    while not stop.is_set():
        try:
            answer = requests.post(cluster.proxy_url + "/token", timeout=10, data={
                "grant_type": "refresh_token", "client_id": "demo", "refresh_token": tokens[0]})
        except requests.RequestException:
            outcomes.append(-1)
            continue
        outcomes.append(answer.status_code)
        if answer.status_code == 200:
            tokens[0] = answer.json()["refresh_token"]
        elif answer.status_code == 400:
            return  # this chain is over (its rotation answer was lost when a node died)
        time.sleep(0.01)


def _scim_deactivation_ends_the_login_on_the_other_node(cluster: Cluster, deactivate: dict,
                                                        reactivate: dict) -> None:
    """Alice logs in; her IdP deactivates her over SCIM through node a; on node b her access
    token is refused by /userinfo and her refresh token by /token within 2 seconds."""
    a, b = cluster.nodes[:2]
    admin = cluster.cli("admin", "create-token", "--name", "scim").strip().splitlines()[-1]
    scim_token = requests.post(a.url + "/admin/api/idps/dev/scim-token", timeout=10,
                               headers={"Authorization": f"Bearer {admin}"}).json()["token"]
    scim = {**ENTRA_HEADERS, "Authorization": f"Bearer {scim_token}"}
    base = a.url + "/scim/v2/dev"
    found = requests.get(base + "/Users", params={"filter": 'userName eq "a1b2c3d4-0001"'},
                         headers=scim, timeout=10).json()["Resources"]
    if found:
        user_id = found[0]["id"]
    else:
        created = requests.post(base + "/Users", json=entra_user("a1b2c3d4-0001", "alice"),
                                headers=scim, timeout=10)
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
    tokens = cluster.tokens(requests.Session(), via=b.url)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(b.url + "/userinfo", headers=bearer, timeout=10).status_code == 200

    started = time.monotonic()
    answer = requests.patch(f"{base}/Users/{user_id}", json=deactivate, headers=scim, timeout=10)
    assert answer.status_code == 200 and answer.json()["active"] is False, answer.text
    while requests.get(b.url + "/userinfo", headers=bearer, timeout=10).status_code != 401:
        assert time.monotonic() - started < 2, "the login lived on on the other node"
        time.sleep(0.05)
    assert time.monotonic() - started < 2
    refreshed = requests.post(b.url + "/token", data={
        "grant_type": "refresh_token", "client_id": "demo",
        "refresh_token": tokens["refresh_token"]}, timeout=10)
    assert refreshed.status_code == 400
    assert requests.patch(f"{base}/Users/{user_id}", json=reactivate, headers=scim,
                          timeout=10).json()["active"] is True
    cluster.tokens(requests.Session(), via=b.url)  # reactivated: logins work again


def test_an_okta_shaped_scim_deactivation_ends_a_login_on_the_other_node(cluster: Cluster) -> None:
    _scim_deactivation_ends_the_login_on_the_other_node(cluster, OKTA_DEACTIVATE, OKTA_REACTIVATE)


def test_an_entra_shaped_scim_deactivation_ends_a_login_on_the_other_node(cluster: Cluster
                                                                          ) -> None:
    _scim_deactivation_ends_the_login_on_the_other_node(cluster, ENTRA_DISABLE, ENTRA_ENABLE)


# The tests below stop nodes of the shared cluster: every test that needs two runs above them.
def test_a_node_killed_under_load(cluster: Cluster) -> None:
    chains = [[cluster.tokens(requests.Session())["refresh_token"]] for _ in range(4)]
    stop = threading.Event()
    outcomes: list[list[int]] = [[] for _ in chains]
    threads = [threading.Thread(target=_hammer, args=(cluster, stop, outcomes[i], chains[i]))
               for i in range(len(chains))]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    victim = cluster.nodes.pop(0)
    victim.kill()
    killed_at = [len(o) for o in outcomes]  # per client: what each had seen before the kill
    time.sleep(2.5)
    stop.set()
    for thread in threads:
        thread.join()
    after = [status for o, k in zip(outcomes, killed_at, strict=True) for status in o[k:]]
    print(f"\nnode killed after {sum(killed_at)} refreshes; afterwards: "
          f"{dict(sorted(collections.Counter(after).items()))}")
    assert 500 not in after
    assert after.count(200) > 10, "the proxy did not route to the surviving node"
    # A fresh login still works, through the surviving node.
    cluster.tokens(requests.Session())
    _check_no_half_rotated_family(cluster)


def _check_no_half_rotated_family(cluster: Cluster) -> None:
    """Every live family has exactly one unused token: a rotation happened fully or not at all."""
    url = cluster.env["BRIDGE_CONFIG"]
    import tomllib

    with open(url, "rb") as handle:
        database_url = tomllib.load(handle)["database_url"]
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT f.id, count(t.token_hash) FILTER (WHERE t.used_at IS NULL) "
                "FROM refresh_families f JOIN refresh_tokens t ON t.family_id = f.id "
                "WHERE f.revoked_at IS NULL GROUP BY f.id")).all()
    finally:
        engine.dispose()
    assert rows and all(unused == 1 for _, unused in rows), rows


def test_the_database_cut_away_under_load(cluster: Cluster) -> None:
    tokens = cluster.tokens(requests.Session())
    cluster.relay.cut()
    try:
        statuses = set()
        for _ in range(10):
            answer = requests.post(cluster.proxy_url + "/token", timeout=15, data={
                "grant_type": "refresh_token", "client_id": "demo",
                "refresh_token": tokens["refresh_token"]})
            statuses.add(answer.status_code)
            if answer.status_code == 503:
                assert int(answer.headers["Retry-After"]) > 0
        ready = requests.get(cluster.proxy_url + "/readyz", timeout=15)
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        assert statuses == {503}, statuses
    finally:
        cluster.relay.restore()
    restored = time.monotonic()
    deadline = restored + 20
    while True:  # service resumes by itself
        answer = requests.post(cluster.proxy_url + "/token", timeout=15, data={
            "grant_type": "refresh_token", "client_id": "demo",
            "refresh_token": tokens["refresh_token"]})
        if answer.status_code == 200:
            break
        assert answer.status_code == 503 and time.monotonic() < deadline, answer.text
        time.sleep(0.5)
    print(f"\ndatabase cut: 10 of 10 refreshes answered 503 with Retry-After; first 200 "
          f"{time.monotonic() - restored:.1f} s after the database came back")
    assert requests.get(cluster.proxy_url + "/readyz", timeout=5).status_code == 200
