"""Starting and stopping the bridge as it is deployed, for the tests that run real processes
(tests/cluster.py) and for the HTTP benchmark (scripts/bench_http.py): the CLI of this checkout's
.venv, gunicorn with the production configuration, a wait for /healthz, and a stop that leaves no
worker behind. Each process gets a session of its own, so that its whole group can be signalled."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import requests

from tests.dev_stack import ROOT

VENV_BIN = ROOT / ".venv" / "bin"


def bridge_cli(env: Mapping[str, str], *args: str, code: Path = ROOT) -> str:
    """``bridge <args>`` from this checkout's .venv; its output. Raises CalledProcessError (with
    the output) if it fails. ``code``: the directory whose ``bridge`` package runs (another
    commit's tree, for a benchmark in turns); this checkout by default."""
    result = subprocess.run([str(VENV_BIN / "bridge"), *args], env=_with_code(env, code),
                            capture_output=True, text=True, check=True, cwd=code)
    return result.stdout


def _with_code(env: Mapping[str, str], code: Path) -> dict[str, str]:
    # The package in ``code`` ahead of the one this .venv installed in editable mode. gunicorn
    # also puts its working directory first on sys.path, so that is ``code`` too.
    if code == ROOT:
        return dict(env)
    return {**env, "PYTHONPATH": str(code)}


def start_gunicorn(env: Mapping[str, str], port: int, log: Path, *, workers: int,
                   metrics_dir: Path, code: Path = ROOT) -> subprocess.Popen[bytes]:
    """gunicorn serving bridge.wsgi:app on 127.0.0.1:``port`` with bridge/gunicorn_conf.py and
    multiprocess metrics in ``metrics_dir`` (created here): the production configuration, as the
    Docker image runs it. Its output goes to ``log``. ``code`` as for ``bridge_cli``."""
    metrics_dir.mkdir()
    node_env = {**_with_code(env, code), "BRIDGE_BIND": f"127.0.0.1:{port}",
                "BRIDGE_WORKERS": str(workers), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with log.open("wb") as output:
        return subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", "python:bridge.gunicorn_conf", "bridge.wsgi:app"],
            cwd=code, env=node_env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True)


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60,
                  *, verify: bool | str = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url} exited:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url + "/healthz", timeout=3, verify=verify).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet, or its workers are still starting
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up:\n{log.read_text()[-3000:]}")


def stop_process_groups(processes: Iterable[subprocess.Popen[bytes]], timeout: float = 10) -> None:
    """SIGTERM every process's group at once (a graceful stop), SIGKILL a group that takes longer
    than ``timeout``."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # Workers that outlived their master (they should not): the whole group goes.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
