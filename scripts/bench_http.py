#!/usr/bin/env python3
"""HTTP-level benchmark of the bridge as deployed: gunicorn, two gthread workers, on this machine.

Not a test: it prints figures. The steady figure is the *server* CPU time per operation: the
utime+stime of the gunicorn workers (``/proc/<pid>/stat``) over a batch, divided by the number of
operations in it. Wall rates and latencies stand beside it; the load generator runs in this
process, on the same cores, so wall figures include its share of the machine.

  login             POST /saml/dev/acs (SAMLResponse + the login cookie) then POST /token
                    (authorization_code + PKCE); AuthnRequests (GET /authorize) and the signed
                    responses (pysaml2 + xmlsec1) are made in batches before each timed batch
  baselines         stock python3-saml ``is_valid`` (strict) and pysaml2's
                    ``parse_authn_request_response``, each in a subprocess that never imports
                    ``bridge`` (``bridge.saml.onelogin`` patches python3-saml); the stock one in
                    turns with the batches of logins
  refresh           POST /token grant_type=refresh_token chaining the successor; the peak rate
                    with 4 client threads, and latency at half that peak from an open-loop sender
                    (one thread, a fixed schedule, latency counted from the scheduled send time)
  GET /healthz      the trivial endpoint under the same server: the floor of a request's cost
                    (one client each, a refresh and /healthz take turns: see ``alternating``)
  RSS               VmRSS of each worker after all runs

Run it through ``scripts/bench --http`` (which prepares .venv first), e.g.::

    scripts/bench --http
    scripts/bench --http --postgres postgresql+psycopg://root@127.0.0.1:5432/postgres
    scripts/bench --http --logins 400 --seconds 6

Everything it starts (gunicorn, a temporary directory, the PostgreSQL database) is removed at the
end, also on Ctrl-C and on errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

# scripts/bench.py imports nothing of bridge at import time (checked: only the standard library),
# so its stock python3-saml worker and helpers can be shared.
from bench import Figure, _quiet_warnings, pkce_pair, run_stock_worker, time_loop

REPO = Path(__file__).resolve().parent.parent
PYSAML2_WORKER_FLAG = "--_pysaml2-worker"

WORKERS = 2
SLUG = "dev"
CLIENT_ID = "demo"
REDIRECT = "http://127.0.0.1:8002/callback"
SCOPE = "openid profile email groups"
IDP_URL = "http://127.0.0.1:1"  # the dev IdP is only a library here; nothing listens there
LOGIN_COOKIE = "bridge-login"  # the login cookie's name on plain-http loopback
CONTENDERS = 4
# The peak login rate is the median of this many rounds, each on fresh connections: which worker
# accepts each of the few connections is the kernel's draw, and now and then one worker takes
# them all while the other idles (a proxy's larger pool evens that out).
PEAK_ROUNDS = 5
# Turns each of a refresh and /healthz takes, alternating, in their one-client measurement: a
# turn still spans about a hundred ticks of the CPU clock read from /proc (10 ms each).
ALTERNATIONS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- /proc -------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat from field 3 (state) on; the name may hold spaces."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def children_of(pid: int) -> list[int]:
    kids: set[int] = set()
    found_file = False
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        found_file = True
        with contextlib.suppress(OSError):
            kids.update(int(k) for k in children.read_text().split())
    if not found_file:  # kernels without CONFIG_PROC_CHILDREN: scan every process's parent
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if int(_stat_fields(int(entry.name))[1]) == pid:
                        kids.add(int(entry.name))
    return sorted(kids)


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), or None if it is gone."""
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def status_kb(pid: int, key: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


class CpuMeter:
    """CPU seconds spent by a changing set of processes between ``start()`` and ``stop()``."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.before: dict[int, float] = {}
        self.changes = 0

    def _snapshot(self) -> dict[int, float]:
        values = {pid: cpu_seconds(pid) for pid in self.pids()}
        return {pid: v for pid, v in values.items() if v is not None}

    def start(self) -> None:
        self.before = self._snapshot()

    def stop(self) -> float:
        after = self._snapshot()
        if set(after) != set(self.before):
            self.changes += 1  # a worker restarted, or a new database connection: reported
        return sum(v - self.before.get(pid, 0.0) for pid, v in after.items())


# --- the server under test ---------------------------------------------------------------------


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        return children_of(self.process.pid)

    def stop(self) -> None:
        from tests.launch import stop_process_groups

        stop_process_groups([self.process], timeout=15)


def write_config(workdir: Path, port: int, database_url: str, metadata_dir: Path) -> Path:
    rate = '"1000000/minute"'
    config = workdir / "bridge.toml"
    config.write_text(
        f'base_url = "http://127.0.0.1:{port}"\n'
        f'database_url = "{database_url}"\n'
        f'idp_metadata_dir = "{metadata_dir}"\n'
        f'instance_dir = "{workdir / "instance"}"\n'
        "background_jobs = false\n"
        f"rate_limit_authorize = {rate}\nrate_limit_acs = {rate}\n"
        f"rate_limit_token_per_client = {rate}\nrate_limit_token_per_address = {rate}\n"
        "[[clients]]\n"
        f'client_id = "{CLIENT_ID}"\n'
        f'redirect_uris = ["{REDIRECT}"]\n'
        'audience = "demo-api"\n'
        "claims_version = 1\n"
        "public = true\n"
        "refresh_reuse_interval_seconds = 0\n"
    )
    return config


def start_server(workdir: Path, port: int, config: Path, kek: str,
                 gunicorn_env: dict[str, str] | None = None, code: Path = REPO) -> Server:
    """The bridge under gunicorn; ``code``: the tree whose ``bridge`` package it runs (this
    checkout, or another commit's for ``scripts/bench --http --against``)."""
    from tests.launch import bridge_cli, start_gunicorn, wait_until_up

    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update({"BRIDGE_CONFIG": str(config), "BRIDGE_KEY_ENCRYPTION_KEY": kek,
                **(gunicorn_env or {})})
    try:
        bridge_cli(env, "db", "upgrade", code=code)
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"bridge db upgrade failed:\n{error.stdout}{error.stderr}") from None
    log = workdir / "gunicorn.log"
    # As the Docker image runs it, multiprocess metrics included.
    process = start_gunicorn(env, port, log, workers=WORKERS, metrics_dir=workdir / "metrics",
                             code=code)
    server = Server(port, process, log, env)
    try:
        deadline = time.monotonic() + 60
        wait_until_up(server.base_url, process, log, timeout=60)
        # Measurements start with every worker forked.
        while len(server.workers()) != WORKERS:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gunicorn did not start {WORKERS} workers:\n"
                                     f"{log.read_text()[-3000:]}")
            time.sleep(0.2)
        return server
    except AssertionError as error:
        server.stop()
        raise SystemExit(str(error)) from None
    except BaseException:
        server.stop()
        raise


