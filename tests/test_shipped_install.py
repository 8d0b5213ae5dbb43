"""The README's "Running it for real", as a new user does it: the wheel built from this checkout,
installed with no extras into a brand-new virtual environment, then `bridge db upgrade`,
`bridge check` and gunicorn with bridge/gunicorn_conf.py on PostgreSQL behind TLS, and a whole
login and refresh through it. Nothing of the test environment (the dev and test extras, this
checkout on sys.path) reaches the installed bridge. On the Python that runs the tests and on
every other CPython of 3.11 or newer this machine has (pyproject promises them all)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bridge.tokens.keys import generate_kek
from tests.databases import create_postgres_database, drop_postgres_database
from tests.dev_stack import ROOT, free_port
from tests.launch import wait_until_up
from tests.leaks import remember
from tests.shipped import Site, children, login_and_refresh, memory_kib, prepare_site

# Under pytest-xdist (--dist loadgroup) one worker runs them all: their module fixture starts once.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("shipped_install")]

# Every module of the shipped package but the development tools (bridge/dev, which needs the dev
# extra), the migrations (run by alembic) and the WSGI entry (it reads settings at import).
IMPORT_ALL = """
import importlib, pkgutil, sys, bridge
skip = ("bridge.dev", "bridge.store.migrations", "bridge.wsgi")
names = [m.name for m in pkgutil.walk_packages(bridge.__path__, "bridge.")
         if not m.name.startswith(skip)]
for name in names:
    importlib.import_module(name)
print(len(names), bridge.__file__)
"""


def _pythons() -> dict[str, str]:
    """The interpreter running the tests, then one CPython of each other version from 3.11 on
    that this machine has: on the PATH, or installed through pyenv (whose shims run only the
    version selected, so its versions are looked up directly)."""
    candidates = [shutil.which(f"python3.{minor}") for minor in range(11, 20)]
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        if root:
            candidates += sorted(str(p) for p in Path(root, "versions").glob("3.1*/bin/python3"))
    found = {f"{sys.version_info.major}.{sys.version_info.minor}": sys.executable}
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.implementation.name, "
             "'%d.%d' % sys.version_info[:2], sys.version_info >= (3, 11))"],
            capture_output=True, text=True)
        words = probe.stdout.split()
        if probe.returncode == 0 and len(words) == 3 and words[0] == "cpython" \
                and words[2] == "True":
            found.setdefault(words[1], candidate)
    return found


PYTHONS = _pythons()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what the Dockerfile copies, so that nothing else of the checkout
    # (a build/ directory left by an earlier build, with files since deleted) enters the wheel.
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "bridge", source / "bridge",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(work / "dist"), str(source)],
                   check=True, capture_output=True, timeout=600)
    wheels = list((work / "dist").glob("saml_jwt_bridge-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module", params=list(PYTHONS.values()), ids=[f"python{v}" for v in PYTHONS])
def venv(request: pytest.FixtureRequest, wheel: Path,
         tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A brand-new virtual environment of one Python with the wheel of this checkout and no
    extras."""
    work = tmp_path_factory.mktemp("venv")
    subprocess.run([request.param, "-m", "venv", str(work / "venv")], check=True, timeout=120)
    installed = subprocess.run([str(work / "venv" / "bin" / "pip"), "install", "--quiet",
                                "--disable-pip-version-check", str(wheel)],
                               capture_output=True, text=True, timeout=900, cwd=work)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return work / "venv"


def run(venv: Path, cwd: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    """A command of the fresh environment, from a directory outside this checkout, with an
    environment of its own (no PYTHONPATH, no virtualenv of the tests)."""
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], capture_output=True,
                          text=True, cwd=cwd, timeout=120,
                          env={"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(cwd), **(env or {})})


def test_the_wheel_brings_every_package_the_shipped_code_imports(venv: Path, tmp_path: Path) -> None:
    extras = run(venv, tmp_path, "python", "-c",
                 "import importlib.util as u; print([m for m in ('requests', 'saml2', 'pytest') "
                 "if u.find_spec(m)])")
    assert extras.stdout.strip() == "[]", "the environment must hold no extras"
    imported = run(venv, tmp_path, "python", "-c", IMPORT_ALL)
    assert imported.returncode == 0, imported.stderr
    count, location = imported.stdout.split()
    assert int(count) > 50 and location.startswith(str(venv)), imported.stdout


@pytest.fixture
def site(tmp_path: Path, idp_key_dir: Path) -> Iterator[Site]:
    name = f"bridge_shipped_{uuid.uuid4().hex[:10]}"
    kek = generate_kek()
    remember(kek)
    prepared = prepare_site(tmp_path, create_postgres_database(name), kek, idp_key_dir)
    try:
        yield prepared
    finally:
        prepared.stop_proxy()
        drop_postgres_database(name)


def start(venv: Path, site: Site, arguments: list[str], env: dict[str, str], log: Path
          ) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(arguments, cwd=site.tmp_path, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                env={"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(site.tmp_path),
                                     **site.environment(), **env})


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_fresh_install_without_extras_serves_a_login(venv: Path, site: Site) -> None:
    upgraded = run(venv, site.tmp_path, "bridge", "db", "upgrade", env=site.environment())
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.startswith("database upgraded from revision none to ")
    checked = run(venv, site.tmp_path, "bridge", "check", env=site.environment())
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: 1 IdP(s), 1 client(s), database postgresql at revision ")

    metrics = site.tmp_path / "metrics"
    metrics.mkdir()
    server = start(venv, site, ["gunicorn", "-c", "python:bridge.gunicorn_conf", "bridge.wsgi:app"],
                   {"BRIDGE_BIND": f"127.0.0.1:{site.bridge_port}", "BRIDGE_WORKERS": "2",
                    "PROMETHEUS_MULTIPROC_DIR": str(metrics)}, site.tmp_path / "gunicorn.log")
    try:
        wait_until_up(f"http://127.0.0.1:{site.bridge_port}", server, site.tmp_path / "gunicorn.log")
        site.start_proxy()
        login_and_refresh(site)
        sizes = memory_kib([server.pid, *children(server.pid)])
        print("\nfresh install under gunicorn, RSS/PSS in MiB: " + ", ".join(
            f"{rss / 1024:.0f}/{pss / 1024:.0f}" for rss, pss in sizes.values()))
    finally:
        stop(server)
    log = (site.tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log and "alembic" not in log, log[-3000:]


def test_bridge_serve_starts_from_a_fresh_install(venv: Path, site: Site) -> None:
    """The README's own command (it was the one that failed on a missing module)."""
    assert run(venv, site.tmp_path, "bridge", "db", "upgrade", env=site.environment()).returncode == 0
    port = free_port()
    log = site.tmp_path / "serve.log"
    server = start(venv, site, ["bridge", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--workers", "1"], {}, log)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server, log)
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.json()["status"] == "ready", ready.text
    finally:
        stop(server)
