"""The ``bridge`` command."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence

from bridge.clients.cli import add_commands as add_clients_commands
from bridge.clients.cli import run as run_clients
from bridge.clock import SystemClock
from bridge.config import Settings, load_settings
from bridge.durations import parse_duration
from bridge.errors import ConfigError
from bridge.logs import configure as configure_logging
from bridge.sp_keys.cli import add_commands as add_saml_keys_commands
from bridge.sp_keys.cli import run as run_saml_keys


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bridge", description="SAML-to-JWT federation bridge.")
    parser.add_argument("--config", help="TOML settings file (default: $BRIDGE_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    serve = commands.add_parser("serve", help="run the bridge (gunicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=2)

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db.add_parser("upgrade", help="apply migrations up to the newest schema")
    db.add_parser("current", help="show the schema revision of the database")
    db.add_parser("purge", help="delete expired requests, replay-cache rows, codes and families")

    idp = commands.add_parser("idp", help="identity providers").add_subparsers(dest="idp",
                                                                                required=True)
    idp.add_parser("list", help="list IdPs with their certificates' expiry")
    refresh = idp.add_parser("refresh", help="fetch the metadata URLs of API-managed IdPs that "
                             "are due (or all with --all): for a scheduled job")
    refresh.add_argument("--all", action="store_true", help="every IdP with a URL, due or not")

    admin = commands.add_parser("admin", help="administration").add_subparsers(dest="admin",
                                                                               required=True)
    create_token = admin.add_parser("create-token", help="create an admin API token (shown once)")
    create_token.add_argument("--name", required=True)
    create_token.add_argument("--expires-in", default="30d", help="with its unit: 30d, 12h (at most 366d)")

    keys = commands.add_parser("keys", help="token signing keys").add_subparsers(dest="keys",
                                                                                 required=True)
    rotate = keys.add_parser("rotate", help="publish a new signing key; it signs after the lead")
    rotate.add_argument("--now", action="store_true",
                        help="sign with the new key at once (verifiers with a cached JWKS "
                             "may reject new tokens until they refresh it)")
    rotate.add_argument("--if-older-than", metavar="AGE",
                        help="only if the newest key is older than AGE (with its unit: 30d, 12h): for a "
                             "daily scheduled job")
    keys.add_parser("list", help="list signing keys and their windows")
    keys.add_parser("new-kek", help="print a new key-encryption key")

    jobs = commands.add_parser("jobs", help="background jobs").add_subparsers(dest="jobs",
                                                                              required=True)
    jobs.add_parser("status", help="each background job's last run, success and failure on any "
                    "node (exit status 1 if one is failing)")
    add_saml_keys_commands(commands)
    add_clients_commands(commands)

    commands.add_parser("check", help="validate settings, IdP metadata and the database")

    revoke = commands.add_parser(
        "revoke", help="end every live login of a subject or of an IdP (audited)")
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--subject", help="the sub claim of the person")
    target.add_argument("--idp", help="IdP slug: every login that came through it")
    revoke.add_argument("--reason", default="admin", help="recorded in the audit event")

    claims = commands.add_parser("claims", help="claims and attribute mapping").add_subparsers(
        dest="claims", required=True)
    preview = claims.add_parser(
        "preview", help="show the claims a SAML response (or attributes as JSON) would produce")
    preview.add_argument("--idp", required=True, help="IdP slug")
    preview.add_argument("--response", required=True,
                         help="file: a SAML Response or Assertion (XML or base64), or JSON "
                              '{"attributes": {name: [values]}, "name_id": "...", '
                              '"name_id_format": "urn:..."}; exit status 1 if a login with it '
                              "would be refused")
    preview.add_argument("--mapping", help="TOML file with a proposed [mapping] table")

    args = parser.parse_args(argv)
    try:
        return _run(args)
    except ConfigError as error:
        print(f"bridge: {error}", file=sys.stderr)
        return 2


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _run(args: argparse.Namespace) -> int:
    if args.command == "keys" and args.keys == "new-kek":
        from bridge.tokens.keys import generate_kek

        print(generate_kek())
        return 0
    settings = _settings(args)
    configure_logging(settings.log_format, settings.log_level.upper())
    if args.command == "serve":
        return _serve(args, settings)
    # A one-off command counts nothing worth scraping: it must not leave files of its own in
    # the serving processes' metrics directory, nor need one (a read-only migration job).
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if args.command == "db":
        from bridge.store.db import Database

        database = Database(settings.database_url)
        if args.db == "upgrade":
            before = database.current_revision()
            database.upgrade()
            after = database.current_revision()
            print(f"database upgraded from revision {before or 'none'} to {after}" if after != before
                  else f"database already at revision {after}: nothing to do")
        elif args.db == "purge":
            import time

            from bridge.store.maintenance import purge_expired

            database.require_migrated()
            for table, count in purge_expired(database, now=time.time()).items():
                print(f"{table}: {count} expired row(s) deleted")
        else:
            print(database.current_revision() or "none")
        return 0
    if args.command == "idp":
        from bridge.services import build_services

        services = build_services(settings, SystemClock())
        if args.idp == "refresh":
            return _idp_refresh(services, every=args.all)
        return _idp_list(services)
    if args.command == "admin":
        import getpass

        from bridge.admin.access import AdminAccess
        from bridge.services import build_services

        services = build_services(settings, SystemClock())
        expires_in = parse_duration(args.expires_in, option="--expires-in", maximum_days=366,
                                    example="30d")
        token_id, token = AdminAccess(services.db, services.clock, services.idps).create_token(
            args.name, expires_in=expires_in, actor=f"cli:{getpass.getuser()}")
        print(f"admin token {token_id} ({args.name}); keep it secret, it is not shown again:")
        print(token)
        return 0
    if args.command == "keys":
        from bridge.services import build_services

        services = build_services(settings, SystemClock())
        if args.keys == "rotate":
            older = (parse_duration(args.if_older_than, option="--if-older-than",
                                    maximum_days=3650, example="30d")
                     if args.if_older_than else None)
            published = services.keys.rotate(immediately=args.now, older_than=older)
            for kid in published:
                print(f"published key {kid}")
            if not published:
                # Only --if-older-than can leave every series as it was: say so, and why.
                print(f"no key rotated: every algorithm's newest key is younger than "
                      f"{args.if_older_than}")
        return _keys_list(services)
    if args.command == "revoke":
        import getpass

        from bridge.oauth.revocation import Revocation
        from bridge.services import build_services

        services = build_services(settings, SystemClock())
        count = Revocation(services).revoke_all(subject=args.subject, idp_slug=args.idp,
                                                actor=f"cli:{getpass.getuser()}",
                                                reason=args.reason)
        print(f"revoked {count} login(s)")
        return 0
    if args.command == "claims":
        return _claims_preview(args, settings)
    if args.command == "jobs":
        return _jobs_status(settings)
    if args.command == "saml-keys":
        from bridge.services import build_services

        return run_saml_keys(args, settings,
                             lambda: build_services(settings, SystemClock()).sp_keys)
    if args.command == "clients":
        from bridge.clients.admin import ClientAdmin
        from bridge.services import build_services

        return run_clients(args, lambda: ClientAdmin(build_services(settings, SystemClock())))
    if args.command == "check":
        from bridge.services import build_services, key_problems

        services = build_services(settings, SystemClock())
        problems = key_problems(services)
        if problems:
            raise ConfigError(problems)
        print(f"ok: {len(services.idps)} IdP(s), {len(services.clients)} client(s), "
              f"database {services.db.dialect} at revision {services.db.current_revision()}, "
              "every stored key decrypts")
        return 0
    raise AssertionError(args.command)


def _claims_preview(args: argparse.Namespace, settings: Settings) -> int:
    """Print the preview (see bridge.idps.preview); exit status 1 when a login with these facts
    would be refused before any claim is built."""
    import base64
    import binascii
    import json
    import tomllib

    from bridge.claims.mapping import parse_mapping
    from bridge.claims.presets import MAPPING_PRESETS
    from bridge.errors import SamlRejected
    from bridge.idps.every_idp import every_idp
    from bridge.idps.preview import (
        facts_from_document,
        facts_from_response,
        preview_login,
        refused,
    )

    idps = every_idp(settings, SystemClock())  # files and managed alike
    idp = idps.get(args.idp)
    if idp is None:
        raise ConfigError(f"--idp: no IdP {args.idp!r} (known: {', '.join(sorted(idps)) or 'none'})")
    proposed = None
    if args.mapping:
        with open(args.mapping, "rb") as handle:
            raw = tomllib.load(handle)
        proposed = parse_mapping(raw.get("mapping", raw), source=args.mapping,
                                 presets=MAPPING_PRESETS)
    with open(args.response, "rb") as handle:
        data = handle.read()
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        document = None
    try:
        if isinstance(document, dict):
            facts = facts_from_document(document, idp)
        else:
            try:
                if not data.lstrip().startswith(b"<"):
                    data = base64.b64decode(b"".join(data.split()), validate=True)
            except (binascii.Error, ValueError) as error:
                print(f"bridge: {args.response}: not a SAML response or attributes JSON ({error})",
                      file=sys.stderr)
                return 2
            facts = facts_from_response(data, idp, max_bytes=settings.max_saml_response_bytes)
    except SamlRejected as error:  # what a login with this response would be refused with
        result = refused(error)
    else:
        result = preview_login(facts, idp, proposed)
    print(json.dumps(result, indent=2))
    return 1 if result["outcome"] == "refused" else 0


def _jobs_status(settings: Settings) -> int:
    from bridge.jobs import leases as jobs
    from bridge.store.db import Database

    database = Database(settings.database_url)
    try:
        database.require_migrated()
        statuses = jobs.status(database)
    finally:
        database.dispose()

    def fmt(value: float | None) -> str:
        return "-" if value is None else dt.datetime.fromtimestamp(value, dt.UTC).isoformat(
            timespec="seconds")

    if not statuses:
        print("no background job has run yet")
    for job in statuses:
        print(f"{job.name}: {job.state}  last run {fmt(job.last_run_at)}  last success "
              f"{fmt(job.last_success_at)}  failures in a row {job.consecutive_failures}  "
              f"next due {fmt(job.next_due_at)}  (holder {job.holder})")
        if job.last_error:
            print(f"  last error ({fmt(job.last_failure_at)}): {job.last_error}")
    return 1 if any(job.state == "failing" for job in statuses) else 0


def _idp_list(services: object) -> int:
    from bridge.idps.lifecycle import IdpAdmin
    from bridge.idps.registry import NOT_SERVED_REASONS
    from bridge.services import Services

    assert isinstance(services, Services)
    print(f"{'slug':<20} {'source':<6} {'entity ID':<50} certificate expiry")
    for idp in IdpAdmin(services).list_idps():
        expiries = [f"{c['not_after'][:10]} ({c['days_left']} days)"
                    + (f" WARNING: {c['warning'].replace('_', ' ')}" if c["warning"] else "")
                    for c in idp["certificates"]]
        if idp["metadata_valid_until"]:
            expired = "metadata_expired" in idp["warnings"]
            expiries.append(f"metadata valid until {idp['metadata_valid_until'][:10]}"
                            + (" WARNING: metadata expired" if expired else ""))
        if idp["state"] != "live":  # drafts have no entity ID yet; neither is offered to users
            expiries.insert(0, f"({idp['state']}: not offered to users)")
        if idp["not_served_reason"]:
            why = "; ".join(map(_printable, idp["load_problems"] or [])) or (
                "the log has the detail")
            expiries.insert(0, f"NOT SERVED: {NOT_SERVED_REASONS[idp['not_served_reason']]} "
                               f"({why})")
        print(f"{idp['slug']:<20} {idp['source']:<6} {idp['entity_id'] or '-':<50} "
              f"{', '.join(expiries)}")
    return 0


def _printable(text: str) -> str:
    """``text`` on one line with its control characters escaped: a problem quotes what was
    stored, which must not start a line of its own or drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _idp_refresh(services: object, *, every: bool) -> int:
    from bridge.idps.lifecycle import IdpAdmin
    from bridge.idps.refresh import RefreshFailed
    from bridge.services import Services

    assert isinstance(services, Services)
    admin = IdpAdmin(services)
    failures = 0
    try:
        outcomes = admin.refresh_due(every=every)
    except RefreshFailed as error:
        outcomes = error.outcomes
    for slug, outcome in outcomes.items():
        print(f"{slug}: {outcome}")
        failures += outcome.startswith("failed")
    return 1 if failures else 0