# --- a small HTTP client -----------------------------------------------------------------------


class Headers:
    """A response's header fields, looked up by name whatever its case."""

    def __init__(self, block: bytes) -> None:
        self.fields: list[tuple[str, str]] = []
        for line in block.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            self.fields.append((name.strip().lower(), value.strip()))

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.fields if key == name]

    def get(self, name: str) -> str | None:
        found = self.get_all(name)
        return found[0] if found else None

    def __getitem__(self, name: str) -> str:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found


class Client:
    """One client connection, kept alive when the server allows it (as a proxy's upstream pool
    does). gunicorn's sync workers close every connection after the response, so against them a
    new TCP connection is opened for each request; threaded workers keep it.

    It sends the bytes ``http.client`` sends (the same header fields in the same order, so the
    server's work is the same), over a plain socket, and reads an answer by its Content-Length
    or its chunks. ``http.client`` cost the load generator, on the cores the server shares,
    about twice as much CPU per request: it parses each answer's header with the e-mail
    package."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}".encode()
        self.sock: socket.socket | None = None
        self.buffer = b""

    def request(self, method: str, path: str, form: dict[str, str] | str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Headers, bytes]:
        """``form``: the fields, or the body already URL-encoded."""
        lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self.host,
                 b"Accept-Encoding: identity"]
        body = b""
        if form is not None:
            body = (form if isinstance(form, str) else urlencode(form)).encode("latin-1")
            lines.append(b"Content-Length: %d" % len(body))
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}".encode("latin-1"))
        if form is not None:
            lines.append(b"Content-Type: application/x-www-form-urlencoded")
        message = b"\r\n".join(lines) + b"\r\n\r\n" + body
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        try:
            self.sock.sendall(message)
            return self._response()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _more(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-answer")
        self.buffer += chunk

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._more()
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._more()
        line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
        return line

    def _response(self) -> tuple[int, Headers, bytes]:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._more()
        head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
        status_line, _, block = head.partition(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers = Headers(block)
        length = headers.get("Content-Length")
        if length is not None:
            body = self._take(int(length))
        elif (headers.get("Transfer-Encoding") or "").lower() == "chunked":
            parts = []
            while size := int(self._line().split(b";", 1)[0], 16):
                parts.append(self._take(size))
                self._take(2)
            while self._line():  # trailer fields, then the empty line
                pass
            body = b"".join(parts)
        else:
            raise SystemExit(f"an answer without Content-Length or chunks: {head[:300]!r}")
        if (headers.get("Connection") or "").lower() == "close":
            self.close()
        return status, headers, body


def expect(status: int, wanted: int, what: str, body: bytes) -> None:
    if status != wanted:
        # The error page's stable code and sentence, or the body: the page is mostly style.
        code = re.search(rb'id="error-code">([^<]*)<', body)
        detail = re.search(rb"<h1>Sign-in failed</h1>\s*<p>([^<]*)</p>", body)
        said = (f"{code.group(1).decode()}: {detail.group(1).decode() if detail else ''}" if code
                else repr(body[:500]))
        raise SystemExit(f"{what}: HTTP {status}, expected {wanted}: {said}")


def cookie_value(headers: Headers, name: str) -> str:
    for header in headers.get_all("Set-Cookie") or []:
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    raise SystemExit(f"no {name} cookie in {headers.get_all('Set-Cookie')}")


@dataclass
class Prepared:
    """A login started at the bridge and answered by the IdP, not yet posted to the ACS. The
    form body is encoded here, with the signing, outside the timed windows: URL-encoding 10 kB
    of base64 in Python costs about 1 ms, a third of what the load generator spent on a login,
    on the cores the server shares (a browser encodes its form for itself)."""

    cookie: str
    saml_response: str
    acs_form: str
    request_id: str
    verifier: str


@dataclass
class Bench:
    server: Server
    idp: Any  # bridge.dev.saml_idp.DevIdp
    client: Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = Client(self.server.port)

    def prepare(self) -> Prepared:
        from bridge.dev.saml_idp import USERS

        verifier, challenge = pkce_pair()
        query = urlencode({"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT,
                           "state": "bench", "scope": SCOPE, "code_challenge": challenge,
                           "code_challenge_method": "S256", "idp": SLUG})
        status, headers, body = self.client.request("GET", "/authorize?" + query)
        expect(status, 302, "GET /authorize", body)
        location = headers["Location"]
        saml_request = parse_qs(urlsplit(location).query)["SAMLRequest"][0]
        pending = self.idp.parse_request(saml_request, None)
        saml_response = self.idp.response_for(pending, USERS["alice"])
        return Prepared(cookie_value(headers, LOGIN_COOKIE), saml_response,
                        urlencode({"SAMLResponse": saml_response}), pending.request_id, verifier)


def post_acs(client: Client, prepared: Prepared) -> str:
    status, headers, body = client.request(
        "POST", f"/saml/{SLUG}/acs", prepared.acs_form,
        {"Cookie": f"{LOGIN_COOKIE}={prepared.cookie}"})
    expect(status, 302, "POST /saml/dev/acs", body)
    return parse_qs(urlsplit(headers["Location"]).query)["code"][0]


def post_code(client: Client, code: str, verifier: str) -> str:
    status, _, body = client.request("POST", "/token", {
        "grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT, "code_verifier": verifier})
    expect(status, 200, "POST /token (authorization_code)", body)
    return str(json.loads(body)["refresh_token"])


def post_refresh(client: Client, token: str) -> str:
    status, _, body = client.request("POST", "/token", {
        "grant_type": "refresh_token", "refresh_token": token, "client_id": CLIENT_ID})
    expect(status, 200, "POST /token (refresh_token)", body)
    return str(json.loads(body)["refresh_token"])


def get_healthz(client: Client) -> None:
    status, _, body = client.request("GET", "/healthz")
    expect(status, 200, "GET /healthz", body)


# --- measurements ------------------------------------------------------------------------------


@dataclass
class Measured:
    n: int = 0
    wall: float = 0.0
    server_cpu: float = 0.0  # the gunicorn workers
    client_cpu: float = 0.0  # this process (the load generator)
    db_cpu: float | None = None  # PostgreSQL backends of the bench database
    latencies: list[float] = field(default_factory=list)  # seconds
    note: str = ""

    def add(self, other: Measured) -> None:
        self.n += other.n
        self.wall += other.wall
        self.server_cpu += other.server_cpu
        self.client_cpu += other.client_cpu
        if other.db_cpu is not None:
            self.db_cpu = (self.db_cpu or 0.0) + other.db_cpu
        self.latencies += other.latencies

    @property
    def per_second(self) -> float:
        return self.n / self.wall if self.wall else 0.0

    @property
    def cpu_us(self) -> float:
        return self.server_cpu / self.n * 1e6

    @property
    def db_us(self) -> float | None:
        return None if self.db_cpu is None else self.db_cpu / self.n * 1e6

    def pct(self, p: float) -> float:
        ms = sorted(d * 1e3 for d in self.latencies)
        return ms[min(len(ms) - 1, int(p / 100 * len(ms)))] if ms else float("nan")


class Meters:
    def __init__(self, server: Server, db_backends: Callable[[], list[int]] | None) -> None:
        self.server = CpuMeter(server.workers)
        self.db = CpuMeter(db_backends) if db_backends else None

    @contextlib.contextmanager
    def window(self, into: Measured) -> Iterator[None]:
        if self.db:
            self.db.start()
        self.server.start()
        cpu0, t0 = time.process_time(), time.perf_counter()
        yield
        t1, cpu1 = time.perf_counter(), time.process_time()
        into.server_cpu += self.server.stop()
        if self.db:
            into.db_cpu = (into.db_cpu or 0.0) + self.db.stop()
        into.wall += t1 - t0
        into.client_cpu += cpu1 - cpu0


def run_logins(bench: Bench, meters: Meters, total: int, batch_size: int,
               between: Callable[[], None] = lambda: None,
               ) -> tuple[Measured, Measured, Measured, list[str], float, int]:
    """Logins in batches: make the batch (untimed), post every ACS (one window), exchange every
    code (a second window), then call ``between`` (a turn of the baseline). Returns (login,
    acs, token, refresh tokens, generation s, made)."""
    acs, token = Measured(), Measured()
    login_latencies: list[float] = []
    refresh_tokens: list[str] = []
    gen_wall, made, remaining = 0.0, 0, total
    while remaining:
        g0 = time.perf_counter()
        batch = [bench.prepare() for _ in range(min(batch_size, remaining))]
        gen_wall += time.perf_counter() - g0
        made += len(batch)
        codes: list[str] = []
        acs_lat: list[float] = []
        window = Measured(n=len(batch))
        with meters.window(window):
            for prepared in batch:
                t0 = time.perf_counter()
                codes.append(post_acs(bench.client, prepared))
                acs_lat.append(time.perf_counter() - t0)
        window.latencies = acs_lat
        acs.add(window)
        tok_lat: list[float] = []
        window = Measured(n=len(batch))
        with meters.window(window):
            for prepared, code in zip(batch, codes, strict=True):
                t0 = time.perf_counter()
                refresh_tokens.append(post_code(bench.client, code, prepared.verifier))
                tok_lat.append(time.perf_counter() - t0)
        window.latencies = tok_lat
        token.add(window)
        login_latencies += [a + b for a, b in zip(acs_lat, tok_lat, strict=True)]
        remaining -= len(batch)
        between()
    login = Measured()
    login.add(acs)
    login.add(token)
    login.n = acs.n
    login.latencies = login_latencies
    return login, acs, token, refresh_tokens, gen_wall, made


def concurrent_logins(meters: Meters, port: int, batch: list[Prepared]) -> Measured:
    """CONTENDERS clients log in at once (ACS then code exchange), each on a connection of its
    own, taking prepared responses from one queue until it is empty: the login rate of the server
    on this machine. ``note`` says how the workers shared the work."""
    queue = deque(batch)
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(CONTENDERS + 1)

    def work() -> None:
        client = Client(port)
        try:
            barrier.wait()
            while True:
                with lock:
                    if not queue:
                        return
                    prepared = queue.popleft()
                t0 = time.perf_counter()
                post_code(client, post_acs(client, prepared), prepared.verifier)
                latencies.append(time.perf_counter() - t0)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(CONTENDERS)]
    for thread in threads:
        thread.start()
    measured = Measured(n=len(batch))
    workers = meters.server.pids()
    before = [cpu_seconds(pid) or 0.0 for pid in workers]
    with meters.window(measured):
        barrier.wait()
        for thread in threads:
            thread.join()
    after = [cpu_seconds(pid) or 0.0 for pid in workers]
    if errors:
        raise SystemExit(f"a login client failed: {errors[0]!r}")
    measured.latencies = latencies
    shares = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(shares) or 1.0
    measured.note = "/".join(f"{100 * share / total:.0f}" for share in shares)
    return measured


def peak_logins(bench: Bench, meters: Meters, per_round: int
                ) -> tuple[Measured, list[Measured], float, int]:
    """The steady peak login rate: a round to warm up what concurrency adds (each worker's
    threads and database connections, which one client never needed), then PEAK_ROUNDS timed
    rounds. Returns the round of the median rate, all of them, and the seconds and number of
    logins made before the rounds (untimed)."""
    gen_wall, made = 0.0, 0

    def make(n: int) -> list[Prepared]:
        nonlocal gen_wall, made
        g0 = time.perf_counter()
        batch = [bench.prepare() for _ in range(n)]
        gen_wall += time.perf_counter() - g0
        made += n
        return batch

    concurrent_logins(meters, bench.server.port, make(2 * CONTENDERS))
    rounds = [concurrent_logins(meters, bench.server.port, make(per_round))
              for _ in range(PEAK_ROUNDS)]
    by_rate = sorted(rounds, key=lambda m: m.per_second)
    return by_rate[len(by_rate) // 2], rounds, gen_wall, made


def closed_loop(meters: Meters, port: int, seconds: float, ops: list[Callable[[Client], None]]
                ) -> Measured:
    """len(ops) threads, each calling its op back to back over its own connection."""
    measured = Measured()
    counts = [0] * len(ops)
    latencies: list[list[float]] = [[] for _ in ops]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(ops) + 1)
    stop = [0.0]

    def work(index: int) -> None:
        client = Client(port)
        try:
            barrier.wait()
            while time.perf_counter() < stop[0]:
                t0 = time.perf_counter()
                ops[index](client)
                latencies[index].append(time.perf_counter() - t0)
                counts[index] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(ops))]
    for thread in threads:
        thread.start()
    with meters.window(measured):
        stop[0] = time.perf_counter() + seconds
        barrier.wait()
        for thread in threads:
            thread.join()
    if errors:
        raise SystemExit(f"a client thread failed: {errors[0]!r}")
    measured.n = sum(counts)
    measured.latencies = [d for per in latencies for d in per]
    return measured


def one_thread(meters: Meters, port: int, seconds: float, op: Callable[[Client], None],
               warmup: int = 20) -> Measured:
    client = Client(port)
    for _ in range(warmup):
        op(client)
    return closed_loop(meters, port, seconds, [op])


def alternating(meters: Meters, port: int, seconds: float, ops: list[Callable[[Client], None]],
                rounds: int = ALTERNATIONS) -> list[Measured]:
    """Each op in one thread for ``seconds`` in all, taken in turns of ``seconds / rounds``: a
    ratio between them then compares the same stretches of the machine's time. On a shared
    machine the CPU a request costs drifts by a third within minutes (other tenants, frequency),
    which back-to-back windows read as a difference between the ops."""
    clients = [Client(port) for _ in ops]
    for op, client in zip(ops, clients, strict=True):
        for _ in range(20):  # warm-up
            op(client)
    totals = [Measured() for _ in ops]
    for _ in range(rounds):
        for op, client, total in zip(ops, clients, totals, strict=True):
            total.add(_timed_turn(meters, seconds / rounds, op, client))
    return totals


def _timed_turn(meters: Meters, seconds: float, op: Callable[[Client], None], client: Client
                ) -> Measured:
    measured = Measured()
    with meters.window(measured):
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            op(client)
            measured.latencies.append(time.perf_counter() - t0)
            measured.n += 1
    return measured


class Chain:
    """A refresh family: each refresh presents the latest token and keeps the successor."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, client: Client) -> None:
        self.token = post_refresh(client, self.token)


