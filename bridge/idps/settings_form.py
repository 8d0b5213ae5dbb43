"""The IdP settings form of the admin page, beyond the common settings (``with_common_settings``):
which attributes feed each claim (``[mapping.claims.<claim>] from``) and the group -> role rules
(``[[mapping.roles]]``), in the shapes ``bridge.claims.mapping`` reads.

The form only ever changes what it shows: a field it did not send, or sent unchanged, leaves the
stored value exactly as it was (a ``from`` written as one string stays one string; the
transforms, defaults and everything else stay), so TOML edited by hand survives a save through the
form. What it writes is checked by the same validation as TOML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bridge.claims.mapping import CLAIMS
from bridge.idps.settings_text import with_common_settings

MATCH_KINDS = ("exact", "prefix", "regex")
# Present in every post of the form's rule rows: without it (a post of the common settings only)
# the rules are left as they are; with it and no rows, the rules are removed.
ROLE_RULES_FIELD = "role_rules"
# The fingerprint of the stored settings the form was rendered from (``settings_fingerprint``):
# a save made from settings that changed since is refused rather than undoing the change.
FINGERPRINT_FIELD = "settings_fingerprint"


# A form post as the view hands it over: every value of each field, in order (werkzeug's
# ``request.form.to_dict(flat=False)``).
FormData = Mapping[str, list[str]]


def _first(form: FormData, key: str) -> str:
    values = form.get(key) or [""]
    return str(values[0])


def source_field(claim: str) -> str:
    return f"from_{claim}"


def _sources(rule: Any) -> list[str] | None:
    """A claim's ``from`` as a list, or None when it is of no shape the form can show."""
    if not isinstance(rule, dict):
        return None
    sources = rule.get("from", [])
    if isinstance(sources, str):
        sources = [sources]
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        return None
    return sources


def _rule_row(entry: Any) -> dict[str, str] | None:
    """A ``[[mapping.roles]]`` entry as a form row, or None when the form cannot show it."""
    if not isinstance(entry, dict) or set(entry) - {"role", *MATCH_KINDS}:
        return None
    kinds = [k for k in MATCH_KINDS if k in entry]
    if len(kinds) != 1 or not all(isinstance(v, str) for v in entry.values()):
        return None
    return {"match": kinds[0], "value": entry[kinds[0]], "role": entry.get("role", "")}


def form_values(settings: Mapping[str, Any]) -> dict[str, Any]:
    """What the form shows of ``settings`` (as stored): each claim's sources, one per line, and
    the role rules as rows. A value of a shape the form cannot show is marked not editable; the
    form then leaves it to the TOML view."""
    mapping = settings.get("mapping") or {}
    if not isinstance(mapping, dict):  # stored by an earlier version: the TOML view shows it
        return {"sources": dict.fromkeys(CLAIMS), "roles_editable": False, "roles": []}
    claims = mapping.get("claims") or {}
    sources: dict[str, str | None] = {}
    for claim in CLAIMS:
        listed = _sources(claims.get(claim, {})) if isinstance(claims, dict) else None
        sources[claim] = None if listed is None else "\n".join(listed)
    raw_roles = mapping.get("roles", [])
    rows = [_rule_row(entry) for entry in raw_roles] if isinstance(raw_roles, list) else [None]
    editable = all(row is not None for row in rows)
    return {"sources": sources, "roles_editable": editable,
            "roles": [row for row in rows if row is not None] if editable else []}


def posted_form_values(form: FormData) -> dict[str, Any]:
    """What the form shows after a refused post: what was posted, as it was typed."""
    return {"sources": {claim: _first(form, source_field(claim))
                        if source_field(claim) in form else None for claim in CLAIMS},
            "roles_editable": ROLE_RULES_FIELD in form, "roles": _rows(form)}


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]


def _rows(form: FormData) -> list[dict[str, str]]:
    """The rule rows as posted: the three lists side by side; a row left empty is no rule."""
    matches, values, roles = (list(form.get(name) or [])
                              for name in ("role_match", "role_value", "role_name"))
    count = max(len(matches), len(values), len(roles))

    def at(column: list[Any], index: int) -> str:
        return str(column[index]).strip() if index < len(column) else ""

    rows = []
    for index in range(count):
        row = {"match": at(matches, index), "value": at(values, index),
               "role": at(roles, index)}
        if row["value"] or row["role"]:
            rows.append(row)
    return rows


def _entry(row: dict[str, str]) -> dict[str, str]:
    # An unknown kind is written as it came, so validation names it where it is.
    return {row["match"] or "exact": row["value"], "role": row["role"]}


def _trimmed(row: dict[str, str]) -> dict[str, str]:
    return {key: value.strip() for key, value in row.items()}


def _entries(rows: list[dict[str, str]], shown: list[dict[str, str]],
             stored: list[Any]) -> list[Any]:
    """The rules as posted: a row that is one of the stored rules (as the form reads it) is
    that rule exactly as written (a value with a meaningful space, ``prefix = "Admins "``,
    stays so); only a new or edited row is written from the form."""
    unedited: dict[tuple[str, ...], list[Any]] = {}
    for row, entry in zip(shown, stored, strict=True):
        unedited.setdefault(tuple(_trimmed(row).values()), []).append(entry)
    written = []
    for row in rows:
        same = unedited.get(tuple(row.values()))
        written.append(same.pop(0) if same else _entry(row))
    return written


def settings_from_form(settings: Mapping[str, Any], form: FormData) -> dict[str, Any]:
    """``settings`` (as stored) with what the form changed: the common settings, each claim's
    sources and the role rules. Nothing the form did not show, or did not change, is touched."""
    changed = with_common_settings(dict(settings), {key: _first(form, key) for key in form})
    shown = form_values(settings)
    stored_mapping = changed.get("mapping") or {}
    if not isinstance(stored_mapping, dict):
        return changed  # a mapping the form cannot show: the TOML view edits it
    mapping: dict[str, Any] = json.loads(json.dumps(stored_mapping))
    # Claims of a shape the form cannot show are shown as not editable, and left as they are.
    stored_claims = mapping.get("claims") or {}
    claims: dict[str, Any] = dict(stored_claims) if isinstance(stored_claims, dict) else {}
    touched = False
    for claim in CLAIMS:
        field = source_field(claim)
        if field not in form or shown["sources"][claim] is None:
            continue
        posted = _lines(_first(form, field))
        if posted == _lines(shown["sources"][claim]):
            continue  # unchanged: kept exactly as written
        touched = True
        rule = dict(claims.get(claim) or {})
        if posted:
            rule["from"] = posted
        else:
            rule.pop("from", None)  # the preset's (or the default's) sources again
        if rule:
            claims[claim] = rule
        else:
            claims.pop(claim, None)
    if touched:
        if claims:
            mapping["claims"] = claims
        else:
            mapping.pop("claims", None)
    if ROLE_RULES_FIELD in form and shown["roles_editable"]:
        rows = _rows(form)
        # Compared as the rows are read (trimmed): a rule written with spaces stays as written.
        if rows != [_trimmed(row) for row in shown["roles"]]:
            touched = True
            if rows:
                mapping["roles"] = _entries(rows, shown["roles"], mapping.get("roles") or [])
            else:
                mapping.pop("roles", None)  # no rules (the presets have none either)
    if touched:
        if mapping:
            changed["mapping"] = mapping
        else:
            changed.pop("mapping", None)
    return changed
