"""Attribute mapping as data: presets with attributes shaped like each vendor's real output,
transforms, rules, validation with locations, and the token-size budget."""

from __future__ import annotations

import re
import time
import tomllib
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bridge.claims import GroupBudget, build_claims, token_claims
from bridge.claims.mapping import ClaimMapping, apply_mapping, parse_mapping
from bridge.claims.presets import MAPPING_PRESETS, PRESETS
from bridge.claims.schemas import validate_payload
from bridge.clock import FixedClock
from bridge.errors import ConfigError, SamlRejected
from bridge.identity import Identity
from bridge.idps.settings import parse_idp_settings
from bridge.patterns import LinearPattern
from bridge.tokens.access import issue_access_token
from bridge.tokens.keys import ActiveKey

MS = "http://schemas.microsoft.com"
SOAP = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"


def identity(attributes: dict[str, list[str]], name_id: str | None = None,
             context: str | None = None) -> Identity:
    return Identity(subject="abcdefghijklmnopqrstuvwxyz234567", idp_slug="corp",
                    idp_entity_id="https://idp.example.com",
                    attributes={k: tuple(v) for k, v in attributes.items()},
                    auth_time=1_800_000_000, name_id=name_id, authn_context_class=context)


def mapping(toml: str) -> ClaimMapping:
    return parse_mapping(tomllib.loads(toml).get("mapping", {}), source="corp.toml",
                         presets=MAPPING_PRESETS)


# --- vendor presets, with attributes as each vendor sends them ---------------------------------

