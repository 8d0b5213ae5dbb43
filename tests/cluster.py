"""A small production-shaped cluster for tests: bridge nodes under gunicorn on one PostgreSQL
database, behind a real nginx, with the pysaml2 IdP in front, and a TCP relay in the nodes' path
to PostgreSQL that a test can cut to play a database outage."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from bridge.dev.saml_idp import USERS, DevIdp
from tests.dev_stack import free_port
from tests.helpers import pkce_pair
from tests.launch import bridge_cli, start_gunicorn, stop_process_groups, wait_until_up


class Relay:
    """Forwards a local port to PostgreSQL; ``cut()`` drops every connection and refuses new
    ones (the database "goes away"), ``restore()`` brings it back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, []
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except (OSError, ValueError):
            # cut() closes both sockets from another thread: select() then finds no file
            # descriptor (-1) and raises ValueError rather than OSError.
            return
        finally:
            a.close()
            b.close()


@dataclass
class Node:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@dataclass
class Cluster:
    proxy_url: str
    nodes: list[Node]
    idp: DevIdp
    relay: Relay
    config: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        return bridge_cli(self.env, *args)

    def login(self, browser: requests.Session, *, acs_via: str | None = None
              ) -> tuple[str, str, str]:
        """A full login through the proxy (or with the ACS post sent to one node). Returns
        (code, verifier, the SAMLResponse that was posted)."""
        return login(self.proxy_url, self.idp, browser, acs_via=acs_via)

    def tokens(self, browser: requests.Session, via: str | None = None) -> dict[str, str]:
        code, verifier, _ = self.login(browser)
        return exchange_code(via or self.proxy_url, code, verifier)

    def stop(self) -> None:
        stop_process_groups(self.processes, timeout=10)
        self.relay.cut()


DEMO_REDIRECT = "http://127.0.0.1:8002/callback"
# How long each node trusts its cached view of the token signing keys (the default is 15 s).
KEY_CACHE_SECONDS = 2


def login(bridge_url: str, idp: DevIdp, browser: requests.Session, *, acs_via: str | None = None
          ) -> tuple[str, str, str]:
    """Alice's whole login at the bridge behind ``bridge_url``, as the demo client starts it and
    her browser follows it: /authorize, the development IdP, the ACS. Returns (code, verifier,
    the SAMLResponse that was posted)."""
    verifier, challenge = pkce_pair()
    answer = browser.get(bridge_url + "/authorize", params={
        "response_type": "code", "client_id": "demo", "state": "s",
        "redirect_uri": DEMO_REDIRECT, "scope": "openid email",
        "code_challenge": challenge, "code_challenge_method": "S256",
        "idp": "dev",
    }, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    saml_request = parse_qs(urlsplit(answer.headers["Location"]).query)["SAMLRequest"][0]
    pending = idp.parse_request(saml_request, None)
    saml_response = idp.response_for(pending, USERS["alice"])
    acs = (acs_via or bridge_url) + "/saml/dev/acs"
    posted = browser.post(acs, data={"SAMLResponse": saml_response}, allow_redirects=False)
    assert posted.status_code == 302, posted.text
    code = parse_qs(urlsplit(posted.headers["Location"]).query)["code"][0]
    return code, verifier, saml_response


def exchange_code(bridge_url: str, code: str, verifier: str, *, verify: bool | str = True
                  ) -> dict[str, str]:
    answer = requests.post(bridge_url + "/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": "demo",
        "redirect_uri": DEMO_REDIRECT, "code_verifier": verifier}, timeout=10, verify=verify)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def refresh(bridge_url: str, refresh_token: str, *, verify: bool | str = True) -> dict[str, str]:
    answer = requests.post(bridge_url + "/token", data={
        "grant_type": "refresh_token", "client_id": "demo", "refresh_token": refresh_token},
        timeout=10, verify=verify)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


