#!/usr/bin/env python3
"""Throughput benchmark of the bridge on this machine: one process, one thread.

Not a test: it prints figures. Every figure sits beside the raw cryptographic operation underneath
it, so the ratio says how much the bridge adds on top of the unavoidable cost.

  ACS logins/s      AssertionConsumer.complete_login (parse, shape check, xmlsec, python3-saml strict
                    validation, claims, DB writes, code) vs. one xmlsec signature verification
  python3-saml      stock OneLogin_Saml2_Response.is_valid (measured in a subprocess that never
                    imports bridge.saml.onelogin, which patches the library) vs. ours
  refreshes/s       RefreshTokenGrant.issue, chaining the rotated token, vs. one ES256 jwt.encode
  JWT verifies/s    jwt.decode (ES256, aud, iss) vs. cryptography's raw ECDSA P-256 verify
  token size        bytes of the access token issued in the login path

Run it through ``scripts/bench`` (which prepares .venv first), e.g.::

    scripts/bench
    scripts/bench --logins 500 --seconds 3
    scripts/bench --postgres postgresql+psycopg://root@127.0.0.1:5432/postgres --profile

Each login needs its own AuthnRequest and its own signed response; pysaml2 signs through the
xmlsec1 binary (tens of ms each), so responses are generated in batches *before* each timed batch
and only ``complete_login`` is timed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parent.parent
STOCK_WORKER_FLAG = "--_stock-python3-saml-worker"

BASE_URL = "https://bridge.example.com"
IDP_URL = "https://idp.example.org"
SLUG = "dev"
DEMO_REDIRECT = "http://127.0.0.1:8002/callback"
DEMO_CLIENT = {
    "client_id": "demo",
    "redirect_uris": [DEMO_REDIRECT],
    "audience": "demo-api",
    "claims_version": 1,
    "public": True,
}
SCOPE = "openid profile email groups"


def _quiet_warnings() -> None:
    # pysaml2 imports a cipher that cryptography deprecates (CFB); irrelevant here.
    warnings.filterwarnings("ignore", message=".*CFB.*")
    try:
        from cryptography.utils import CryptographyDeprecationWarning
    except ImportError:  # pragma: no cover
        return
    warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning)


# --- timing ------------------------------------------------------------------------------------


@dataclass
class Figure:
    n: int
    wall: float  # seconds, time.perf_counter
    cpu: float  # seconds, time.process_time

    @property
    def us(self) -> float:
        return self.wall / self.n * 1e6

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.n * 1e6

    @property
    def per_second(self) -> float:
        return self.n / self.wall


def time_loop(fn: Callable[[], object], *, seconds: float, min_iters: int = 5,
              warmup: int = 3) -> Figure:
    """Call ``fn`` until ``seconds`` have passed (and at least ``min_iters`` times)."""
    for _ in range(warmup):
        fn()
    n = 0
    clock = time.perf_counter
    cpu0, t0 = time.process_time(), clock()
    deadline = t0 + seconds
    while True:
        fn()
        n += 1
        if n >= min_iters and clock() >= deadline:
            break
    t1, cpu1 = clock(), time.process_time()
    return Figure(n, t1 - t0, cpu1 - cpu0)


# --- the stock python3-saml baseline (runs in a clean subprocess) ------------------------------


def stock_worker() -> None:
    """Validate one response with unpatched python3-saml; read a job on stdin, print JSON."""
    _quiet_warnings()
    job = json.load(sys.stdin)
    from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
    from onelogin.saml2.response import OneLogin_Saml2_Response
    from onelogin.saml2.settings import OneLogin_Saml2_Settings

    settings = OneLogin_Saml2_Settings({
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": job["sp_entity_id"],
            "assertionConsumerService": {"url": job["acs_url"], "binding": C.BINDING_HTTP_POST},
        },
        "idp": {
            "entityId": job["idp_entity_id"],
            "singleSignOnService": {"url": job["idp_sso_url"],
                                    "binding": C.BINDING_HTTP_REDIRECT},
            "x509cert": job["idp_cert"],
        },
        "security": {"wantAssertionsSigned": True},
    }, sp_validation_only=False)

    errors: list[str] = []

    def once() -> None:
        response = OneLogin_Saml2_Response(settings, job["b64"])
        if not response.is_valid(job["request_data"], job["request_id"]):
            errors.append(str(response.get_error()))
            raise SystemExit(json.dumps({"error": errors[-1]}))

    figure = time_loop(once, seconds=job["seconds"], min_iters=job["min_iters"])
    patched = sorted(m for m in sys.modules if m == "bridge" or m.startswith("bridge."))
    print(json.dumps({"n": figure.n, "wall": figure.wall, "cpu": figure.cpu,
                      "bridge_modules_imported": patched}))


def run_stock_worker(job: dict[str, Any]) -> Figure:
    completed = subprocess.run(  # noqa: S603 (our own interpreter and file)
        [sys.executable, os.path.abspath(__file__), STOCK_WORKER_FLAG],
        input=json.dumps(job), capture_output=True, text=True, check=False,
        cwd=tempfile.gettempdir(),  # nothing importable as ``bridge`` by accident
    )
    if completed.returncode != 0:
        raise SystemExit(f"stock python3-saml worker failed ({completed.returncode}):\n"
                         f"{completed.stdout}{completed.stderr}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    if "error" in result:
        raise SystemExit(f"stock python3-saml refused the response: {result['error']}")
    if result["bridge_modules_imported"]:
        raise SystemExit(f"stock worker imported {result['bridge_modules_imported']}")
    return Figure(result["n"], result["wall"], result["cpu"])


# --- the benchmark -----------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    from bridge.tokens.secrets_util import pkce_s256

    verifier = secrets.token_urlsafe(48)
    return verifier, pkce_s256(verifier)


@dataclass
class Prepared:
    """One login started at the bridge and answered by the IdP, not yet posted to the ACS."""

    browser_token: str
    saml_response: str
    request_id: str
    verifier: str


class Rig:
    """The bridge, its database and the development IdP, set up as tests/conftest.py does."""

    def __init__(self, workdir: Path, database_url: str) -> None:
        from bridge.application import build_application
        from bridge.clock import SystemClock
        from bridge.config import load_settings
        from bridge.dev.saml_idp import DevIdp
        from bridge.saml.sp import sp_metadata
        from bridge.services import build_services
        from bridge.store.db import Database

        database = Database(database_url)
        database.upgrade()
        database.dispose()

        idp_dir = workdir / "idp_metadata"
        holder: dict[str, Any] = {}

        def metadata() -> bytes:
            the_bridge = holder["bridge"]
            acs = [the_bridge.settings.acs_url(s) for s in sorted(the_bridge.idps)]
            return sp_metadata(the_bridge.settings.sp_entity_id, acs)

        self.idp = DevIdp(base_url=IDP_URL, state_dir=workdir / "dev-idp-keys",
                          sp_metadata=metadata)
        self.idp.write_metadata(idp_dir, slug=SLUG)
        self.settings = load_settings(environ={}, overrides={
            "base_url": BASE_URL,
            "database_url": database_url,
            "idp_metadata_dir": str(idp_dir),
            "instance_dir": str(workdir / "instance"),
            "clients": [DEMO_CLIENT],
        })
        self.clock = SystemClock()
        self.bridge = build_services(self.settings, self.clock)
        self.app = build_application(self.bridge)
        holder["bridge"] = self.bridge
        client = self.settings.client("demo")
        assert client is not None
        self.client = client

    def prepare(self) -> Prepared:
        from bridge.dev.saml_idp import USERS
        from bridge.oauth.requests import parse_authorization_request

        verifier, challenge = pkce_pair()
        request = parse_authorization_request(self.bridge.clients, {
            "response_type": "code",
            "client_id": "demo",
            "redirect_uri": DEMO_REDIRECT,
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": SCOPE,
        })
        idp = self.bridge.idps[SLUG]
        start = self.app.login.start_login(request, idp, None)
        saml_request = parse_qs(urlsplit(start.message.url).query)["SAMLRequest"][0]
        pending = self.idp.parse_request(saml_request, None)
        saml_response = self.idp.response_for(pending, USERS["alice"])
        return Prepared(start.browser_token, saml_response, pending.request_id, verifier)

    def complete(self, prepared: Prepared) -> str:
        return self.app.acs.complete_login(SLUG, prepared.saml_response, prepared.browser_token,
                                           error_id="bench")


def code_of(redirect: str) -> str:
    return parse_qs(urlsplit(redirect).query)["code"][0]


def machine_facts(rig: Rig | None) -> list[tuple[str, str]]:
    import cryptography
    import jwt
    import lxml.etree
    import sqlalchemy
    import xmlsec
    from cryptography.hazmat.backends.openssl.backend import backend

    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        affinity = str(len(os.sched_getaffinity(0)))
    except AttributeError:
        affinity = "n/a"
    try:
        from importlib.metadata import version
        onelogin_version = version("python3-saml")
        pysaml2_version = version("pysaml2")
    except Exception:  # noqa: BLE001
        onelogin_version = pysaml2_version = "?"
    facts = [
        ("python", f"{platform.python_implementation()} {platform.python_version()} "
                   f"({sys.executable})"),
        ("platform", platform.platform()),
        ("cpu", cpu_model or platform.processor() or "?"),
        ("cpu count", f"{os.cpu_count()} (usable by this process: {affinity}); "
                      "the benchmark runs in 1 thread"),
        ("libraries", f"xmlsec {getattr(xmlsec, '__version__', '?')} (libxmlsec "
                      f"{'.'.join(map(str, xmlsec.get_libxmlsec_version()))}), "  # type: ignore[attr-defined]
                      f"lxml {lxml.etree.__version__} (libxml2 "
                      f"{'.'.join(map(str, lxml.etree.LIBXML_VERSION))}), "
                      f"python3-saml {onelogin_version}, pysaml2 {pysaml2_version}, "
                      f"PyJWT {jwt.__version__}, cryptography {cryptography.__version__} "
                      f"({backend.openssl_version_text()}), SQLAlchemy {sqlalchemy.__version__}"),
    ]
    if rig is not None:
        db = rig.bridge.db
        with db.engine.connect() as connection:
            if db.dialect == "sqlite":
                server = f"SQLite {connection.exec_driver_sql('select sqlite_version()').scalar()}"
            else:
                server = str(connection.exec_driver_sql("show server_version").scalar())
                server = f"PostgreSQL {server}"
        facts.append(("database", f"{server} ({db.engine.url.render_as_string()})"))
    return facts


def print_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = {1, 2, 3, 5}

    def fmt(row: tuple[str, ...]) -> str:
        cells = [c.rjust(widths[i]) if i in numeric else c.ljust(widths[i])
                 for i, c in enumerate(row)]
        return "| " + " | ".join(cells) + " |"

    print(fmt(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(fmt(row))


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Throughput of the bridge's main operations beside the raw crypto underneath.")
    parser.add_argument("--logins", type=int, default=200,
                        help="ACS logins to time (each pre-generated and signed; default 200)")
    parser.add_argument("--batch", type=int, default=200,
                        help="logins generated then timed per batch, so assertions stay fresh "
                             "(default 200)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="seconds per time-bounded measurement (default 2)")
    parser.add_argument("--postgres", metavar="URL",
                        help="run the database parts against PostgreSQL: a URL such as "
                             "postgresql+psycopg://root@127.0.0.1:5432/postgres; a fresh database "
                             "is created on that server and dropped at the end (default: SQLite)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile complete_login over extra logins and print the top "
                             "15 entries by cumulative time")
    args = parser.parse_args()
    if args.logins < 1 or args.batch < 1 or args.seconds <= 0:
        parser.error("--logins, --batch and --seconds must be positive")

    _quiet_warnings()
    sys.path.insert(0, str(REPO))
    from tests.databases import create_database, drop_database, new_database_name

    started = time.perf_counter()

    argv0 = os.environ.get("BRIDGE_BENCH_ARGV0", sys.argv[0])
    print(f"command: {shlex.join([argv0, *sys.argv[1:]])}")

    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as tmp:
        workdir = Path(tmp)
        pg_name = None
        if args.postgres:
            pg_name = new_database_name("bridge_bench")
            database_url = create_database(args.postgres, pg_name)
        else:
            database_url = f"sqlite:///{workdir / 'bridge.db'}"
        rig = None
        try:
            rig = Rig(workdir, database_url)
            run(rig, args, started)
        finally:
            if rig is not None:
                rig.bridge.db.dispose()
            if pg_name is not None:
                drop_database(args.postgres, pg_name)


def run(rig: Rig, args: argparse.Namespace, started: float) -> None:
    import jwt
    import xmlsec
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from bridge.oauth.grants.authorization_code import AuthorizationCodeGrant
    from bridge.oauth.grants.refresh_token import RefreshTokenGrant
    from bridge.saml import onelogin
    from bridge.saml import response as saml_response
    from bridge.saml.verify import verify_signature
    from bridge.service_provider import service_provider

    for name, value in machine_facts(rig):
        print(f"{name + ':':<11}{value}")
    print()

    idp = rig.bridge.idps[SLUG]
    sp = service_provider(rig.settings, SLUG)
    max_bytes = rig.settings.max_saml_response_bytes

    # --- 1. ACS logins -----------------------------------------------------------------------
    gen0 = time.perf_counter()
    warm = [rig.prepare() for _ in range(3)]
    first_redirect = ""
    for prepared in warm:  # first call: schema compile, key load, settings build
        first_redirect = rig.complete(prepared)
    durations: list[float] = []
    wall = cpu = 0.0
    generated = len(warm)
    remaining = args.logins
    gen_wall = time.perf_counter() - gen0
    while remaining:
        g0 = time.perf_counter()
        batch = [rig.prepare() for _ in range(min(args.batch, remaining))]
        gen_wall += time.perf_counter() - g0
        generated += len(batch)
        cpu0, t0 = time.process_time(), time.perf_counter()
        for prepared in batch:
            c0 = time.perf_counter()
            rig.complete(prepared)
            durations.append(time.perf_counter() - c0)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - cpu0
        remaining -= len(batch)
    login = Figure(len(durations), wall, cpu)

    # The access token of the login path: exchange the first warm-up login's code.
    tokens = AuthorizationCodeGrant(rig.bridge).issue(rig.client, {
        "code": code_of(first_redirect), "redirect_uri": DEMO_REDIRECT,
        "code_verifier": warm[-1].verifier,
    })
    access_token = tokens.access_token

    # --- 1b. where a login's time goes, without the database (same response, repeatedly) ---
    g0 = time.perf_counter()
    sample = rig.prepare()  # never posted: stays valid for verify() and both validators
    gen_wall += time.perf_counter() - g0
    generated += 1
    received = saml_response.receive(sample.saml_response, idp=idp, clock=rig.clock,
                                     max_bytes=max_bytes)
    shape = received.shape
    f_receive = time_loop(lambda: saml_response.receive(
        sample.saml_response, idp=idp, clock=rig.clock, max_bytes=max_bytes),
        seconds=args.seconds / 2)
    f_verify = time_loop(lambda: saml_response.verify(
        received, idp=idp, sp=sp, expected_request_id=sample.request_id, clock=rig.clock),
        seconds=args.seconds / 2)

    # --- 2a. raw xmlsec verification of the signed assertion ---------------------------------
    assert shape.assertion_signature is not None
    f_xmlsec = time_loop(lambda: verify_signature(shape.assertion_signature, shape.assertion,
                                                  idp.keys, uses_sha1=shape.uses_sha1),
                         seconds=args.seconds)
    # The same with python-xmlsec alone: a fresh context, the key loaded once, no allow-list.
    key = xmlsec.Key.from_memory(idp.metadata.signing_certificates[0].pem,
                                 xmlsec.constants.KeyDataFormatCertPem)
    xmlsec.tree.add_ids(shape.assertion, ["ID"])

    def bare_verify() -> None:
        context = xmlsec.SignatureContext()  # a context verifies once
        context.key = key
        context.verify(shape.assertion_signature)

    f_xmlsec_raw = time_loop(bare_verify, seconds=args.seconds / 2)

    # --- 2b. python3-saml strict validation: ours (patched) and stock (clean subprocess) ----
    onelogin_settings = idp.onelogin_settings(sp)
    skew = idp.settings.clock_skew_seconds
    f_ours = time_loop(lambda: onelogin.strict_validate(
        onelogin_settings, sample.saml_response, acs_url=sp.acs_url,
        request_id=sample.request_id, now=rig.clock.now(), skew_seconds=skew),
        seconds=args.seconds)
    parts = urlsplit(sp.acs_url)
    f_stock = run_stock_worker({
        "sp_entity_id": sp.entity_id,
        "acs_url": sp.acs_url,
        "idp_entity_id": idp.metadata.entity_id,
        "idp_sso_url": idp.sso_url,
        "idp_cert": idp.metadata.signing_certificates[0].pem,
        "b64": sample.saml_response,
        "request_id": sample.request_id,
        "request_data": {"https": "on" if parts.scheme == "https" else "off",
                         "http_host": parts.netloc, "script_name": parts.path},
        "seconds": args.seconds,
        "min_iters": 5,
    })

    # --- 3. refreshes, chaining the rotated token, vs. one ES256 signature -------------------
    assert tokens.refresh_token is not None
    state = {"token": tokens.refresh_token}

    def refresh_once() -> None:
        rotated = RefreshTokenGrant(rig.bridge).issue(
            rig.client, {"refresh_token": state["token"]}).refresh_token
        assert rotated is not None
        state["token"] = rotated

    f_refresh = time_loop(refresh_once, seconds=args.seconds)
    contended = contended_refreshes(rig, args.seconds)
    signing = rig.bridge.keys.signing_key("ES256")
    if signing.alg != "ES256" or not isinstance(signing.private_key, ec.EllipticCurvePrivateKey):
        raise SystemExit(f"expected an ES256 signing key, the bridge signs with {signing.alg}")
    payload = jwt.decode(access_token, options={"verify_signature": False})
    headers = {"kid": signing.kid, "typ": "at+jwt"}
    f_sign = time_loop(lambda: jwt.encode(payload, signing.private_key, algorithm="ES256",
                                          headers=headers), seconds=args.seconds)

    # --- 4. JWT verification vs. raw ECDSA P-256 verify ------------------------------------
    public_key = signing.private_key.public_key()
    audience, issuer = rig.client.audience, rig.settings.base_url
    jwt.decode(access_token, public_key, audience=audience, issuer=issuer, algorithms=["ES256"])
    f_decode = time_loop(lambda: jwt.decode(access_token, public_key, audience=audience,
                                            issuer=issuer, algorithms=["ES256"]),
                         seconds=args.seconds)
    signing_input, _, sig_b64 = access_token.rpartition(".")
    raw = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    data = signing_input.encode("ascii")
    algorithm = ec.ECDSA(hashes.SHA256())
    public_key.verify(der, data, algorithm)
    f_ecdsa = time_loop(lambda: public_key.verify(der, data, algorithm), seconds=args.seconds)

    # --- report ------------------------------------------------------------------------------
    def row(name: str, f: Figure, base_name: str = "", base: Figure | None = None
            ) -> tuple[str, ...]:
        return (name, f"{f.per_second:,.0f}", f"{f.us:,.1f}", f"{f.cpu_us:,.1f}",
                f"{base_name} {base.us:,.1f} µs" if base else "—",
                f"{f.us / base.us:,.1f}×" if base else "—")

    x_name = "xmlsec verify (1 sig)"
    rows = [
        row("ACS login: AssertionConsumer.complete_login", login, x_name, f_xmlsec),
        row("  receive(): decode+parse+shape", f_receive, x_name, f_xmlsec),
        row("  verify(): 2 sigs+checks+python3-saml", f_verify, x_name, f_xmlsec),
        row("  python3-saml strict, ours (patched)", f_ours, x_name, f_xmlsec),
        row("  python3-saml is_valid, stock", f_stock, x_name, f_xmlsec),
        row("xmlsec verify, verify_signature()", f_xmlsec),
        row("xmlsec verify, bare SignatureContext", f_xmlsec_raw),
        row("token refresh: RefreshTokenGrant.issue", f_refresh, "jwt.encode ES256", f_sign),
        row(f"  {CONTENDERS} threads at once, per refresh", contended, "1 thread", f_refresh),
        row("jwt.encode ES256", f_sign),
        row("JWT verify: jwt.decode ES256", f_decode, "ECDSA P-256 verify", f_ecdsa),
        row("ECDSA P-256 verify (cryptography)", f_ecdsa),
    ]
    print_table(rows, ("operation", "per second", "µs per op", "CPU µs/op", "baseline",
                       "ratio"))
    print()
    ms = sorted(d * 1e3 for d in durations)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(p / 100 * len(ms)))]

    print(f"access token (login path): {len(access_token.encode())} bytes "
          f"(header {len(access_token.split('.')[0])}, payload {len(access_token.split('.')[1])}, "
          f"signature {len(access_token.split('.')[2])} base64url chars)")
    print_token_sizes()
    print(f"SAML response posted: {len(sample.saml_response)} bytes base64, "
          f"{len(base64.b64decode(sample.saml_response))} bytes XML; signed: Response and "
          f"Assertion")
    print(f"ACS login latency over {login.n} logins: median {statistics.median(ms):.2f} ms, "
          f"p90 {pct(90):.2f} ms, p99 {pct(99):.2f} ms, max {ms[-1]:.2f} ms; "
          f"CPU/wall {login.cpu / login.wall:.0%}"
          + (" (the rest is spent waiting, e.g. on the database server)"
             if login.cpu / login.wall < 0.95 else ""))
    db_share = login.us - f_receive.us - f_verify.us
    print(f"login split (µs): receive {f_receive.us:,.0f} + verify {f_verify.us:,.0f} "
          f"(of which python3-saml {f_ours.us:,.0f}) + database/claims/code ≈ {db_share:,.0f}")
    print(f"stock python3-saml vs ours: {f_stock.us / f_ours.us:.1f}× slower "
          f"({f_stock.us:,.0f} vs {f_ours.us:,.0f} µs)")
    print(f"pre-generation: {generated} AuthnRequests + signed responses in {gen_wall:.1f} s "
          f"({gen_wall / generated * 1e3:.0f} ms each, pysaml2 + xmlsec1), not timed")

    if args.profile:
        profile(rig, min(args.logins, 100))

    print(f"total run time: {time.perf_counter() - started:.1f} s")


CONTENDERS = 4


def contended_refreshes(rig: Rig, seconds: float) -> Figure:
    """Refreshes per second with several threads refreshing their own logins at once. On SQLite
    writers take turns (BEGIN IMMEDIATE); on PostgreSQL each locks only its family's row."""
    import threading

    from bridge.oauth.grants.authorization_code import AuthorizationCodeGrant
    from bridge.oauth.grants.refresh_token import RefreshTokenGrant

    chains = []
    for _ in range(CONTENDERS):
        prepared = rig.prepare()
        redirect = rig.complete(prepared)
        issued = AuthorizationCodeGrant(rig.bridge).issue(rig.client, {
            "code": code_of(redirect), "redirect_uri": DEMO_REDIRECT,
            "code_verifier": prepared.verifier})
        assert issued.refresh_token is not None
        chains.append(issued.refresh_token)
    counts = [0] * CONTENDERS
    stop = time.perf_counter() + seconds

    def work(index: int) -> None:
        while time.perf_counter() < stop:
            rotated = RefreshTokenGrant(rig.bridge).issue(
                rig.client, {"refresh_token": chains[index]}).refresh_token
            assert rotated is not None
            chains[index] = rotated
            counts[index] += 1

    t0, c0 = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(CONTENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Figure(sum(counts), time.perf_counter() - t0, time.process_time() - c0)


def print_token_sizes() -> None:
    """Access tokens of a reference user (name, e-mail, 20 groups mapped to 5 roles), ES256."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from bridge.claims import GroupBudget, build_claims, token_claims
    from bridge.claims.mapping import ClaimMapping, Match, RoleRule
    from bridge.claims.presets import DEFAULT
    from bridge.clock import FixedClock
    from bridge.identity import Identity
    from bridge.tokens.access import issue_access_token
    from bridge.tokens.keys import ActiveKey

    soap = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"
    user = Identity(
        subject="abcdefghijklmnopqrstuvwxyz234567", idp_slug="corp",
        idp_entity_id="https://idp.example.com",
        attributes={f"{soap}/emailaddress": ("alice.andersen@example.com",),
                    "http://schemas.microsoft.com/identity/claims/displayname": ("Alice Andersen",),
                    f"{soap}/givenname": ("Alice",), f"{soap}/surname": ("Andersen",),
                    "http://schemas.xmlsoap.org/claims/Group":
                        tuple(f"app-group-{i:02d}" for i in range(20))},
        auth_time=1_800_000_000,
        authn_context_class="urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
    mapping = ClaimMapping(claims=DEFAULT.claims, roles=tuple(
        RoleRule(Match("exact", f"app-group-{i:02d}"), f"role-{i // 4}")
        for i in range(20)))
    key = ActiveKey("kid-2026-01", "ES256", ec.generate_private_key(ec.SECP256R1()))

    def size(version: int, scope: str) -> int:
        claims = token_claims(build_claims(version, user, mapping), scope, GroupBudget())
        token = issue_access_token(claims, issuer="https://sso.example.com",
                                   audience="https://api.example.com", client_id="web-app",
                                   auth_time=1_800_000_000, scope=scope, ttl=600, key=key,
                                   clock=FixedClock(1_800_000_100),
                                   login="0123456789abcdef0123456789abcdef")  # jti names it
        return len(token)

    print("reference access tokens (name, e-mail, 20 groups -> 5 roles; ES256): "
          f"v2 scope 'openid profile email' {size(2, 'openid profile email')} bytes "
          f"(target <= 1024), v2 with 'groups' {size(2, 'openid profile email groups')} bytes, "
          f"v2 no personal scopes {size(2, '')} bytes, v1 {size(1, 'openid profile email')} bytes")


def profile(rig: Rig, n: int) -> None:
    import cProfile
    import io
    import pstats

    batch = [rig.prepare() for _ in range(n)]
    profiler = cProfile.Profile()
    profiler.enable()
    for prepared in batch:
        rig.complete(prepared)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(15)
    verifies = sum(v[1] for k, v in stats.stats.items()  # type: ignore[attr-defined]
                   if k[2] == "<method 'verify' of 'xmlsec.SignatureContext' objects>")
    print()
    print(f"cProfile of complete_login over {n} logins (top 15 by cumulative time; profiling "
          f"overhead inflates Python-heavy parts):")
    text = out.getvalue()
    start = text.find("   ncalls")
    print(text[start:].rstrip() if start >= 0 else text.rstrip())
    print(f"xmlsec signature verifications per login: {verifies / n:g}")


if __name__ == "__main__":
    if sys.argv[1:] == [STOCK_WORKER_FLAG]:
        stock_worker()
    else:
        main()