def open_loop(meters: Meters, port: int, tokens: list[str], rate: float, seconds: float
              ) -> tuple[Measured, dict[str, Any]]:
    """One thread sends refreshes on a fixed schedule (``rate`` per second), each on a new
    non-blocking connection, whatever is still in flight; latency is measured from the scheduled
    send time, so a late send counts against the server (no coordinated omission). Each family
    has at most one refresh in flight; a send waits for a free family (counted). ``tokens`` is
    updated in place: each family's latest token."""
    chains = tokens
    idle = deque(range(len(chains)))
    total = max(1, round(rate * seconds))
    interval = 1.0 / rate
    sel = selectors.DefaultSelector()
    latencies: list[float] = []
    errors: dict[int, int] = {}
    backlog: deque[float] = deque()
    info: dict[str, Any] = {"scheduled": total, "waited_for_family": 0, "max_in_flight": 0, "late_sends": 0}
    host = f"127.0.0.1:{port}"

    def request_bytes(token: str) -> bytes:
        body = urlencode({"grant_type": "refresh_token", "refresh_token": token,
                          "client_id": CLIENT_ID}).encode()
        head = (f"POST /token HTTP/1.1\r\nHost: {host}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        return head + body

    measured = Measured()
    sent = 0
    last_done = 0.0
    with meters.window(measured):
        start = time.perf_counter() + 0.01
        deadline = start + seconds + 60
        try:
            while sent < total or backlog or sel.get_map():
                now = time.perf_counter()
                if now > deadline:
                    raise SystemExit("open-loop run did not finish within 60 s of its schedule")
                while sent < total and start + sent * interval <= now:
                    backlog.append(start + sent * interval)
                    sent += 1
                if backlog and not idle:
                    info["waited_for_family"] += 1
                while backlog and idle:
                    scheduled = backlog.popleft()
                    if time.perf_counter() - scheduled > 0.001:
                        info["late_sends"] += 1
                    k = idle.popleft()
                    sock = socket.create_connection(("127.0.0.1", port))
                    sock.sendall(request_bytes(chains[k]))
                    sock.setblocking(False)
                    sel.register(sock, selectors.EVENT_READ, (k, scheduled, bytearray()))
                info["max_in_flight"] = max(info["max_in_flight"], len(sel.get_map()))
                if backlog and not idle:
                    wait = 1.0  # only a response can free a family: block for one
                elif sent < total:
                    wait = max(0.0, start + sent * interval - time.perf_counter())
                else:
                    wait = 1.0
                if not sel.get_map():
                    time.sleep(wait)
                    continue
                for key, _ in sel.select(wait):
                    conn = key.fileobj
                    assert isinstance(conn, socket.socket)
                    k, scheduled, buf = key.data
                    try:
                        chunk = conn.recv(65536)
                    except BlockingIOError:
                        continue
                    if chunk:
                        buf += chunk
                        continue
                    done = time.perf_counter()
                    sel.unregister(conn)
                    conn.close()
                    latencies.append(done - scheduled)
                    last_done = done
                    head, _, body = bytes(buf).partition(b"\r\n\r\n")
                    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
                    if status == 200:
                        chains[k] = str(json.loads(body)["refresh_token"])
                        idle.append(k)
                    else:  # the family is in doubt: not used again
                        errors[status] = errors.get(status, 0) + 1
        finally:
            for key in list(sel.get_map().values()):
                sel.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
            sel.close()
    measured.n = len(latencies)
    measured.latencies = latencies
    info["achieved_rate"] = measured.n / (last_done - start) if last_done > start else 0.0
    info["errors"] = errors
    return measured, info


# --- the baselines' subprocesses ---------------------------------------------------------------


def pysaml2_worker() -> None:
    """Validate one response with pysaml2 as an SP would; read a job on stdin, print JSON."""
    _quiet_warnings()
    import logging

    logging.disable(logging.CRITICAL)
    job = json.load(sys.stdin)
    from saml2 import BINDING_HTTP_POST
    from saml2.client import Saml2Client
    from saml2.config import SPConfig

    config = SPConfig()
    config.load({
        "entityid": job["sp_entity_id"],
        "service": {"sp": {
            "endpoints": {"assertion_consumer_service": [(job["acs_url"], BINDING_HTTP_POST)]},
            "want_response_signed": True,
            "want_assertions_signed": True,
            "allow_unsolicited": False,
            "authn_requests_signed": False,
        }},
        "metadata": {"inline": [job["idp_metadata"]]},
        "xmlsec_binary": job["xmlsec_binary"],
        "accepted_time_diff": 60,
    })
    client = Saml2Client(config=config)

    def once() -> None:
        response = client.parse_authn_request_response(
            job["b64"], BINDING_HTTP_POST, outstanding={job["request_id"]: "/"})
        if response is None or response.came_from != "/" or not response.assertion:
            raise SystemExit(json.dumps({"error": f"pysaml2 did not accept it: {response!r}"}))

    once()  # pysaml2 keeps no replay cache: the same response validates again and again
    children0 = os.times()
    figure = time_loop(once, seconds=job["seconds"], min_iters=job["min_iters"], warmup=1)
    children1 = os.times()
    child_cpu = (children1.children_user - children0.children_user
                 + children1.children_system - children0.children_system)
    imported = sorted(m for m in sys.modules if m == "bridge" or m.startswith("bridge."))
    print(json.dumps({"n": figure.n, "wall": figure.wall, "cpu": figure.cpu,
                      "child_cpu": child_cpu,
                      "crypto": str(getattr(config, "crypto_backend", None) or "xmlsec1"),
                      "bridge_modules_imported": imported}))


def run_pysaml2_worker(job: dict[str, Any]) -> tuple[Figure, float, str]:
    completed = subprocess.run(  # noqa: S603 (our own interpreter and file)
        [sys.executable, os.path.abspath(__file__), PYSAML2_WORKER_FLAG],
        input=json.dumps(job), capture_output=True, text=True, check=False,
        cwd=tempfile.gettempdir())
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise SystemExit(f"pysaml2 worker failed ({completed.returncode}):\n"
                         f"{completed.stdout}{completed.stderr[-3000:]}")
    result = json.loads(lines[-1])
    if "error" in result:
        raise SystemExit(f"pysaml2 refused the response: {result['error']}")
    if result["bridge_modules_imported"]:
        raise SystemExit(f"pysaml2 worker imported {result['bridge_modules_imported']}")
    return Figure(result["n"], result["wall"], result["cpu"]), result["child_cpu"], result["crypto"]


# --- PostgreSQL --------------------------------------------------------------------------------


def postgres_backends(admin_url: str, name: str) -> tuple[Callable[[], list[int]], Callable[[], None]]:
    """A function listing the server processes connected to database ``name`` (to read their CPU
    from /proc: the server runs on this machine), and one to close the admin connection."""
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1)

    def pids() -> list[int]:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("select pid from pg_stat_activity where datname = :name"), {"name": name})
            return [int(r[0]) for r in rows]

    return pids, engine.dispose


