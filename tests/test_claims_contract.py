"""The claim schemas are an API contract: a published version never changes shape."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import pytest

from bridge.claims import schemas
from bridge.claims.schemas import validate_payload

GOLDEN = Path(__file__).parent / "golden"

# Recorded when each version was published. A change here is a new version, never an edit.
PUBLISHED = {
    1: "6cb65ae67520e353a5ddecfea7b63dbe22904c3727043020027f529c8ed9f09a",
    2: "c1b2257b43732e71b5243f12c14d67afab180a1801afbf1d65053bf07430aa44",
    3: "3bc30152492eb65c207a364bc162c03ca0d930bc2bdf3e142aaddc285332616d",
}


@pytest.mark.parametrize("version", schemas.VERSIONS)
def test_published_schema_is_unchanged(version: int) -> None:
    digest = hashlib.sha256(schemas.schema_text(version).encode()).hexdigest()
    assert digest == PUBLISHED[version], (
        f"schemas/v{version}.json changed: publish a new version instead")


def test_every_version_is_recorded() -> None:
    assert set(schemas.VERSIONS) == set(PUBLISHED)


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("claims_v*.json")), ids=lambda p: p.stem)
def test_golden_payloads_keep_validating(path: Path) -> None:
    payload = json.loads(path.read_text())
    assert f"claims_v{payload['ver']}_" in path.name
    validate_payload(payload)


def test_every_version_has_golden_payloads() -> None:
    for version in schemas.VERSIONS:
        assert list(GOLDEN.glob(f"claims_v{version}_*.json")), version


@pytest.mark.parametrize("mutation", [
    {"extra": "claim"},
    {"sub": "alice@example.com"},
    {"aud": ["a", "b"]},
    {"ver": 4},  # no such version (3 is published since)
    {"roles": "admin"},
    {"groups": []},
    {"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}},  # from version 3 on
])
def test_schema_v2_refuses_what_it_does_not_promise(mutation: dict) -> None:
    payload = {**json.loads((GOLDEN / "claims_v2_full.json").read_text()), **mutation}
    with pytest.raises(jsonschema.ValidationError):
        validate_payload(payload)


def test_schema_v2_explains_every_claim() -> None:
    for name, definition in schemas.schema(2)["properties"].items():
        assert len(definition.get("description", "")) > 20, name


@pytest.mark.parametrize("cnf", [{}, {"jkt": "short"}, {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
                                                       "x5t#S256": "x"}, "jkt"])
def test_schema_v3_holds_only_a_thumbprint_confirmation(cnf: object) -> None:
    payload = {**json.loads((GOLDEN / "claims_v3_dpop.json").read_text()), "cnf": cnf}
    with pytest.raises(jsonschema.ValidationError):
        validate_payload(payload)


def test_schema_v3_is_version_2_with_cnf() -> None:
    v2, v3 = schemas.schema(2)["properties"], schemas.schema(3)["properties"]
    assert {k: v for k, v in v3.items() if k not in ("cnf", "ver")} == {
        k: v for k, v in v2.items() if k != "ver"}