def _keys_list(services: object) -> int:
    from sqlalchemy import select

    from bridge.services import Services
    from bridge.store.models import SigningKey

    assert isinstance(services, Services)
    with services.db.transaction() as session:
        for key in session.scalars(select(SigningKey).order_by(SigningKey.active_at)):
            def fmt(value: float | None) -> str:
                return "-" if value is None else dt.datetime.fromtimestamp(value, dt.UTC).isoformat(
                    timespec="seconds")
            print(f"{key.kid}  {key.alg}  active {fmt(key.active_at)}  retired "
                  f"{fmt(key.retired_at)}  unpublished {fmt(key.unpublish_at)}")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from gunicorn.app.base import BaseApplication

    from bridge.web import create_app

    app = create_app(settings)  # fails fast, before forking, on any configuration problem

    def _fresh_connections(_server: object, _worker: object) -> None:
        # Connections opened before the fork must not be shared between processes.
        app.extensions["bridge"].db.engine.dispose(close=False)

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("accesslog", None)  # the app logs each request itself, as JSON
            self.cfg.set("graceful_timeout", 5)
            self.cfg.set("post_fork", _fresh_connections)

        def load(self):
            return app

    if os.environ.get("BRIDGE_CONFIG") is None and args.config:
        os.environ["BRIDGE_CONFIG"] = args.config
    _Server().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