def postgres_version(admin_url: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url)
    try:
        with engine.connect() as connection:
            return "PostgreSQL " + str(connection.exec_driver_sql("show server_version").scalar())
    finally:
        engine.dispose()


# --- report ------------------------------------------------------------------------------------


def print_paired_header(command: str, postgres: str | None, per: str) -> None:
    """The command and the machine's facts, for a run of two servers at once."""
    print(f"command: {command}".rstrip())
    database = "PostgreSQL" if postgres else "SQLite"
    for name, value in machine_facts(f"{database}, one database per {per}"):
        if name not in ("server", "client"):
            print(f"{name + ':':<11}{value}")


def fresh_database(workdir: Path, postgres: str | None, made: list[str]) -> str:
    """A database for one of several servers: on PostgreSQL a fresh one created through the
    admin URL ``postgres`` (its name added to ``made``, to drop at the end), else a SQLite file
    in ``workdir``."""
    if not postgres:
        return f"sqlite:///{workdir / 'bridge.db'}"
    from tests.databases import create_database, new_database_name

    made.append(new_database_name("bridge_bench"))
    return create_database(postgres, made[-1])


def tear_down(servers: Iterable[Server], postgres: str | None, databases: list[str],
              tmp: Path | str) -> None:
    """Stop the servers of a paired run, drop the databases ``fresh_database`` made for them and
    remove their directory."""
    from tests.databases import drop_database

    for server in servers:
        server.stop()
    for name in databases:
        assert postgres is not None  # only PostgreSQL's are named here
        drop_database(postgres, name)
    shutil.rmtree(tmp, ignore_errors=True)


