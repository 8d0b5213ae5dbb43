"""Attribute mapping as data: per IdP, which SAML attributes become which claim values.

A mapping is parsed (and validated, every problem with its location) from the ``[mapping]`` table
of an IdP's settings, on top of an optional vendor preset. Applying it to an ``Identity`` gives the
version-neutral ``MappedClaims``; each claims version then takes what its schema allows.

    [mapping]
    preset = "entra"                        # adfs | entra | okta | google | shibboleth | keycloak
    email_verified = true                   # the IdP vouches for e-mail addresses
    group_names = { "6f1c0e6a-..." = "engineering" }    # Entra ID group object IDs -> names

    [mapping.claims.email]                  # email, name, given_name, family_name, groups, tenant
    from = ["mail", "email"]                # first attribute present wins
    transforms = ["trim", "lower"]          # trim, lower, {split=","}, {regex_extract="..."},
                                            # {value_map={a="b"}}, {join=" "}
    default = "..."                         # when no source is present
    required = true                         # refuse the login when it is missing

    [mapping.groups]
    allow = [{ prefix = "app-" }]           # only these groups reach tokens (default: all)
    deny = [{ exact = "disabled-users" }]   # members of these may not log in at all

    [[mapping.roles]]                        # group -> role rules: exact, prefix or regex
    prefix = "app-admin"
    role = "admin"
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping as MappingType
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from bridge.config.problems import Problems
from bridge.errors import ConfigError, SamlRejected
from bridge.identity import Identity
from bridge.patterns import MAX_PATTERN, LinearPattern, PatternRefused

CLAIMS = ("email", "name", "given_name", "family_name", "groups", "tenant")
NAMEID_SOURCE = "$nameid"  # the assertion's NameID value as a source (Google sends e-mail there)
# Attributes whose presence means "the IdP left groups out because there were too many"
# (Entra ID sends groups.link instead of groups for users in more than 150 groups).
GROUPS_OVERAGE_MARKERS = ("http://schemas.microsoft.com/claims/groups.link",)
MULTI_VALUED = frozenset({"groups"})
TRANSFORMS = ("trim", "lower", "split", "regex_extract", "value_map", "join")

# What one IdP's mapping may ask of the bridge. Every save, the admin API and the settings
# page's preview (sent as an admin types) check a mapping by compiling its patterns; a login
# runs every role rule against every group. Counted before anything is compiled:
# - role rules: 200, several times what an IdP's groups call for (a rule per application
#   role), well under what would make a login's matching of a few hundred groups slow;
# - the characters of all its patterns together: 16 kB (64 patterns at the 256-character
#   cap, or 200 rules of 80 characters).
# Then while compiling: the patterns' programs together, 500,000 steps (ten at the
# per-pattern cap, MAX_PROGRAM; "\w+" is about 1,350), which bounds the compiling itself to
# about a third of a second and 40 MB whatever the patterns are; and checking stops after
# 20 problems (a pattern refused for its size is compiled first).
MAX_ROLE_RULES = 200
MAX_PATTERN_TEXT = 16 * 1024
MAX_PATTERN_STEPS = 500_000
MAX_PROBLEMS = 20
# The steps compiled so far for the mapping being parsed (parse_mapping sets it).
_steps: ContextVar[list[int] | None] = ContextVar("pattern_steps", default=None)


@dataclass(frozen=True)
class Transform:
    kind: str
    argument: Any = None

    def apply(self, values: list[str]) -> list[str]:
        if self.kind == "trim":
            return [v.strip() for v in values]
        if self.kind == "lower":
            return [v.lower() for v in values]
        if self.kind == "split":
            return [part for v in values for part in v.split(self.argument) if part]
        if self.kind == "regex_extract":
            # Linear time in the value (bridge.patterns): the IdP chooses the values.
            extracted = (self.argument.extract(value) for value in values)
            return [value for value in extracted if value is not None]
        if self.kind == "value_map":
            return [self.argument.get(v, v) for v in values]
        if self.kind == "join":
            return [self.argument.join(values)] if values else []
        raise AssertionError(self.kind)


@dataclass(frozen=True)
class ClaimRule:
    sources: tuple[str, ...] = ()
    transforms: tuple[Transform, ...] = ()
    default: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class Match:
    kind: str  # exact | prefix | regex
    value: str
    pattern: LinearPattern | None = None

    def matches(self, text: str) -> bool:
        if self.kind == "exact":
            return text == self.value
        if self.kind == "prefix":
            return text.startswith(self.value)
        assert self.pattern is not None
        return self.pattern.fullmatch(text)  # linear time in the group name (bridge.patterns)


@dataclass(frozen=True)
class RoleRule:
    match: Match
    role: str


@dataclass(frozen=True)
class ClaimMapping:
    claims: dict[str, ClaimRule] = field(default_factory=dict)
    email_verified: bool = False
    group_names: dict[str, str] = field(default_factory=dict)
    group_allow: tuple[Match, ...] = ()
    group_deny: tuple[Match, ...] = ()
    roles: tuple[RoleRule, ...] = ()
    preset: str | None = None


@dataclass(frozen=True)
class MappedClaims:
    """What an IdP said about a user, in claim terms, before any version shapes it."""

    email: str | None = None
    email_verified: bool = False
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    tenant: str | None = None
    # The IdP said it left groups out (too many): groups and roles are incomplete.
    groups_incomplete: bool = False


# --- applying --------------------------------------------------------------------------------------

def apply_mapping(mapping: ClaimMapping, identity: Identity) -> MappedClaims:
    attributes = identity.attributes
    values: dict[str, list[str]] = {}
    for claim in CLAIMS:
        rule = mapping.claims.get(claim, ClaimRule())
        found: list[str] = []
        for source in rule.sources:
            if source == NAMEID_SOURCE and identity.name_id:
                found = [identity.name_id]
                break
            if attributes.get(source):
                found = list(attributes[source])
                break
        for transform in rule.transforms:
            found = transform.apply(found)
        found = [v for v in found if v]
        if not found:
            found = list(rule.default)
        if rule.required and not found:
            raise SamlRejected(
                "claims_required_missing",
                f"The IdP did not send the attribute this login requires for '{claim}'.",
                log_detail={"claim": claim, "idp": identity.idp_slug,
                            "expected_one_of": list(rule.sources),
                            "arrived": sorted(attributes)},
            )
        values[claim] = found

    groups = [mapping.group_names.get(g, g) for g in values["groups"]]
    groups = list(dict.fromkeys(groups))  # de-duplicated, IdP order kept
    denied = [g for g in groups if any(m.matches(g) for m in mapping.group_deny)]
    if denied:
        raise SamlRejected("claims_login_denied",
                           "Your account is not allowed to sign in to this application.",
                           log_detail={"idp": identity.idp_slug, "denied_groups": denied[:10]})
    roles = list(dict.fromkeys(rule.role for rule in mapping.roles
                               if any(rule.match.matches(g) for g in groups)))
    if mapping.group_allow:
        groups = [g for g in groups if any(m.matches(g) for m in mapping.group_allow)]

    def single(claim: str) -> str | None:
        return values[claim][0] if values[claim] else None

    return MappedClaims(
        email=single("email"),
        email_verified=mapping.email_verified and bool(values["email"]),
        name=single("name"),
        given_name=single("given_name"),
        family_name=single("family_name"),
        groups=tuple(groups),
        roles=tuple(roles),
        tenant=single("tenant"),
        groups_incomplete=any(marker in attributes for marker in GROUPS_OVERAGE_MARKERS),
    )


# --- parsing ---------------------------------------------------------------------------------------

def parse_mapping(raw: Any, *, source: str, presets: MappingType[str, ClaimMapping]) -> ClaimMapping:
    """Parse a ``[mapping]`` table on top of its preset; raise ``ConfigError`` listing problems."""
    problems = Problems(f"{source}: mapping")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{problems.where}: must be a table")
    known = {"preset", "email_verified", "group_names", "claims", "groups", "roles"}
    for key in sorted(set(raw) - known):
        problems.at(key).add("unknown mapping setting")
    _check_size(raw, problems)  # before compiling anything
    token = _steps.set([0])
    try:
        return _parse_mapping(raw, problems, presets)
    finally:
        _steps.reset(token)


def _check_size(raw: dict[str, Any], problems: Problems) -> None:
    """Refuse, with nothing compiled, a mapping with more role rules or pattern text than any
    IdP needs (``MAX_ROLE_RULES``, ``MAX_PATTERN_TEXT``)."""
    found = len(problems)
    raw_roles = raw.get("roles")
    if isinstance(raw_roles, list) and len(raw_roles) > MAX_ROLE_RULES:
        problems.at("roles").add(f"{len(raw_roles)} rules, at most {MAX_ROLE_RULES}; match "
                                 "several groups with one prefix or regex rule")
    text = sum(len(pattern) for pattern in _patterns(raw))
    if text > MAX_PATTERN_TEXT:
        problems.add(f"its regular expressions come to {text:,} characters, at most "
                     f"{MAX_PATTERN_TEXT:,} for one IdP")
    if len(problems) > found:
        problems.raise_any()


def _patterns(raw: dict[str, Any]) -> Iterator[str]:
    """Every regular expression of a ``[mapping]`` table as written (roles, groups allow and
    deny, regex_extract transforms), whatever else is wrong with it."""
    groups = raw.get("groups")
    matches = [raw.get("roles")]
    if isinstance(groups, dict):
        matches += [groups.get("allow"), groups.get("deny")]
    for listed in matches:
        for entry in listed if isinstance(listed, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("regex"), str):
                yield entry["regex"]
    claims = raw.get("claims")
    for rule in claims.values() if isinstance(claims, dict) else []:
        transforms = rule.get("transforms") if isinstance(rule, dict) else None
        for transform in transforms if isinstance(transforms, list) else []:
            if isinstance(transform, dict) and isinstance(transform.get("regex_extract"), str):
                yield transform["regex_extract"]


def _parse_mapping(raw: dict[str, Any], problems: Problems,
                   presets: MappingType[str, ClaimMapping]) -> ClaimMapping:

    preset_name = raw.get("preset")
    base = presets["default"]
    if preset_name is not None:
        if (not isinstance(preset_name, str) or preset_name not in presets
                or preset_name == "default"):
            choices = ", ".join(sorted(p for p in presets if p != "default"))
            problems.at("preset").add(f"unknown preset {preset_name!r} (one of {choices})")
        else:
            base = presets[preset_name]

    claims = dict(base.claims)
    raw_claims = raw.get("claims", {})
    if not isinstance(raw_claims, dict):
        problems.at("claims").add("must be a table of claim names")
        raw_claims = {}
    for claim, rule in raw_claims.items():
        if claim not in CLAIMS:
            problems.at("claims").at(claim).add(f"not a mappable claim (one of {', '.join(CLAIMS)})")
            continue
        parsed = _parse_rule(rule, problems.at("claims").at(claim))
        if parsed is not None:
            claims[claim] = parsed

    email_verified = raw.get("email_verified", base.email_verified)
    if not isinstance(email_verified, bool):
        problems.at("email_verified").add("must be true or false")
        email_verified = False

    group_names = raw.get("group_names", {})
    if not isinstance(group_names, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in group_names.items()):
        problems.at("group_names").add("must be a table of group ID = \"name\"")
        group_names = {}

    groups = raw.get("groups", {})
    if not isinstance(groups, dict):
        problems.at("groups").add("must be a table with allow and deny")
        groups = {}
    for key in sorted(set(groups) - {"allow", "deny"}):
        problems.at("groups").at(key).add("unknown setting (allow, deny)")
    allow = _parse_matches(groups.get("allow", []), problems.at("groups").at("allow"))
    deny = _parse_matches(groups.get("deny", []), problems.at("groups").at("deny"))

    roles: list[RoleRule] = list(base.roles)
    raw_roles = raw.get("roles")
    if raw_roles is not None:
        roles = []
        if not isinstance(raw_roles, list):
            problems.at("roles").add("must be a list of [[mapping.roles]] tables")
            raw_roles = []
        for index, entry in enumerate(raw_roles):
            at = problems.at("roles").at(f"[{index}]")
            if not isinstance(entry, dict):
                at.add("must be a table")
                continue
            role = entry.get("role")
            if not isinstance(role, str) or not role:
                at.at("role").add("required, the role name")
            rest = {k: v for k, v in entry.items() if k != "role"}
            match = _parse_match(rest, at)
            if match is not None and isinstance(role, str) and role:
                roles.append(RoleRule(match, role))

    problems.raise_any()
    return ClaimMapping(
        claims=claims,
        email_verified=email_verified,
        group_names={**base.group_names, **group_names},
        group_allow=allow or base.group_allow,
        group_deny=deny or base.group_deny,
        roles=tuple(roles),
        preset=preset_name if isinstance(preset_name, str) else None,
    )


def _parse_rule(raw: Any, problems: Problems) -> ClaimRule | None:
    if not isinstance(raw, dict):
        problems.add("must be a table (from, transforms, default, required)")
        return None
    for key in sorted(set(raw) - {"from", "transforms", "default", "required"}):
        problems.at(key).add("unknown setting (from, transforms, default, required)")
    sources = raw.get("from", [])
    if isinstance(sources, str):
        sources = [sources]
    if not isinstance(sources, list) or not all(isinstance(s, str) and s for s in sources):
        problems.at("from").add("must be a list of attribute names")
        sources = []
    transforms = []
    raw_transforms = raw.get("transforms", [])
    if not isinstance(raw_transforms, list):
        problems.at("transforms").add("must be a list")
        raw_transforms = []
    for index, entry in enumerate(raw_transforms):
        parsed = _parse_transform(entry, problems.at("transforms").at(f"[{index}]"))
        if parsed is not None:
            transforms.append(parsed)
    default = raw.get("default", [])
    if isinstance(default, str):
        default = [default]
    if not isinstance(default, list) or not all(isinstance(d, str) for d in default):
        problems.at("default").add("must be a string or a list of strings")
        default = []
    required = raw.get("required", False)
    if not isinstance(required, bool):
        problems.at("required").add("must be true or false")
        required = False
    return ClaimRule(tuple(sources), tuple(transforms), tuple(default), required)


def _parse_transform(raw: Any, problems: Problems) -> Transform | None:
    if isinstance(raw, str):
        if raw in ("trim", "lower"):
            return Transform(raw)
        problems.add(f"unknown transform {raw!r} (one of {', '.join(TRANSFORMS)})")
        return None
    if not isinstance(raw, dict) or len(raw) != 1:
        problems.add("a transform is a name or a one-key table like {split = \",\"}")
        return None
    ((kind, argument),) = raw.items()
    if kind in ("split", "join"):
        if not isinstance(argument, str):
            problems.at(kind).add("must be a string separator")
            return None
        if kind == "split" and not argument:
            problems.at("split").add("the separator may not be empty")
            return None
        return Transform(kind, argument)
    if kind == "regex_extract":
        pattern = _compile(argument, problems.at("regex_extract"))
        return Transform(kind, pattern) if pattern is not None else None
    if kind == "value_map":
        if not isinstance(argument, dict) or not all(isinstance(v, str) for v in argument.values()):
            problems.at("value_map").add("must be a table of \"from\" = \"to\"")
            return None
        return Transform(kind, dict(argument))
    if kind in ("trim", "lower"):
        return Transform(kind)
    problems.add(f"unknown transform {kind!r} (one of {', '.join(TRANSFORMS)})")
    return None


def _parse_matches(raw: Any, problems: Problems) -> tuple[Match, ...]:
    if not isinstance(raw, list):
        problems.add("must be a list of {exact|prefix|regex = \"...\"}")
        return ()
    out = []
    for index, entry in enumerate(raw):
        match = _parse_match(entry, problems.at(f"[{index}]"))
        if match is not None:
            out.append(match)
    return tuple(out)


def _parse_match(raw: Any, problems: Problems) -> Match | None:
    if not isinstance(raw, dict):
        problems.add("must be a table with exact, prefix or regex")
        return None
    kinds = [k for k in ("exact", "prefix", "regex") if k in raw]
    unknown = sorted(set(raw) - {"exact", "prefix", "regex"})
    if unknown:
        problems.at(unknown[0]).add("unknown setting (exact, prefix, regex)")
        return None
    if len(kinds) != 1:
        problems.add("give exactly one of exact, prefix, regex")
        return None
    kind = kinds[0]
    value = raw[kind]
    if not isinstance(value, str) or not value:
        problems.at(kind).add("must be a non-empty string")
        return None
    if kind == "regex":
        pattern = _compile(value, problems.at("regex"))
        return Match(kind, value, pattern) if pattern is not None else None
    return Match(kind, value)


def _compile(value: Any, problems: Problems) -> LinearPattern | None:
    """Compile for the linear-time engine; a pattern it cannot run is refused here, when the
    mapping is saved or loaded, never at login. Within a mapping, nothing more is compiled
    once MAX_PROBLEMS problems are found or MAX_PATTERN_STEPS are spent."""
    if not isinstance(value, str) or not value or len(value) > MAX_PATTERN:
        problems.add(f"must be a regular expression of 1 to {MAX_PATTERN} characters")
        return None
    steps = _steps.get()
    if len(problems) >= MAX_PROBLEMS:
        if len(problems) == MAX_PROBLEMS:
            problems.add(f"not checked, nor the patterns after it: {MAX_PROBLEMS} problems "
                         "already; fix those first")
        return None
    if steps is not None and steps[0] > MAX_PATTERN_STEPS:
        problems.add(f"not compiled: the mapping's regular expressions before it come to "
                     f"{steps[0]:,} steps, at most {MAX_PATTERN_STEPS:,} for one IdP "
                     "(use fewer, smaller patterns)")
        return None
    pattern: LinearPattern | None = None
    try:
        pattern = LinearPattern(value)
        size = pattern.size
    except PatternRefused as exc:
        size = exc.size
        problems.add(f"not a valid regular expression ({exc})")
    if steps is not None:
        steps[0] += size
    return pattern


def with_claims(mapping: ClaimMapping, **claims: ClaimRule) -> ClaimMapping:
    return replace(mapping, claims={**mapping.claims, **claims})
