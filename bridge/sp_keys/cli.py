"""``bridge saml-keys``: rotate the SP signing key, list the SP's SAML keys with their expiry."""

from __future__ import annotations

import argparse
import datetime as dt
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.config import Settings
from bridge.durations import parse_duration
from bridge.errors import ConfigError

if TYPE_CHECKING:
    from bridge.sp_keys.manager import SamlKeys


def add_commands(commands: Any) -> None:
    """Add the ``saml-keys`` command group to the ``bridge`` parser's subcommands."""
    group = commands.add_parser("saml-keys", help="the SP's SAML keys (signing our requests, "
                                "decrypting assertions)").add_subparsers(dest="saml_keys",
                                                                         required=True)
    rotate = group.add_parser("rotate", help="publish a new SP signing key in our metadata; it "
                              "signs after the lead time (sp_signing_key_lead_days)")
    rotate.add_argument("--lead", metavar="DURATION",
                        help="publication lead for this rotation instead of the setting, with "
                             "its unit (2d, 12h; at most 365d; 0: sign at once)")
    rotate.add_argument("--now", action="store_true",
                        help="sign with the new key at once (the same as --lead 0)")
    rotate.add_argument("--withdraw-old", action="store_true",
                        help="with --now, for a compromised key: every other signing key stops "
                             "signing and leaves our metadata at once (no retention); IdPs that "
                             "have not learnt the new certificate refuse our requests until they "
                             "do")
    rotate.add_argument("--if-due", action="store_true",
                        help="only if the scheduled rotation would (sp_signing_key_rotation_days, "
                             "or the certificate nears its expiry): for an external scheduler")
    group.add_parser("list", help="list the SP's SAML keys: state, signing window, certificate "
                     "expiry")


def _when(value: float | None) -> str:
    """A stored time as the listing shows it; one that no date can show (infinite, NaN, or past
    year 9999, as versions that did not check --lead could store) is shown, not fatal."""
    if value is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, ValueError, OSError):
        return "never" if value == math.inf else "invalid"


def _lead(args: argparse.Namespace) -> float | None:
    """The lead ``rotate`` asks for (None: the setting), checked before anything is done."""
    if args.if_due and (args.lead is not None or args.now or args.withdraw_old):
        raise ConfigError("--if-due: rotates as the scheduled job would; give no --lead, --now "
                          "or --withdraw-old with it")
    lead = (parse_duration(args.lead, option="--lead", maximum_days=365)
            if args.lead is not None else None)
    if args.now:
        if lead not in (None, 0.0):
            raise ConfigError("--now: signs at once; give no other --lead")
        lead = 0.0
    if args.withdraw_old and lead != 0.0:
        raise ConfigError("--withdraw-old: only with --now (the new key must sign at once, since "
                          "the withdrawn ones no longer can)")
    return lead


def run(args: argparse.Namespace, settings: Settings, open_keys: Callable[[], SamlKeys]) -> int:
    """``open_keys`` opens the database (the CLI's wiring): only once the arguments are valid."""
    lead = _lead(args) if args.saml_keys == "rotate" else None
    keys = open_keys()
    if args.saml_keys == "rotate":
        if args.if_due:
            days = settings.sp_signing_key_rotation_days
            print(keys.rotate_if_due(rotation_seconds=days * 86400.0 if days else None))
        else:
            row = keys.rotate(lead_seconds=lead, withdraw_old=args.withdraw_old)
            print(f"published SP signing key {row.id}; it signs from {_when(row.active_at)} UTC. "
                  "Give its certificate to IdPs that do not read our metadata before then.")
            if args.withdraw_old:
                print("every other SP signing key is withdrawn: it no longer signs and is no "
                      "longer in our metadata")
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