def per_round_quotients(measures: Iterable[str], first: list[dict[str, float]],
                        second: list[dict[str, float]]) -> dict[str, float]:
    """Each measure's median over the rounds of second ÷ first in the same round: what two
    servers measured in turns compare as (the machine's state in a round falls on both)."""
    return {m: statistics.median(b[m] / a[m] for a, b in zip(first, second, strict=True))
            for m in measures}


def paired_table(measures: Iterable[str], first: tuple[str, list[dict[str, float]]],
                 second: tuple[str, list[dict[str, float]]], quotient: str, note: str) -> str:
    """Two servers' rounds side by side: each measure's median and range over the rounds, and
    the median of the per-round quotients (``quotient`` names it: second ÷ first)."""
    (name_a, rounds_a), (name_b, rounds_b) = first, second
    measures = list(measures)
    paired = per_round_quotients(measures, rounds_a, rounds_b)

    def cell(values: list[float]) -> str:
        if max(values) >= 10:
            return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"
        return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"

    lines = [f"{'median over ' + str(len(rounds_a)) + ' rounds':<28}{name_a:>26}{name_b:>26}"
             f"{quotient:>16}"]
    for m in measures:
        lines.append(f"{m:<28}{cell([r[m] for r in rounds_a]):>26}"
                     f"{cell([r[m] for r in rounds_b]):>26}{paired[m]:>15.3f}×")
    lines.append(f"  {note}; in parentheses the range over the rounds; {quotient} is the median "
                 "of the per-round quotients")
    return "\n".join(lines)