VENDOR_OUTPUT: dict[str, tuple[dict[str, list[str]], str | None, dict[str, Any]]] = {
    "adfs": ({
        f"{SOAP}/emailaddress": ["Alice.Andersen@corp.example"],
        f"{SOAP}/name": ["Alice Andersen"],
        f"{SOAP}/givenname": ["Alice"],
        f"{SOAP}/surname": ["Andersen"],
        "http://schemas.xmlsoap.org/claims/Group": ["Domain Users", "Engineering"],
    }, "CORP\\alice", {"email": "Alice.Andersen@corp.example", "name": "Alice Andersen",
                      "groups": ("Domain Users", "Engineering")}),
    "entra": ({
        f"{MS}/identity/claims/tenantid": ["72f988bf-86f1-41af-91ab-2d7cd011db47"],
        f"{MS}/identity/claims/objectidentifier": ["4f2b6c1e-8d0a-4c5e-9f3b-2a1d7e6c5b40"],
        f"{MS}/identity/claims/displayname": ["Alice Andersen"],
        f"{SOAP}/name": ["alice@contoso.com"],
        f"{SOAP}/emailaddress": ["alice@contoso.com"],
        f"{SOAP}/givenname": ["Alice"],
        f"{SOAP}/surname": ["Andersen"],
        f"{MS}/ws/2008/06/identity/claims/groups": ["6f1c0e6a-0000-4000-8000-000000000001"],
    }, "alice@contoso.com", {"email": "alice@contoso.com", "name": "Alice Andersen",
                             "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                             "groups": ("6f1c0e6a-0000-4000-8000-000000000001",)}),
    "okta": ({
        "email": ["alice@example.okta.com"], "firstName": ["Alice"], "lastName": ["Andersen"],
        "groups": ["Everyone", "Engineering"],
    }, "00u1abcd2EFGH3ijk4x7", {"email": "alice@example.okta.com", "given_name": "Alice",
                                 "family_name": "Andersen", "groups": ("Everyone", "Engineering")}),
    "google": ({
        "first_name": ["Alice"], "last_name": ["Andersen"], "groups": ["eng@example.com"],
    }, "alice@example.com", {"email": "alice@example.com", "email_verified": True,
                             "given_name": "Alice", "groups": ("eng@example.com",)}),
    "shibboleth": ({
        "urn:oid:0.9.2342.19200300.100.1.3": ["alice@uni.example.edu"],
        "urn:oid:2.16.840.1.113730.3.1.241": ["Alice Andersen"],
        "urn:oid:1.3.6.1.4.1.5923.1.5.1.1": ["staff", "physics"],
        "urn:oid:1.3.6.1.4.1.25178.1.2.9": ["uni.example.edu"],
    }, None, {"email": "alice@uni.example.edu", "name": "Alice Andersen",
              "groups": ("staff", "physics"), "tenant": "uni.example.edu"}),
    "keycloak": ({
        "email": ["alice@example.org"], "firstName": ["Alice"], "lastName": ["Andersen"],
        "groups": ["/engineering", "/admins"], "Role": ["offline_access"],
    }, "f:1234:alice", {"email": "alice@example.org", "given_name": "Alice",
                        "groups": ("/engineering", "/admins")}),
}


@pytest.mark.parametrize("vendor", sorted(VENDOR_OUTPUT))
def test_presets_read_each_vendors_attributes(vendor: str) -> None:
    attributes, name_id, expected = VENDOR_OUTPUT[vendor]
    mapped = apply_mapping(mapping(f'[mapping]\npreset = "{vendor}"\n'),
                           identity(attributes, name_id))
    for claim, value in expected.items():
        assert getattr(mapped, claim) == value, claim
    # The default mapping understands every vendor too (version 1's recognition).
    default = apply_mapping(MAPPING_PRESETS["default"], identity(attributes, name_id))
    assert default.groups == expected["groups"]


def test_every_preset_has_instructions() -> None:
    assert set(PRESETS) == {"adfs", "entra", "okta", "google", "shibboleth", "keycloak"}
    for preset in PRESETS.values():
        assert preset.instructions and preset.signs


def test_entra_preset_uses_the_object_id_as_subject() -> None:
    settings = parse_idp_settings({"mapping": {"preset": "entra"}}, source="corp.toml")
    assert settings.subject_attribute == f"{MS}/identity/claims/objectidentifier"
    explicit = parse_idp_settings({"mapping": {"preset": "entra"}, "subject_attribute": "oid"},
                                  source="corp.toml")
    assert explicit.subject_attribute == "oid"


def test_entra_group_guids_become_names_and_roles() -> None:
    attributes, name_id, _ = VENDOR_OUTPUT["entra"]
    mapped = apply_mapping(mapping('''
[mapping]
preset = "entra"
group_names = { "6f1c0e6a-0000-4000-8000-000000000001" = "engineering" }
[[mapping.roles]]
exact = "engineering"
role = "engineer"
'''), identity(attributes, name_id))
    assert mapped.groups == ("engineering",)
    assert mapped.roles == ("engineer",)


def test_entra_groups_overage_claim_is_noticed() -> None:
    mapped = apply_mapping(mapping('[mapping]\npreset = "entra"\n'), identity({
        f"{MS}/claims/groups.link": ["https://graph.windows.net/.../getMemberObjects"]}))
    assert mapped.groups == () and mapped.groups_incomplete
    claims = build_claims(2, identity({f"{MS}/claims/groups.link": ["x"]}),
                          mapping('[mapping]\npreset = "entra"\n'))
    assert claims["groups_overage"] is True


# --- transforms, rules --------------------------------------------------------------------------

def test_first_present_source_wins_and_transforms_run_in_order() -> None:
    mapped = apply_mapping(mapping('''
[mapping.claims.email]
from = ["missing", "mail", "email"]
transforms = ["trim", "lower"]
[mapping.claims.groups]
from = ["memberOf"]
transforms = [{ regex_extract = "^CN=([^,]+)," }, { value_map = { "Domain Admins" = "admins" } }]
[mapping.claims.name]
from = ["first", "last"]
[mapping.claims.tenant]
from = ["tenant-attr"]
default = "contoso"
'''), identity({
        "mail": ["  Alice@Example.COM "], "email": ["ignored@example.com"],
        "memberOf": ["CN=Domain Admins,OU=Groups,DC=corp", "CN=Eng,OU=Groups,DC=corp", "junk"],
        "first": ["Alice"],
    }))
    assert mapped.email == "alice@example.com"
    assert mapped.groups == ("admins", "Eng")
    assert mapped.name == "Alice"
    assert mapped.tenant == "contoso"


def test_split_and_join() -> None:
    mapped = apply_mapping(mapping('''
[mapping.claims.groups]
from = ["roles"]
transforms = [{ split = ";" }, "trim"]
[mapping.claims.name]
from = ["parts"]
transforms = [{ join = " " }]
'''), identity({"roles": ["a; b;c"], "parts": ["Alice", "B.", "Andersen"]}))
    assert mapped.groups == ("a", "b", "c")
    assert mapped.name == "Alice B. Andersen"


def test_nameid_as_a_source() -> None:
    mapped = apply_mapping(mapping('[mapping.claims.email]\nfrom = ["$nameid"]\n'),
                           identity({}, name_id="alice@example.com"))
    assert mapped.email == "alice@example.com"


def test_required_claim_missing_names_attribute_idp_and_what_arrived() -> None:
    rules = mapping('[mapping.claims.email]\nfrom = ["mail"]\nrequired = true\n')
    with pytest.raises(SamlRejected) as caught:
        apply_mapping(rules, identity({"uid": ["alice"], "cn": ["Alice"]}))
    error = caught.value
    assert error.code == "claims_required_missing"
    assert error.log_detail == {"claim": "email", "idp": "corp", "expected_one_of": ["mail"],
                                "arrived": ["cn", "uid"]}


def test_role_rules_exact_prefix_regex_and_group_filters() -> None:
    rules = mapping('''
[mapping.groups]
allow = [{ prefix = "app-" }]
deny = [{ exact = "app-suspended" }]
[[mapping.roles]]
exact = "app-admins"
role = "admin"
[[mapping.roles]]
prefix = "app-eng-"
role = "engineer"
[[mapping.roles]]
regex = "app-(sales|support)"
role = "customer-facing"
''')
    mapped = apply_mapping(rules, identity({"groups": [
        "Everyone", "app-admins", "app-eng-backend", "app-eng-frontend", "app-support"]}))
    assert mapped.roles == ("admin", "engineer", "customer-facing")
    assert mapped.groups == ("app-admins", "app-eng-backend", "app-eng-frontend", "app-support")
    with pytest.raises(SamlRejected) as caught:
        apply_mapping(rules, identity({"groups": ["app-admins", "app-suspended"]}))
    assert caught.value.code == "claims_login_denied"


def test_regex_roles_match_the_whole_group_name() -> None:
    rules = mapping('[[mapping.roles]]\nregex = "admins"\nrole = "admin"\n')
    assert apply_mapping(rules, identity({"groups": ["not-admins-really"]})).roles == ()


@pytest.mark.parametrize("toml,location", [
    ('[mapping]\npreset = "azure"', "mapping.preset: unknown preset 'azure'"),
    ('[mapping.claims.mail]\nfrom = ["x"]', "mapping.claims.mail: not a mappable claim"),
    ('[mapping.claims.email]\ntransforms = ["lowercase"]',
     "mapping.claims.email.transforms[0]: unknown transform 'lowercase'"),
    ('[mapping.claims.email]\ntransforms = [{ regex_extract = "(" }]',
     "mapping.claims.email.transforms[0].regex_extract: not a valid regular expression"),
    ('[mapping.claims.groups]\ntransforms = [{ split = "" }]',
     "mapping.claims.groups.transforms[0].split: the separator may not be empty"),
    ('[mapping.claims.email]\nrequired = "yes"', "mapping.claims.email.required: must be true"),
    ('[[mapping.roles]]\nprefix = "app-"', "mapping.roles[0].role: required"),
    ('[[mapping.roles]]\nrole = "x"\nprefix = "a"\nexact = "b"',
     "mapping.roles[0]: give exactly one of exact, prefix, regex"),
    ('[mapping.groups]\nallow = [{ glob = "*" }]', "mapping.groups.allow[0].glob: unknown setting"),
    ('[mapping.groups]\nblock = []', "mapping.groups.block: unknown setting"),
])
def test_invalid_rules_are_refused_with_their_location(toml: str, location: str) -> None:
    with pytest.raises(ConfigError) as caught:
        mapping(toml)
    assert any(p.startswith("corp.toml: ") and location in p for p in caught.value.problems), \
        caught.value.problems


# --- versions, scopes, budget ------------------------------------------------------------------

def _token(claims: dict[str, Any], scope: str) -> str:
    key = ActiveKey("kid-2026-01", "ES256", ec.generate_private_key(ec.SECP256R1()))
    return issue_access_token(claims, issuer="https://sso.example.com",
                              audience="https://api.example.com", client_id="web-app",
                              auth_time=1_800_000_000, scope=scope, ttl=600, key=key,
                              clock=FixedClock(1_800_000_100),
                              login="0123456789abcdef0123456789abcdef")  # as from a login


REFERENCE_USER = identity({
    f"{SOAP}/emailaddress": ["alice.andersen@example.com"],
    f"{MS}/identity/claims/displayname": ["Alice Andersen"],
    f"{SOAP}/givenname": ["Alice"],
    f"{SOAP}/surname": ["Andersen"],
    "http://schemas.xmlsoap.org/claims/Group": [f"app-group-{i:02d}" for i in range(20)],
}, context="urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
# 20 groups, four to a role.
REFERENCE_MAPPING = mapping("\n".join(
    f'[[mapping.roles]]\nregex = "app-group-({"|".join(f"{j:02d}" for j in range(4 * i, 4 * i + 4))})"'
    f'\nrole = "role-{i}"\n' for i in range(5)))


def test_reference_token_v2_is_at_most_one_kilobyte() -> None:
    full = build_claims(2, REFERENCE_USER, REFERENCE_MAPPING)
    assert full["roles"] == [f"role-{i}" for i in range(5)]
    assert len(full["groups"]) == 20
    claims = token_claims(full, "openid profile email", GroupBudget())
    token = _token(claims, "openid profile email")
    payload = jwt.decode(token, options={"verify_signature": False})
    validate_payload(payload)
    assert "groups" not in payload and payload["roles"] == full["roles"]
    assert len(token) <= 1024, len(token)


def test_groups_scope_brings_groups_within_budget_and_overage_beyond() -> None:
    full = build_claims(2, REFERENCE_USER, REFERENCE_MAPPING)
    within = token_claims(full, "openid groups", GroupBudget(max_count=50, max_bytes=1024))
    assert len(within["groups"]) == 20 and "groups_overage" not in within
    validate_payload(jwt.decode(_token(within, "openid groups"),
                                options={"verify_signature": False}))
    beyond = token_claims(full, "openid groups", GroupBudget(max_count=10, max_bytes=1024))
    assert "groups" not in beyond and beyond["groups_overage"] is True
    by_bytes = token_claims(full, "openid groups", GroupBudget(max_count=50, max_bytes=100))
    assert "groups" not in by_bytes and by_bytes["groups_overage"] is True
    validate_payload(jwt.decode(_token(beyond, "openid groups"),
                                options={"verify_signature": False}))


def test_scopes_release_personal_claims_in_v2_only() -> None:
    full = build_claims(2, REFERENCE_USER, REFERENCE_MAPPING)
    bare = token_claims(full, "", GroupBudget())
    assert {"email", "name", "given_name", "family_name", "groups"}.isdisjoint(bare)
    assert bare["acr"] == "pwd" and bare["amr"] == ["pwd"]
    v1 = build_claims(1, REFERENCE_USER, REFERENCE_MAPPING)
    assert token_claims(v1, "", GroupBudget()) == v1  # version 1 is released whole


def test_version_1_is_unchanged_by_the_mapping_machinery() -> None:
    v1 = build_claims(1, REFERENCE_USER, MAPPING_PRESETS["default"])
    assert set(v1) == {"sub", "idp", "ver", "email", "name", "groups"}
    assert v1["name"] == "Alice Andersen" and len(v1["groups"]) == 20


def test_bad_email_is_refused_not_truncated() -> None:
    with pytest.raises(SamlRejected) as caught:
        build_claims(2, identity({"email": ["alice"]}), MAPPING_PRESETS["default"])
    assert caught.value.code == "claims_attribute_invalid"


# --- regular expressions: linear time, Python's meaning ---------------------------------------------

def test_rule_patterns_run_on_the_linear_time_engine() -> None:
    rules = mapping(r'''
[mapping.claims.tenant]
from = ["tenant"]
transforms = [{ regex_extract = '^([a-z]+-?)+$' }]
[mapping.groups]
allow = [{ regex = '([a-z]+-?)+-(admins|users)' }]
deny = [{ regex = '(\w+\s?)+-suspended' }]
[[mapping.roles]]
regex = '([a-z]+-?)+-admins'
role = "admin"
''')
    patterns = [rules.roles[0].match.pattern, rules.group_allow[0].pattern,
                rules.group_deny[0].pattern, rules.claims["tenant"].transforms[0].argument]
    assert all(isinstance(p, LinearPattern) and p.engine == "re2" for p in patterns)
    # Values at the assertion's limits, each shaped to make a backtracking engine explode
    # (exponential in its length): linear time, so a few milliseconds each.
    crafted = "a" * 4095 + "!"
    started = time.perf_counter()
    mapped = apply_mapping(rules, identity({"groups": [crafted] * 200 + ["eng-admins"],
                                            "tenant": [crafted]}))
    assert time.perf_counter() - started < 5.0
    assert mapped.roles == ("admin",) and mapped.groups == ("eng-admins",)
    assert mapped.tenant is None


@pytest.mark.parametrize("pattern,text,matches", [
    (r"\d+", "١٢٣", True),                 # Unicode digits, as in Python
    (r"\d+", "12a", False),
    (r"\w+", "café_1", True),              # Unicode word characters
    (r"\w+", "a-b", False),
    (r"[\w.-]+@corp", "josé.m-x@corp", True),
    (r"\s", "\u00a0", True),               # Python's whitespace, not just ASCII
    (r"\S+", "a\u2003b", False),
    (r"a{,2}", "aa", True),                # Python: 0 to 2 (RE2 alone: the literal "a{,2}")
    (r"a{,2}", "a{,2}", False),
    (r"admins\Z", "admins", True),         # Python's end of text
    (r"(?i)ADMINS", "admins", True),
    (r"caf\u00e9", "café", True),
    (r"[\b]", "\b", True),                 # a backspace inside a class
    (r"[^\d]+", "abc", True),
    (r"(?P<team>eng)-.*", "eng-x", True),
])
def test_patterns_keep_their_python_meaning(pattern: str, text: str, matches: bool) -> None:
    assert (re.fullmatch(pattern, text) is not None) is matches  # what Python's re says
    assert LinearPattern(pattern).fullmatch(text) is matches


@pytest.mark.parametrize("pattern,why", [
    (r"(a+)\1", "backreferences"),
    (r"(?=admin)admins", "lookaround"),
    (r"(?<!x)admins", "lookaround"),
    (r"(?>a+)b", "atomic groups"),
    (r"a++b", "possessive"),
    (r"\badmins\b", "word boundaries"),
    (r"(?U)a+", "ungreedy"),
    (r"[\W]", "inside [...]"),
    (r"[\d-z]", "end of a range"),
    # 134,512 steps: slow per character when the DFA falls back to the NFA (see MAX_PROGRAM).
    (r"([\w.-]{1,100})-admins", "too large for the linear-time engine"),
])
def test_patterns_the_engine_cannot_run_are_refused_with_their_location(pattern: str,
                                                                       why: str) -> None:
    for toml, location in [
        (f"[[mapping.roles]]\nregex = '{pattern}'\nrole = \"admin\"\n", "mapping.roles[0].regex"),
        (f"[mapping.groups]\ndeny = [{{ regex = '{pattern}' }}]\n", "mapping.groups.deny[0].regex"),
        (f"[mapping.claims.email]\ntransforms = [{{ regex_extract = '{pattern}' }}]\n",
         "mapping.claims.email.transforms[0].regex_extract"),
    ]:
        with pytest.raises(ConfigError) as caught:
            mapping(toml)
        assert any(p.startswith(f"corp.toml: {location}: not a valid regular expression")
                   and why in p for p in caught.value.problems), caught.value.problems


def test_a_value_that_is_not_valid_unicode_is_matched_not_crashed_on() -> None:
    rules = mapping('[[mapping.roles]]\nregex = "eng-.*"\nrole = "engineer"\n')
    mapped = apply_mapping(rules, identity({"groups": ["eng-\ud800", "x\udfff"]}))
    assert mapped.roles == ("engineer",)