NGINX = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    # Kept-alive upstream connections, as docs/operations.md recommends: the nodes' threaded
    # workers then skip an accept and a fresh connection per request.
    upstream bridge {{ {servers} keepalive 16; keepalive_timeout 60s; }}
    server {{
        listen 127.0.0.1:{port}{tls};
        location / {{
            proxy_pass http://bridge;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_next_upstream error timeout http_502;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""


def tls_certificate(directory: Path) -> Path:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it, in ``directory`` as tls.crt
    and tls.key; returns the CA's file, for clients to verify with."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
              signer: ec.EllipticCurvePrivateKey, *, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   # What Python 3.13's strict verification (VERIFY_X509_STRICT) asks of a chain.
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       signer.public_key()), critical=False)
                   .add_extension(x509.KeyUsage(
                       digital_signature=not ca, key_cert_sign=ca, crl_sign=ca,
                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                       key_agreement=False, encipher_only=False, decipher_only=False),
                       critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = issue("test CA", ca_key, ca_name, ca_key, ca=True)
    leaf = issue("127.0.0.1", key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (directory / "tls.crt").write_bytes(leaf.public_bytes(pem))
    (directory / "tls.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (directory / "ca.crt").write_bytes(ca.public_bytes(pem))
    return directory / "ca.crt"


def start_proxy(tmp_path: Path, port: int, upstreams: list[int], *, tls: bool = False
                ) -> subprocess.Popen[bytes]:
    """nginx on 127.0.0.1:``port`` in front of ``upstreams``; with ``tls``, https with the
    certificate of tls_certificate(tmp_path / "nginx") (its CA: tmp_path / "nginx" / "ca.crt"),
    as a load balancer that terminates TLS."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    nginx_dir = tmp_path / "nginx"
    nginx_dir.mkdir()
    servers = " ".join(f"server 127.0.0.1:{upstream} max_fails=1 fail_timeout=5s;"
                       for upstream in upstreams)
    listen = ""
    if tls:
        tls_certificate(nginx_dir)
        listen = f" ssl; ssl_certificate {nginx_dir}/tls.crt; ssl_certificate_key {nginx_dir}/tls.key"
    (nginx_dir / "nginx.conf").write_text(NGINX.format(dir=nginx_dir, servers=servers, port=port,
                                                      tls=listen))
    log = tmp_path / "nginx.log"
    with log.open("wb") as output:
        proxy = subprocess.Popen([nginx, "-p", str(nginx_dir), "-c", str(nginx_dir / "nginx.conf"),
                                  "-g", "daemon off;"], stdout=output, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    scheme = "https" if tls else "http"
    try:
        wait_until_up(f"{scheme}://127.0.0.1:{port}", proxy, log,
                      verify=str(nginx_dir / "ca.crt") if tls else True)
    except BaseException:
        os.killpg(proxy.pid, signal.SIGKILL)
        proxy.wait()
        raise
    return proxy


def start_cluster(tmp_path: Path, database_url: str, kek: str, idp_key_dir: Path,
                  nodes: int = 2) -> Cluster:
    relay = Relay(("127.0.0.1", int(urlsplit(database_url.replace("+psycopg", "")).port or 5432)))
    relayed = re.sub(r"@127\.0\.0\.1:\d+/", f"@127.0.0.1:{relay.port}/", database_url)
    proxy_port = free_port()
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    idp = DevIdp(base_url="http://127.0.0.1:1", state_dir=idp_key_dir,
                 sp_metadata=lambda: requests.get(proxy_url + "/saml/metadata", timeout=5).content)
    metadata_dir = tmp_path / "idp_metadata"
    idp.write_metadata(metadata_dir)
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'base_url = "{proxy_url}"\n'
        f'database_url = "{relayed}"\n'
        f'idp_metadata_dir = "{metadata_dir}"\n'
        f'instance_dir = "{tmp_path / "instance"}"\n'
        "background_jobs = false\ntrusted_proxy_hops = 1\n"
        # A key rotated on one node signs on the others within this time.
        f"signing_key_cache_seconds = {KEY_CACHE_SECONDS}\n"
        'rate_limit_authorize = "100000/minute"\nrate_limit_acs = "100000/minute"\n'
        'rate_limit_token_per_client = "100000/minute"\n'
        'rate_limit_token_per_address = "100000/minute"\n'
        "[[clients]]\n"
        'client_id = "demo"\nredirect_uris = ["http://127.0.0.1:8002/callback"]\n'
        'audience = "demo-api"\nrefresh_reuse_interval_seconds = 0\n'
    )
    env = {**os.environ, "BRIDGE_CONFIG": str(config), "BRIDGE_KEY_ENCRYPTION_KEY": kek}
    cluster = Cluster(proxy_url, [], idp, relay, config, env)
    cluster.cli("db", "upgrade")
    try:
        for index in range(nodes):
            port = free_port()
            log = tmp_path / f"node{index}.log"
            process = start_gunicorn(env, port, log, workers=2, metrics_dir=tmp_path / f"metrics{index}")
            cluster.processes.append(process)
            node = Node(f"node{index}", port, process, log)
            cluster.nodes.append(node)
        for node in cluster.nodes:
            wait_until_up(node.url, node.process, node.log)
        cluster.processes.append(start_proxy(tmp_path, proxy_port, [n.port for n in cluster.nodes]))
    except BaseException:
        cluster.stop()
        raise
    return cluster
