"""The bridge as it ships, set up as an operator sets it up: production settings in a file,
secrets in the environment, PostgreSQL, the IdP's metadata in a directory, and TLS ended by a
load balancer (nginx) in front. Used by the tests of the wheel installed without extras and of
the container image; the development IdP and the test driver stay in the test environment."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jwt
import requests

from bridge.dev.saml_idp import DevIdp
from tests.cluster import exchange_code, login, refresh, start_proxy
from tests.dev_stack import free_port
from tests.leaks import remember

CONFIG_FILE = "bridge.toml"


@dataclass
class Site:
    config_dir: Path  # holds bridge.toml; mounted at /etc/bridge in a container
    metadata_dir: Path  # the IdP's metadata file
    database_url: str
    kek: str
    bridge_port: int  # where the bridge listens (plain http, loopback)
    proxy_port: int  # the load balancer: https
    idp: DevIdp
    tmp_path: Path
    proxy: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.proxy_port}"

    @property
    def ca(self) -> str:
        return str(self.tmp_path / "nginx" / "ca.crt")

    def environment(self, config_dir: Path | str | None = None) -> dict[str, str]:
        """What a deployment gives the bridge: the settings file, the database URL and the
        key-encryption key as secrets (as deploy/kubernetes/bridge.yaml does)."""
        return {"BRIDGE_CONFIG": f"{config_dir or self.config_dir}/{CONFIG_FILE}",
                "BRIDGE_DATABASE_URL": self.database_url,
                "BRIDGE_KEY_ENCRYPTION_KEY": self.kek}

    def start_proxy(self) -> None:
        self.proxy = start_proxy(self.tmp_path, self.proxy_port, [self.bridge_port], tls=True)

    def stop_proxy(self) -> None:
        if self.proxy is not None and self.proxy.poll() is None:
            os.killpg(self.proxy.pid, signal.SIGTERM)
            self.proxy.wait(timeout=10)


def prepare_site(tmp_path: Path, database_url: str, kek: str, idp_key_dir: Path) -> Site:
    proxy_port = free_port()
    base_url = f"https://127.0.0.1:{proxy_port}"
    ca = tmp_path / "nginx" / "ca.crt"
    idp = DevIdp(base_url="http://127.0.0.1:1", state_dir=idp_key_dir,
                 sp_metadata=lambda: requests.get(base_url + "/saml/metadata", timeout=5,
                                                  verify=str(ca)).content)
    config_dir, metadata_dir = tmp_path / "etc", tmp_path / "idp_metadata"
    config_dir.mkdir()
    idp.write_metadata(metadata_dir)
    (config_dir / CONFIG_FILE).write_text(
        'env = "production"\n'
        f'base_url = "{base_url}"\n'
        "trusted_proxy_hops = 1\n"
        "[[clients]]\n"
        'client_id = "demo"\nredirect_uris = ["http://127.0.0.1:8002/callback"]\n'
        'audience = "demo-api"\n'
    )
    # A container's non-root user reads these through bind mounts.
    for path in (tmp_path, config_dir, metadata_dir):
        path.chmod(0o755)
    for path in (*config_dir.iterdir(), *metadata_dir.iterdir()):
        path.chmod(0o644)
    return Site(config_dir, metadata_dir, database_url, kek, free_port(), proxy_port, idp, tmp_path)


def login_and_refresh(site: Site) -> None:
    """Alice's whole login through the load balancer, the code exchanged, the access token
    verified against the JWKS, and a refresh: what a client and its API see."""
    browser = requests.Session()
    browser.verify = site.ca
    browser.trust_env = False  # else REQUESTS_CA_BUNDLE, when set, wins over .verify
    code, verifier, _ = login(site.base_url, site.idp, browser)
    tokens = exchange_code(site.base_url, code, verifier, verify=site.ca)
    refreshed = refresh(site.base_url, tokens["refresh_token"], verify=site.ca)
    remember(tokens["access_token"], tokens["refresh_token"], refreshed["access_token"],
             refreshed["refresh_token"])
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    keys = requests.get(site.base_url + "/.well-known/jwks.json", timeout=5,
                        verify=site.ca).json()["keys"]
    for token in (tokens["access_token"], refreshed["access_token"]):
        kid = jwt.get_unverified_header(token)["kid"]
        key = jwt.PyJWK.from_dict(next(k for k in keys if k["kid"] == kid))
        claims = jwt.decode(token, key.key, algorithms=["ES256"], audience="demo-api",
                            issuer=site.base_url)
        assert claims["idp"] == "dev" and claims["client_id"] == "demo"
    ready = requests.get(site.base_url + "/readyz", timeout=5, verify=site.ca)
    assert ready.json()["status"] == "ready", ready.text


def memory_kib(pids: list[int]) -> dict[int, tuple[int, int]]:
    """(RSS, PSS) in KiB of each process: PSS shares the pages processes share between them, so
    the PSS of all a pod's processes adds up to what they take."""
    sizes = {}
    for pid in pids:
        fields = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, _, value = line.partition(":")
            fields[name] = int(value.split()[0])
        sizes[pid] = (fields["Rss"], fields["Pss"])
    return sizes


def children(pid: int) -> list[int]:
    return [int(child) for child in
            Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
