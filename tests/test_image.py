"""The Dockerfile's image, built and run as the Kubernetes example runs it: the migration and
`bridge check` as one-off containers, then the image's own command (gunicorn) as user 10001 on a
read-only root filesystem with the example's writable volumes, serving a whole login and refresh
through a TLS load balancer, its HEALTHCHECK passing, and its memory inside the example's
resources.

No container registry is reachable here, so the base is built from Debian's packages by
scripts/container-base and passed as BASE (docs/decisions/0015-container-image-in-ci.md); the
image is built and run with podman (runc as the runtime: crun cannot run on these machines'
hybrid cgroups; explicit low ulimits, which runc can set where podman's defaults fail)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bridge.tokens.keys import generate_kek
from tests.databases import IN_CI, create_postgres_database, drop_postgres_database
from tests.dev_stack import ROOT
from tests.launch import wait_until_up
from tests.leaks import remember
from tests.shipped import Site, children, login_and_refresh, memory_kib, prepare_site

# Under pytest-xdist (--dist loadgroup) one worker runs them all: their module fixture starts once.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("image")]

RUNTIME = ["--runtime", "runc", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
MANIFEST = ROOT / "deploy" / "kubernetes" / "bridge.yaml"


def _require_containers() -> None:
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    reason = (f"{', '.join(missing)} not installed (scripts/setup test installs them)" if missing
              else None if os.geteuid() == 0 else "building the base image needs root")
    if reason:
        if IN_CI:
            pytest.fail(f"the image must be built in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _require_containers()
    base = subprocess.run([str(ROOT / "scripts" / "container-base")], capture_output=True,
                          text=True, timeout=1200)
    assert base.returncode == 0, base.stderr[-3000:]
    tag = f"localhost/saml-jwt-bridge-test:{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    build = subprocess.run(
        ["podman", "build", *RUNTIME, "--network", "host", "--format", "docker", "--layers=false",
         "--build-arg", f"BASE={base.stdout.strip()}", "--tag", tag, str(ROOT)],
        capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    print(f"\nimage built in {time.monotonic() - started:.0f} s on {base.stdout.strip()}")
    try:
        yield tag
    finally:
        subprocess.run(["podman", "rmi", "--force", tag], capture_output=True, timeout=120)


def deployment() -> dict:
    documents = list(yaml.safe_load_all(MANIFEST.read_text()))
    return next(d for d in documents if d["kind"] == "Deployment")["spec"]["template"]["spec"]


def mebibytes(quantity: str) -> int:
    assert quantity.endswith("Mi"), quantity
    return int(quantity[:-2])


@pytest.fixture
def site(tmp_path: Path, idp_key_dir: Path) -> Iterator[Site]:
    name = f"bridge_image_{uuid.uuid4().hex[:10]}"
    kek = generate_kek()
    remember(kek)
    prepared = prepare_site(tmp_path, create_postgres_database(name), kek, idp_key_dir)
    try:
        yield prepared
    finally:
        prepared.stop_proxy()
        drop_postgres_database(name)


def podman_run(image: str, site: Site, *, extra: list[str], command: list[str]) -> list[str]:
    """As the example's pods run it: read-only root, the settings and IdP metadata mounted
    read-only, secrets from the environment (named here, valued in podman's environment, so
    they are on no command line)."""
    return ["podman", "run", "--rm", *RUNTIME, "--network=host", "--read-only",
            "--read-only-tmpfs=false", "--volume", f"{site.config_dir}:/etc/bridge:ro",
            "--volume", f"{site.metadata_dir}:/srv/bridge/idp_metadata:ro",
            *[f"--env={name}" for name in site.environment()], *extra, image, *command]


def podman_env(site: Site) -> dict[str, str]:
    return {**os.environ, **site.environment("/etc/bridge")}


def test_the_image_migrates_checks_and_serves_a_login(image: str, site: Site) -> None:
    # The migration Job, then a check, each a one-off container with nothing writable (the
    # example's Job mounts no volume to write to).
    for command, expected in ((["bridge", "db", "upgrade"], "database upgraded from revision none"),
                              (["bridge", "check"], "ok: 1 IdP(s), 1 client(s), database postgresql")):
        done = subprocess.run(podman_run(image, site, extra=[], command=command),
                              capture_output=True, text=True, env=podman_env(site), timeout=300)
        assert done.returncode == 0 and done.stdout.startswith(expected), done.stdout + done.stderr

    spec = deployment()
    container = spec["containers"][0]
    workers = next(e["value"] for e in container["env"] if e["name"] == "BRIDGE_WORKERS")
    metrics = site.tmp_path / "metrics"  # the example's emptyDir
    metrics.mkdir(mode=0o777)
    metrics.chmod(0o777)
    name = f"bridge-test-{uuid.uuid4().hex[:10]}"
    log = site.tmp_path / "container.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            podman_run(image, site, command=[], extra=[
                "--name", name, "--volume", f"{metrics}:/srv/bridge/metrics",
                "--tmpfs", "/tmp:rw,mode=1777",  # the example's emptyDirs
                "--env", f"BRIDGE_BIND=127.0.0.1:{site.bridge_port}",
                "--env", f"BRIDGE_WORKERS={workers}"]),
            stdout=output, stderr=subprocess.STDOUT, env=podman_env(site))
    try:
        wait_until_up(f"http://127.0.0.1:{site.bridge_port}", server, log, timeout=120)
        site.start_proxy()
        login_and_refresh(site)

        health = subprocess.run(["podman", "healthcheck", "run", name], capture_output=True,
                                text=True, timeout=60)
        assert health.returncode == 0, health.stdout + health.stderr
        master = int(subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}", name],
                                    capture_output=True, text=True, check=True).stdout)
        status = Path(f"/proc/{master}/status").read_text()
        assert next(line for line in status.splitlines()
                    if line.startswith("Uid:")).split()[1] == "10001"
        processes = [master, *children(master)]
        assert len(processes) == 1 + int(workers)
        sizes = memory_kib(processes)
        total = sum(pss for _, pss in sizes.values()) / 1024
        resources = container["resources"]
        print(f"\nimage under gunicorn, {workers} workers, RSS/PSS in MiB: " + ", ".join(
            f"{rss / 1024:.0f}/{pss / 1024:.0f}" for rss, pss in sizes.values())
            + f"; {total:.0f} MiB together; the example requests {resources['requests']['memory']}"
            f", limits {resources['limits']['memory']}")
        # The example's memory is sized from this measurement: its request holds what the pod
        # takes after a login, its limit half as much again for the heap's growth under load.
        assert total <= mebibytes(resources["requests"]["memory"])
        assert total * 1.5 <= mebibytes(resources["limits"]["memory"])
    finally:
        subprocess.run(["podman", "stop", "--time", "10", name], capture_output=True, timeout=60)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            subprocess.run(["podman", "rm", "--force", name], capture_output=True, timeout=60)
            server.kill()
            server.wait()
    output = log.read_text()
    assert "Traceback" not in output, output[-3000:]


# Run inside the image as its user: what it may write, and where `bridge` is imported from.
_WRITES = r"""
import json, os, pathlib, subprocess, sys
def writable(action):
    try:
        action()
        return True
    except OSError:
        return False
