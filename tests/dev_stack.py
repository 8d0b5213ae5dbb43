"""Starting ``scripts/dev`` (README command 1) on free ports, for tests that use it for real."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"scripts/dev exited early:\n{log.read_text()}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up:\n{log.read_text()[-4000:]}")


@contextmanager
def dev_stack(tmp_path: Path, *, spa: bool = False, settings: str = "") -> Iterator[dict[str, str]]:
    """Run scripts/dev with its own config and ports; yield the URLs; Ctrl-C it at the end."""
    names = ("bridge", "idp", "demo", "spa") if spa else ("bridge", "idp", "demo")
    ports = {name: free_port() for name in names}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    clients = (
        "[[clients]]\n"
        'client_id = "demo"\n'
        f'redirect_uris = ["{urls["demo"]}/callback"]\n'
        'audience = "demo-api"\n'
    )
    if spa:
        clients += (
            "[[clients]]\n"
            'client_id = "spa"\n'
            f'redirect_uris = ["{urls["spa"]}/"]\n'
            'audience = "spa-api"\n'
            "claims_version = 3\n"
            'dpop = "required"\n'
            'refresh_token_delivery = "cookie"\n'
        )
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'base_url = "{urls["bridge"]}"\n'
        f'instance_dir = "{tmp_path / "instance"}"\n'
        f'idp_metadata_dir = "{tmp_path / "idp_metadata"}"\n'
        + settings + clients
    )
    log = tmp_path / "dev.log"
    arguments = [str(ROOT / "scripts" / "dev")]
    for name, port in ports.items():
        arguments += [f"--{name}-port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(arguments, cwd=ROOT, env={**os.environ, "BRIDGE_CONFIG": str(config)},
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for name, url in urls.items():
            _wait_for(url + ("/healthz" if name == "bridge" else "/"), process, log)
        yield urls
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(f"scripts/dev did not stop on Ctrl-C:\n{log.read_text()[-2000:]}") from None
