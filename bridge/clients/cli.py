"""``bridge clients``: list, show, register, change, rotate the secret of, and delete the OAuth
clients managed through the admin API; the same checks and audit trail as the API and pages."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.durations import parse_duration
from bridge.errors import ConfigError, NotFound

if TYPE_CHECKING:
    from bridge.clients.admin import ClientAdmin


def add_commands(commands: Any) -> None:
    """Add the ``clients`` command group to the ``bridge`` parser's subcommands."""
    group = commands.add_parser("clients", help="OAuth clients (the settings file's, and those "
                                "managed through the admin API)").add_subparsers(
                                    dest="clients", required=True)
    group.add_parser("list", help="list every client with its source (file or api)")
    show = group.add_parser("show", help="a client's settings and its secrets' state")
    show.add_argument("client_id")
    create = group.add_parser("create", help="register a managed client from a TOML or JSON "
                              "file holding one [[clients]] table's keys; a confidential "
                              "client's secret is printed once")
    create.add_argument("--from", dest="source", required=True, metavar="FILE")
    update = group.add_parser("update", help="replace a managed client's settings (all of them) "
                              "from a TOML or JSON file")
    update.add_argument("client_id")
    update.add_argument("--from", dest="source", required=True, metavar="FILE")
    rotate = group.add_parser("rotate-secret", help="print a new secret, shown once; the old "
                              "ones keep working for the overlap")
    rotate.add_argument("client_id")
    rotate.add_argument("--overlap", metavar="DURATION",
                        help="how long the old secrets keep working, with its unit (12h, 1d; "
                             "0 ends them at once; default client_secret_overlap_seconds)")
    delete = group.add_parser("delete", help="delete a managed client and end its logins")
    delete.add_argument("client_id")


def _table(path: str) -> dict[str, Any]:
    file = Path(path)
    try:
        text = file.read_text()
        table = json.loads(text) if file.suffix == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"--from: cannot read {path} ({error})") from None
    if not isinstance(table, dict):
        raise ConfigError(f"--from: {path} must hold one table of client settings")
    return table


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _print_secret(client_id: str, secret: str | None) -> None:
    if secret is not None:
        print(f"client secret of {client_id}; keep it secret, it is not shown again:")
        print(secret)


def run(args: argparse.Namespace, open_admin: Callable[[], ClientAdmin]) -> int:
    """``open_admin`` opens the database (the CLI's wiring): only once the arguments are valid."""
    try:
        return _run(args, open_admin)
    except NotFound as error:
        print(f"bridge: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, open_admin: Callable[[], ClientAdmin]) -> int:
    actor = f"cli:{getpass.getuser()}"
    table = _table(args.source) if args.clients in ("create", "update") else None
    overlap = None
    if args.clients == "rotate-secret" and args.overlap is not None:
        overlap = int(parse_duration(args.overlap, option="--overlap", maximum_days=30,
                                     example="1d"))
    admin = open_admin()
    if args.clients == "list":
        print(f"{'client':<30} {'source':<6} {'kind':<12} audience")
        for client in admin.list_clients():
            kind = "public" if client["public"] else "confidential"
            print(f"{client['client_id']:<30} {client['source']:<6} {kind:<12} "
                  f"{client['audience']}")
        return 0
    if args.clients == "create":
        detail, secret = admin.create_client(table, actor)
        print(f"registered client {detail['client_id']}")
        _print_secret(detail["client_id"], secret)
        return 0
    if args.clients == "update":
        admin.update_client(args.client_id, table, actor)
        print(f"client {args.client_id} updated")
        return 0
    if args.clients == "rotate-secret":
        detail, secret = admin.rotate_secret(args.client_id, actor, overlap_seconds=overlap)
        ends = [s["expires_at"] for s in detail["secrets"] if s["state"] == "overlap"]
        _print_secret(args.client_id, secret)
        if ends:
            print(f"the older secret keeps working until {_when(max(ends))}")
        return 0
    if args.clients == "delete":
        admin.delete_client(args.client_id, actor)
        print(f"client {args.client_id} deleted; its logins have ended")
        return 0
    detail = admin.get_client(args.client_id)
    print(json.dumps({k: v for k, v in detail.items() if k != "secrets"}, indent=2))
    for secret_row in detail["secrets"]:
        print(f"secret {secret_row['id']}: {secret_row['state']}, created "
              f"{_when(secret_row['created_at'])} by {secret_row['created_by']}, ends "
              f"{_when(secret_row['expires_at'])}")
    return 0
