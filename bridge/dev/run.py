"""Run the whole demo in one process: development IdP, bridge, demo client. Ctrl-C stops all.

    python -m bridge.dev.run          (scripts/dev does the setup first)
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from werkzeug.serving import make_server

from bridge.config import load_settings
from bridge.dev.demo_client import create_demo_app
from bridge.dev.idp_app import create_idp_app
from bridge.dev.saml_idp import DevIdp
from bridge.dev.spa_server import create_spa_app
from bridge.logs import configure as configure_logging
from bridge.store.db import Database
from bridge.web import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--bridge-port", type=int, default=8000)
    parser.add_argument("--idp-port", type=int, default=8001)
    parser.add_argument("--demo-port", type=int, default=8002)
    parser.add_argument("--spa-port", type=int, default=8003)
    args = parser.parse_args()

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level.upper())
    host = args.host
    idp_url = f"http://{host}:{args.idp_port}"
    demo_url = f"http://{host}:{args.demo_port}"
    spa_url = f"http://{host}:{args.spa_port}"

    bridge_app_holder: dict[str, object] = {}

    def sp_metadata() -> bytes:
        # Read in-process from the running bridge, as an IdP admin would download it.
        app = bridge_app_holder["app"]
        with app.test_client() as client:  # type: ignore[attr-defined]
            return client.get("/saml/metadata").data

    idp = DevIdp(base_url=idp_url, state_dir=Path(settings.instance_dir) / "dev-idp",
                 sp_metadata=sp_metadata)
    metadata_path = idp.write_metadata(Path(settings.idp_metadata_dir))
    print(f"development IdP metadata written to {metadata_path}")

    Database(settings.database_url).upgrade()
    bridge_app = create_app(settings)
    bridge_app_holder["app"] = bridge_app

    servers = [
        make_server(host, args.idp_port, create_idp_app(idp), threaded=True),
        make_server(host, args.bridge_port, bridge_app, threaded=True),
        make_server(host, args.demo_port,
                    create_demo_app(bridge_url=settings.base_url, public_url=demo_url),
                    threaded=True),
    ]
    if settings.client("spa") is not None:
        servers.append(make_server(host, args.spa_port, create_spa_app(
            bridge_url=settings.base_url, public_url=spa_url), threaded=True))
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    print(f"""
  bridge           {settings.base_url}   (discovery: {settings.base_url}/.well-known/openid-configuration)
  development IdP  {idp_url}   users alice/alice (the admin) and bob/bob
  admin pages      {settings.base_url}/admin/   sign in as alice
  demo app         {demo_url}   <- open this and click "Sign in"
  reference SPA    {spa_url if settings.client("spa") else "(no client 'spa' configured)"}

Ctrl-C stops everything.""", flush=True)
    # Installed explicitly: a shell that starts us in the background makes us inherit an ignored
    # SIGINT, and then Python would never raise KeyboardInterrupt.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    threading.Event().wait()


def _stop(_signum: int, _frame: object) -> None:
    # Every write is committed when its request ends, so there is nothing to wind down; exiting at
    # once also cannot hang on a server thread that is still serving a keep-alive connection.
    print("\nstopping", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