site = pathlib.Path(subprocess.run([sys.executable, "-c", "import bridge; print(bridge.__file__)"],
                                   capture_output=True, text=True, cwd="/tmp").stdout.strip()).parent
print(json.dumps({
    "uid": os.getuid(), "cwd": os.getcwd(),
    "workdir": writable(lambda: pathlib.Path("planted.txt").write_text("x")),
    "package": writable(lambda: pathlib.Path("bridge").mkdir()),
    "idp_metadata": writable(lambda: pathlib.Path("idp_metadata/evil.xml").write_text("x")),
    "idp_metadata_moved": writable(lambda: os.rename("idp_metadata", "idp_metadata.old")),
    "idp_metadata_replaced": writable(lambda: (os.rmdir("idp_metadata"),
                                               os.mkdir("idp_metadata"))),
    "installed": writable(lambda: (site / "planted.py").write_text("x")),
    "metrics": writable(lambda: pathlib.Path("metrics/ok").write_text("x")),
    "tmp": writable(lambda: pathlib.Path("/tmp/ok").write_text("x")),
}))
"""


def test_the_app_user_can_change_neither_its_working_directory_nor_its_code(image: str) -> None:
    """Run as many run an image, without a read-only root: user 10001 could write /srv/bridge
    (its home), so it could replace idp_metadata/ and plant bridge/__init__.py there, which
    gunicorn (the working directory first on sys.path) would import instead of the package."""
    import json

    done = subprocess.run(["podman", "run", "--rm", *RUNTIME, "--network=none", image,
                           "python", "-c", _WRITES], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["uid"], result["cwd"]) == (10001, "/srv/bridge")
    refused = ("workdir", "package", "idp_metadata", "idp_metadata_moved",
               "idp_metadata_replaced", "installed")
    assert {key: result[key] for key in refused} == dict.fromkeys(refused, False)
    assert result["metrics"] and result["tmp"]  # what it must write
