"""``bridge saml-keys``: rotate the SP signing key, list the SP's SAML keys with their expiry."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from bridge.config import Settings
from bridge.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_commands(commands: Any) -> None:
    """Add the ``saml-keys`` command group to the ``bridge`` parser's subcommands."""
    group = commands.add_parser("saml-keys", help="the SP's SAML keys (signing our requests, "
                                "decrypting assertions)").add_subparsers(dest="saml_keys",
                                                                         required=True)
    rotate = group.add_parser("rotate", help="publish a new SP signing key in our metadata; it "
                              "signs after the lead time (sp_signing_key_lead_days)")
    rotate.add_argument("--lead", metavar="DURATION",
                        help="publication lead for this rotation instead of the setting "
                             "(e.g. 2d, 12h; 0: sign at once, for a compromised key: IdPs that "
                             "have not learnt the new certificate refuse our requests meanwhile)")
    rotate.add_argument("--if-due", action="store_true",
                        help="only if the scheduled rotation would (sp_signing_key_rotation_days, "
                             "or the certificate nears its expiry): for an external scheduler")
    group.add_parser("list", help="list the SP's SAML keys: state, signing window, certificate "
                     "expiry")


def _duration(text: str) -> float:
    try:
        return float(text[:-1]) * _UNITS[text[-1]] if text[-1:] in _UNITS else float(text)
    except (ValueError, IndexError):
        raise ConfigError(f"--lead: {text!r} is not a duration like 14d, 12h or 0") from None


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.clock import SystemClock
    from bridge.federation import Bridge

    bridge = Bridge.from_settings(settings, SystemClock())
    keys = bridge.sp_keys
    if args.saml_keys == "rotate":
        if args.if_due:
            days = settings.sp_signing_key_rotation_days
            print(keys.rotate_if_due(rotation_seconds=days * 86400.0 if days else None))
        else:
            lead = _duration(args.lead) if args.lead is not None else None
            row = keys.rotate(lead_seconds=lead)
            print(f"published SP signing key {row.id}; it signs from {_when(row.active_at)} UTC. "
                  "Give its certificate to IdPs that do not read our metadata before then.")
    print(f"{'key':<17} {'use':<10} {'state':<11} {'published':<16} {'signs from':<16} "
          f"{'signs until':<16} {'unpublished':<16} certificate expiry")
    for key in keys.report():
        expiry = f"{key.not_after:%Y-%m-%d} ({key.days_left} days)"
        if key.warning:
            expiry += f" WARNING: {key.warning.replace('_', ' ')}"
        signs_until = key.retired_at if key.use == "signing" else None
        unpublished = key.unpublish_at if key.use == "signing" else key.retired_at
        print(f"{key.id:<17} {key.use:<10} {key.state:<11} {_when(key.created_at):<16} "
              f"{_when(key.active_at):<16} {_when(signs_until):<16} {_when(unpublished):<16} "
              f"{expiry}")
    return 0
