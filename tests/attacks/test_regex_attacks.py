"""Values chosen to make regular expressions slow (ReDoS): a user who names their own groups at the
IdP against an admin's role and deny rules, and an unauthenticated poster whose observed values are
masked in the log. Each must cost time linear in the value, so the login (or the refusal) comes
back at once rather than tying up a worker."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from lxml import etree

from bridge.config import Settings
from bridge.dev.saml_idp import USERS, DevIdp, User
from bridge.store.db import Database
from tests.attacks import xml_tools as x
from tests.attacks.conftest import Attack
from tests.conftest import DEMO_CLIENT, make_settings

WEB2 = {"client_id": "web2", "redirect_uris": ["https://web2.example.com/cb"],
        "audience": "https://api.example.com", "claims_version": 2, "public": True}
# Rules an admin might write; with a backtracking engine each is exponential in the length of a
# group name that almost matches (1.5 s at 24 characters, doubling with each one more).
RULES = r"""
[mapping.groups]
allow = [{ regex = '([a-z]+-?)+-(admins|users)' }, { regex = '([\w.-]{1,30})-staff' }]
deny = [{ regex = '(\w+\s?)+-suspended' }]
[[mapping.roles]]
regex = '([a-z]+-?)+-admins'
role = "admin"
"""
# Seconds a login may take here: a normal one takes a fraction of a second; a backtracking engine
# needs minutes for the crafted name below (2^30 steps), on any machine.
BOUND = 5.0


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    (idp_dir / "dev.toml").write_text(RULES)
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, WEB2])


def _roles(attack: Attack, user: User) -> tuple[list[str], list[str]]:
    browser = attack.browser
    login = browser.start(client_id="web2", redirect_uri=WEB2["redirect_uris"][0],
                          scope="openid groups")
    saml_response = attack.idp.response_for(login.pending, user)
    started = time.perf_counter()
    response = browser.post_acs(saml_response)
    elapsed = time.perf_counter() - started
    assert elapsed < BOUND, f"the login took {elapsed:.1f} s"
    code = browser.code_from(response, login)
    tokens = browser.exchange(code, login.verifier, client_id="web2",
                              redirect_uri=WEB2["redirect_uris"][0]).get_json()
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    return claims["roles"], claims.get("groups", [])


def test_a_group_name_crafted_for_backtracking_does_not_hold_up_the_login(attack: Attack) -> None:
    alice = USERS["alice"]
    crafted = "a" * 30 + "!"  # almost matches both rules; matches neither
    # As many long names as fit in a response, shaped like the rules (linear for any engine):
    # the cost of the rules grows with the volume of values, and stays linear.
    filler = [f"{i:03d}-" + "a-" * 1900 for i in range(60)]
    user = User("mallory", "x", "a1b2c3d4-0666", {
        **alice.attributes, "isMemberOf": ["engineering-admins", crafted, *filler]})

    roles, groups = _roles(attack, user)  # within BOUND seconds
    # The rules still mean what they said: "engineering-admins" matches each, nothing else does.
    assert roles == ["admin"]
    assert groups == ["engineering-admins"]


def test_long_values_in_many_scripts_do_not_hold_up_the_login(attack: Attack) -> None:
    """Text that keeps RE2's DFA from caching its states (letters of many scripts) against the
    largest counted repetition of a Unicode class a rule may hold: the NFA fallback it forces
    costs in proportion to the program's size, which is capped."""
    letters = [chr(c) for c in range(0x100, 0x30000, 37) if chr(c).isalnum()]
    values = ["".join(letters[(i * 7919 + j) % len(letters)] for j in range(4000))
              for i in range(12)]
    user = User("mallory", "x", "a1b2c3d4-0668", {
        **USERS["alice"].attributes, "isMemberOf": ["ops-staff", *values]})
    _, groups = _roles(attack, user)  # within BOUND seconds
    assert groups == ["ops-staff"]


def test_the_deny_rule_still_denies(attack: Attack) -> None:
    user = User("sam", "x", "a1b2c3d4-0667", {
        **USERS["bob"].attributes, "isMemberOf": ["sales", "café team-suspended"]})
    login = attack.browser.start()
    response = attack.browser.post_acs(attack.idp.response_for(login.pending, user))
    attack.refused(response, "claims_login_denied")


def test_observed_values_in_the_log_are_masked_in_linear_time(attack: Attack) -> None:
    """Two elements sharing an ID are refused before any signature is checked, and the ID is
    logged: anyone may post it. With a backtracking engine, masking "eyJ-" repeated (it looks
    like the start of a JWT at every step) took time quadratic in its length: about a minute for
    this one."""
    login, root = attack.fresh()
    value = "eyJ-" * 60_000
    root.set("ID", value)
    x.one(root, "//saml:Assertion").set("ID", value)
    assert len(etree.tostring(root)) < 512 * 1024  # within max_saml_response_bytes
    started = time.perf_counter()
    response = attack.post(root)
    elapsed = time.perf_counter() - started
    attack.refused(response, "saml_signature_structure")
    assert elapsed < BOUND, f"refusal took {elapsed:.1f} s"