def machine_facts(database: str) -> list[tuple[str, str]]:
    from importlib.metadata import version

    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    affinity = len(os.sched_getaffinity(0))

    def v(name: str) -> str:
        try:
            return version(name)
        except Exception:  # noqa: BLE001
            return "?"

    xmlsec1 = shutil.which("xmlsec1")
    xmlsec1_version = "not found"
    if xmlsec1:
        xmlsec1_version = subprocess.run(  # noqa: S603
            [xmlsec1, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    commit = "?"
    with contextlib.suppress(OSError):
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,  # noqa: S607
                              capture_output=True, text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "bridge"],  # noqa: S607
                               cwd=REPO, capture_output=True, check=False).returncode
        commit = head + (" (bridge/ has uncommitted changes)" if dirty else "")
    return [
        ("python", f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"),
        ("platform", platform.platform()),
        ("cpu", f"{cpu_model or platform.processor() or '?'}; {os.cpu_count()} CPUs, {affinity} usable "
                "by this process; server and load generator share them"),
        ("server", f"gunicorn {v('gunicorn')}, {WORKERS} workers as bridge.gunicorn_conf makes "
                   "them, PROMETHEUS_MULTIPROC_DIR set as in the Docker image, logging at the default "
                   "level (INFO: a JSON access line per request, into a file)"),
        ("client", "this process: the bytes http.client sends, over plain sockets (closed "
                   "loops, one connection per thread, kept alive when the server allows; the "
                   "open loop non-blocking, a new connection per request)"),
        ("libraries", f"pysaml2 {v('pysaml2')}, python3-saml {v('python3-saml')}, xmlsec "
                      f"{v('xmlsec')}, lxml {v('lxml')}, Flask {v('Flask')}, SQLAlchemy "
                      f"{v('SQLAlchemy')}, PyJWT {v('PyJWT')}, cryptography {v('cryptography')}; "
                      f"{xmlsec1_version}"),
        ("database", database),
        ("commit", commit),
    ]


def fmt_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        cells = [c.ljust(widths[i]) if i in (0, 3) else c.rjust(widths[i]) for i, c in enumerate(row)]
        return "| " + " | ".join(cells) + " |"

    lines = [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join([*lines, *(fmt(r) for r in rows)])


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Server CPU per operation of the bridge under gunicorn (2 workers), over "
                    "HTTP, beside baselines.")
    parser.add_argument("--logins", type=int, default=200,
                        help="logins to time (each pre-generated and signed; default 200)")
    parser.add_argument("--batch", type=int, default=50,
                        help="logins generated then timed per batch, each followed by a turn of "
                             "the stock baseline (default 50)")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="seconds per time-bounded measurement; the open-loop run takes twice "
                             "this (default 4)")
    parser.add_argument("--baseline-seconds", type=float, default=2.0,
                        help="seconds for each baseline; the stock one's are spread over its "
                             "turns between the batches of logins (default 2)")
    parser.add_argument("--postgres", metavar="ADMIN_URL",
                        help="run on PostgreSQL: a URL such as "
                             "postgresql+psycopg://root@127.0.0.1:5432/postgres; a fresh database "
                             "is created there and dropped at the end (default: SQLite)")
    parser.add_argument("--ratios-json", metavar="PATH", type=Path,
                        help="also write the headline ratios to PATH as JSON (scripts/bench --check)")
    args = parser.parse_args()
    if args.logins < 2 * CONTENDERS + 2 or args.batch < 1 or args.seconds <= 0 \
            or args.baseline_seconds <= 0:
        parser.error(f"--logins must be at least {2 * CONTENDERS + 2}; --batch, --seconds and "
                     "--baseline-seconds positive")

    _quiet_warnings()
    sys.path.insert(0, str(REPO))
    from tests.databases import create_database, drop_database, new_database_name

    started = time.perf_counter()
    argv0 = os.environ.get("BRIDGE_BENCH_ARGV0")
    command = [argv0, "--http"] if argv0 else [sys.argv[0]]
    print(f"command: {shlex.join([*command, *sys.argv[1:]])}", flush=True)

    def on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    tmp = tempfile.mkdtemp(prefix="bridge-bench-http-")
    server: Server | None = None
    pg_name: str | None = None
    close_admin: Callable[[], None] | None = None
    try:
        workdir = Path(tmp)
        if args.postgres:
            pg_name = new_database_name("bridge_bench")
            database_url = create_database(args.postgres, pg_name)
            database = f"{postgres_version(args.postgres)} (fresh database {pg_name})"
        else:
            import sqlite3

            database_url = f"sqlite:///{workdir / 'bridge.db'}"
            database = f"SQLite {sqlite3.sqlite_version} ({workdir / 'bridge.db'})"
        server, idp = setup(workdir, database_url)
        backends = None
        if args.postgres and pg_name:
            backends, close_admin = postgres_backends(args.postgres, pg_name)
        for name, value in machine_facts(database):
            print(f"{name + ':':<11}{value}")
        print(flush=True)
        ratios = run(Bench(server, idp), Meters(server, backends), args, workdir)
        if args.ratios_json:
            args.ratios_json.write_text(json.dumps(ratios))
        print(f"total run time: {time.perf_counter() - started:.1f} s")
    except BaseException:
        if server is not None:
            _print_refusals(server.log)
        raise
    finally:
        # A second Ctrl-C must not leave half of it behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            cleaned = []
            if server is not None:
                server.stop()
                cleaned.append(f"gunicorn (pid {server.process.pid}) and its workers stopped")
            if close_admin is not None:
                close_admin()
            if pg_name is not None:
                drop_database(args.postgres, pg_name)
                cleaned.append(f"database {pg_name} dropped")
            shutil.rmtree(tmp, ignore_errors=True)
            cleaned.append(f"{tmp} removed")
            print("cleanup: " + "; ".join(cleaned), flush=True)
        finally:
            signal.signal(signal.SIGINT, previous)


def _print_refusals(log: Path) -> None:
    """The server's log lines of refused or failed requests, whose detail the error page the
    client saw leaves out: what a failed run needs to be understood once its files are gone."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return
    wanted = [line for line in lines
              if re.search(r'"level": "(warning|error|critical)"|Traceback', line)]
    if wanted:
        print("server log, refusals and errors (last 20):", *wanted[-20:], sep="\n", flush=True)


def setup(workdir: Path, database_url: str, gunicorn_env: dict[str, str] | None = None,
          code: Path = REPO) -> tuple[Server, Any]:
    from bridge.dev.saml_idp import DevIdp
    from bridge.tokens.keys import generate_kek
    from tests.dev_stack import free_port

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    metadata_dir = workdir / "idp_metadata"
    idp = DevIdp(base_url=IDP_URL, state_dir=workdir / "dev-idp-keys",
                 sp_metadata=lambda: urllib.request.urlopen(  # noqa: S310 (loopback http)
                     base_url + "/saml/metadata", timeout=10).read())
    idp.write_metadata(metadata_dir, slug=SLUG)
    config = write_config(workdir, port, database_url, metadata_dir)
    return start_server(workdir, port, config, generate_kek(), gunicorn_env, code), idp


def run(bench: Bench, meters: Meters, args: argparse.Namespace, workdir: Path
        ) -> dict[str, float]:
    """Measure and print; returns the headline ratios by the names docs/performance.md uses."""
    port = bench.server.port
    base_url = bench.server.base_url
    postgres = meters.db is not None

    # --- warm-up: both workers load keys, compile schemas, build settings -------------------
    warm = [bench.prepare() for _ in range(8)]
    warm_tokens = [post_code(bench.client, post_acs(bench.client, p), p.verifier) for p in warm]
    for _ in range(40):
        get_healthz(bench.client)
    for warm_token in warm_tokens:
        for _ in range(3):
            warm_token = post_refresh(bench.client, warm_token)

    # --- baselines, in clean subprocesses, while the server idles ---------------------------
    sample = bench.prepare()  # never posted: valid for both validators
    sp_metadata = urllib.request.urlopen(base_url + "/saml/metadata", timeout=10).read()  # noqa: S310
    entity = re.search(rb'entityID="([^"]+)"', sp_metadata)
    assert entity is not None
    sp_entity_id = entity.group(1).decode()
    acs_url = f"{base_url}/saml/{SLUG}/acs"
    idp_cert = (workdir / "dev-idp-keys" / "idp.crt").read_text()
    # The stock baseline in turns with the batches of logins (one before them, one after each),
    # as the refresh takes turns with /healthz: the ratio then compares the same stretches of
    # the machine's time, whose speed drifts within minutes.
    turns = 1 + -(-args.logins // args.batch)
    stock_job = {
        "sp_entity_id": sp_entity_id, "acs_url": acs_url,
        "idp_entity_id": bench.idp.entity_id, "idp_sso_url": f"{IDP_URL}/sso/redirect",
        "idp_cert": idp_cert, "b64": sample.saml_response, "request_id": sample.request_id,
        "request_data": {"https": "off", "http_host": f"127.0.0.1:{port}",
                         "script_name": f"/saml/{SLUG}/acs"},
        "seconds": args.baseline_seconds / turns, "min_iters": 5,
    }
    stock_turns = [run_stock_worker(stock_job)]
    pysaml2, pysaml2_child_cpu, pysaml2_crypto = run_pysaml2_worker({
        "sp_entity_id": sp_entity_id, "acs_url": acs_url,
        "idp_metadata": bench.idp.metadata_xml().decode(),
        "xmlsec_binary": shutil.which("xmlsec1"), "b64": sample.saml_response,
        "request_id": sample.request_id, "seconds": args.baseline_seconds, "min_iters": 5,
    })

    # --- 1. logins ------------------------------------------------------------------------------
    login, acs, token, refresh_tokens, gen_wall, made = run_logins(
        bench, meters, args.logins, args.batch,
        between=lambda: stock_turns.append(run_stock_worker(stock_job)))
    stock = Figure(sum(f.n for f in stock_turns), sum(f.wall for f in stock_turns),
                   sum(f.cpu for f in stock_turns))
    login_peak, peak_rounds, peak_gen, peak_made = peak_logins(
        bench, meters, max(CONTENDERS, args.logins // 2))
    gen_wall += peak_gen
    made += peak_made

    # --- 3. refreshes, healthz ------------------------------------------------------------------
    tokens = deque(refresh_tokens)
    refresh1, healthz1 = alternating(meters, port, args.seconds,
                                     [Chain(tokens.popleft()), get_healthz])
    peak = closed_loop(meters, port, args.seconds, [Chain(tokens.popleft()) for _ in range(CONTENDERS)])
    healthz_peak = closed_loop(meters, port, args.seconds, [get_healthz] * CONTENDERS)
    half = peak.per_second / 2
    paced, paced_info = open_loop(meters, port, list(tokens), half, 2 * args.seconds)

    # --- 4. memory ------------------------------------------------------------------------------
    workers = bench.server.workers()
    rss = {pid: status_kb(pid, "VmRSS") or 0 for pid in workers}
    hwm = {pid: status_kb(pid, "VmHWM") or 0 for pid in workers}
    master_rss = status_kb(bench.server.process.pid, "VmRSS") or 0

    # --- report ---------------------------------------------------------------------------------
    def lat(m: Measured) -> str:
        return f"{m.pct(50):.2f} / {m.pct(99):.2f}" if m.latencies else "—"

    def row(name: str, m: Measured, base_name: str = "", base_us: float | None = None
            ) -> tuple[str, ...]:
        cells: tuple[str, ...] = (name, f"{m.per_second:,.1f}", f"{m.cpu_us:,.0f}",
                 f"{base_name} {base_us:,.0f} µs" if base_us else "—",
                 f"{m.cpu_us / base_us:.2f}×" if base_us else "—", lat(m))
        if postgres:
            cells += (f"{m.db_us:,.0f}" if m.db_us is not None else "—",)
        return cells

    def baseline_row(name: str, f: Figure, cpu_us: float) -> tuple[str, ...]:
        cells: tuple[str, ...] = (name, f"{f.per_second:,.1f}", f"({cpu_us:,.0f})", "—", "—",
                                  f"{f.us / 1e3:.2f} (mean)")
        return cells + (("—",) if postgres else ())

    stock_us = stock.cpu_us
    healthz_us = healthz1.cpu_us
    pysaml2_cpu_us = (pysaml2.cpu + pysaml2_child_cpu) / pysaml2.n * 1e6
    rows = [
        row("login: POST acs + POST /token (1 client)", login, "stock is_valid", stock_us),
        row(f"  {CONTENDERS} clients at once (peak)", login_peak, "1 client", login.cpu_us),
        row("  POST /saml/dev/acs", acs, "stock is_valid", stock_us),
        row("  POST /token authorization_code", token, "GET /healthz", healthz_us),
        baseline_row("python3-saml is_valid, stock (subprocess)", stock, stock_us),
        baseline_row(f"pysaml2 parse_authn_request_response ({pysaml2_crypto})", pysaml2,
                     pysaml2_cpu_us),
        row("refresh: POST /token refresh (1 client)", refresh1, "GET /healthz", healthz_us),
        row(f"  {CONTENDERS} clients, closed loop (peak)", peak, "1 client", refresh1.cpu_us),
        row(f"  open loop at half peak ({half:,.0f}/s)", paced, "1 client", refresh1.cpu_us),
        row("GET /healthz (1 client)", healthz1),
        row(f"  {CONTENDERS} clients, closed loop", healthz_peak, "1 client", healthz_us),
    ]
    header: tuple[str, ...] = ("operation", "per second", "server CPU µs/op", "baseline", "ratio",
                               "latency p50 / p99 ms")
    if postgres:
        header += ("PostgreSQL CPU µs/op",)
    print(fmt_table(rows, header))
    print("  server CPU: utime+stime of the gunicorn workers from /proc/<pid>/stat "
          f"({1e3 / CLK_TCK:.0f} ms ticks) over each window, ÷ operations; the master and this "
          "load generator are not in it. In parentheses: the baseline subprocess's own CPU "
          "(pysaml2: with its xmlsec1 children).")
    if postgres:
        print("  PostgreSQL CPU: the server processes connected to the bench database, read the "
              "same way (not in server CPU).")
    print()

    login_ratio = login.cpu_us / stock_us
    print(f"login CPU / stock is_valid CPU:       {login_ratio:.2f}  "
          f"({login.cpu_us:,.0f} / {stock_us:,.0f} µs; target ≤ 0.8: {verdict(login_ratio <= 0.8)})")
    rate_ratio = login_peak.per_second / pysaml2.per_second
    capacity = len(workers) / (login.cpu_us / 1e6)
    print(f"logins/s ÷ pysaml2 validations/s:     {rate_ratio:.1f}  ({login_peak.per_second:,.1f} "
          f"with {CONTENDERS} clients / {pysaml2.per_second:,.1f}; target ≥ 20: "
          f"{verdict(rate_ratio >= 20)}); one client {login.per_second / pysaml2.per_second:.1f}×; "
          f"CPU-bound capacity of {len(workers)} workers if the load generator had its own cores "
          f"≈ {capacity:,.0f} logins/s = {capacity / pysaml2.per_second:.0f}×")
    print(f"  peak: median of {PEAK_ROUNDS} rounds of {login_peak.n} logins, each on {CONTENDERS} "
          "fresh connections after a warm-up round; logins/s (the workers' shares of the CPU, %): "
          + ", ".join(f"{m.per_second:,.1f} ({m.note})" for m in peak_rounds))
    refresh_ratio = refresh1.cpu_us / healthz_us
    print(f"refresh CPU / healthz CPU:            {refresh_ratio:.2f}  ({refresh1.cpu_us:,.0f} / "
          f"{healthz_us:,.0f} µs; target ≤ 1.5: {verdict(refresh_ratio <= 1.5)})")
    errors = paced_info["errors"]
    print(f"refresh peak ({CONTENDERS} clients, closed loop): {peak.per_second:,.1f}/s, p50 "
          f"{peak.pct(50):.2f} ms, p99 {peak.pct(99):.2f} ms")
    if refresh1.per_second > peak.per_second:
        print(f"  note: {CONTENDERS} concurrent clients get fewer refreshes/s than one client "
              f"({refresh1.per_second:,.1f}/s): they contend"
              + ("" if postgres else " (SQLite: one writer at a time across the worker processes, "
                 "BEGIN IMMEDIATE + busy_timeout, so waiting writers sleep)"))
    print(f"refresh p99 at half peak (open loop, {half:,.1f}/s scheduled, "
          f"{paced_info['achieved_rate']:,.1f}/s achieved, {paced.n} requests over "
          f"{2 * args.seconds:g} s): p50 {paced.pct(50):.2f} ms, p90 {paced.pct(90):.2f} ms, "
          f"p99 {paced.pct(99):.2f} ms, max {paced.pct(100):.2f} ms; errors "
          f"{errors or 'none'}; at most {paced_info['max_in_flight']} in flight; "
          f"{paced_info['late_sends']} sends > 1 ms late, {paced_info['waited_for_family']} "
          "waits for a free refresh family")
    per_worker = ", ".join(f"{rss[p] / 1024:.1f} MB (peak {hwm[p] / 1024:.1f})" for p in workers)
    worst = max(rss.values()) / 1024 if rss else float("nan")
    print(f"RSS per worker after the runs:        {per_worker}; target < 120 MB: "
          f"{verdict(worst < 120)}; master {master_rss / 1024:.1f} MB")
    print()
    print(f"login latency over {login.n} logins (ACS + token): median {login.pct(50):.2f} ms, "
          f"p90 {login.pct(90):.2f} ms, p99 {login.pct(99):.2f} ms, max {login.pct(100):.2f} ms")
    print("load generator CPU per op (this process): "
          f"login {login.client_cpu / login.n * 1e6:,.0f} µs, refresh "
          f"{refresh1.client_cpu / refresh1.n * 1e6:,.0f} µs, healthz "
          f"{healthz1.client_cpu / healthz1.n * 1e6:,.0f} µs")
    print(f"pre-generation: {made} AuthnRequests (GET /authorize) + signed responses in "
          f"{gen_wall:.1f} s ({gen_wall / made * 1e3:.0f} ms each, pysaml2 + xmlsec1), not timed; "
          "9 more for the warm-up and the baselines")
    changes = meters.server.changes
    if changes:
        print(f"WARNING: the set of gunicorn workers changed during {changes} window(s) "
              "(a worker restarted): see the gunicorn log")
    log_tail = bench.server.log.read_text().strip().splitlines()
    serious = [line for line in log_tail if '"ERROR"' in line or "CRITICAL" in line
               or "Traceback" in line]
    if serious:
        print(f"WARNING: {len(serious)} error line(s) in the gunicorn log; the last: {serious[-1][:300]}")
    return {"login-cpu-per-stock-is-valid": login_ratio, "logins-per-s-per-pysaml2": rate_ratio,
            "refresh-cpu-per-healthz": refresh_ratio}


if __name__ == "__main__":
    if sys.argv[1:] == [PYSAML2_WORKER_FLAG]:
        pysaml2_worker()
    else:
        try:
            main()
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None
