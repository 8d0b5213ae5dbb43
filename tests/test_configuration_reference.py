"""docs/configuration.md is the whole configuration: every setting, client key, IdP key and
environment variable the code reads is listed there, nothing else is, and each default written
as a value is the code's default."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from typing import Any

import pytest

from bridge import config
from bridge.config import ClientConfig, Settings
from bridge.config.reference import TABLES
from bridge.config.spec import specs
from bridge.idps.settings import IDP_SETTING_KEYS, IdpSettings
from tests.dev_stack import ROOT

REFERENCE = ROOT / "docs" / "configuration.md"


def reference() -> dict[str, dict[str, str]]:
    """Each section's table rows: the names in a row's first cell -> its default cell."""
    sections: dict[str, dict[str, str]] = {}
    rows: dict[str, str] = {}
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("## "):
            rows = sections.setdefault(line[3:].strip(), {})
        elif line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            for name in re.findall(r"`([^`]+)`", cells[0]):
                rows[name] = cells[1]
    return sections


def names(dataclass: type) -> set[str]:
    return {f.name for f in dataclasses.fields(dataclass)}


def same(documented: set[str], code: set[str]) -> None:
    assert not code - documented, f"not in docs/configuration.md: {sorted(code - documented)}"
    assert not documented - code, f"in docs/configuration.md but not read: {sorted(documented - code)}"


def test_every_setting_is_in_the_reference() -> None:
    same(set(reference()["Settings"]), names(Settings))


def test_every_client_key_is_in_the_reference() -> None:
    same(set(reference()["Clients"]), set(config.CLIENT_KEYS))
    assert set(config.CLIENT_KEYS) <= names(ClientConfig) | {"client_secret"}


def test_every_idp_key_is_in_the_reference() -> None:
    same(set(reference()["Identity providers"]), set(IDP_SETTING_KEYS))
    assert set(IDP_SETTING_KEYS) == names(IdpSettings)


def test_every_setting_can_be_set() -> None:
    """A field of Settings that load_settings does not read could only ever keep its default:
    the loader reads every declared one, so every field must be declared."""
    assert set(specs(Settings)) == names(Settings)
    assert set(specs(ClientConfig)) == names(ClientConfig)


@pytest.mark.parametrize("section", sorted(TABLES))
def test_the_tables_are_the_declarations(section: str) -> None:
    """Each row (key, default, meaning) is written once, beside the setting in the code."""
    lines = REFERENCE.read_text().splitlines()
    start = lines.index(f"## {section}")
    header = lines.index(TABLES[section][0], start)
    end = next(i for i in range(header, len(lines)) if not lines[i].startswith("|"))
    assert lines[header:end] == TABLES[section], (
        f"docs/configuration.md, {section}: write the table `python -m bridge.config.reference` "
        "prints")


def _plain_defaults(dataclass: type, keys: set[str]) -> list[tuple[str, Any]]:
    out = []
    for field in dataclasses.fields(dataclass):
        default = field.default
        if field.name in keys and isinstance(default, int | str | tuple) and default != "":
            out.append((field.name, list(default) if isinstance(default, tuple) else default))
    return out


@pytest.mark.parametrize(("section", "dataclass", "keys"), [
    ("Settings", Settings, names(Settings)),
    ("Clients", ClientConfig, set(config.CLIENT_KEYS)),
    ("Identity providers", IdpSettings, set(IDP_SETTING_KEYS)),
])
def test_every_default_written_as_a_value_is_the_codes(section: str, dataclass: type,
                                                       keys: set[str]) -> None:
    rows = reference()[section]
    for key, default in _plain_defaults(dataclass, keys):
        cell = rows[key]
        if not cell.startswith("`"):
            # Said in words: it comes from elsewhere (another setting, the slug).
            assert cell in ("the setting above", "the slug") or default == [], (key, cell)
            continue
        assert cell.startswith("`") and cell.endswith("`"), (key, cell)
        written = tomllib.loads(f"value = {cell.strip('`')}")["value"]
        assert written == default, f"{section}: {key}: documented {cell}, the code has {default!r}"


def test_every_environment_variable_is_in_the_reference() -> None:
    documented = set(reference()["Environment only"])
    read = set()
    for source in (ROOT / "bridge").rglob("*.py"):
        if "dev" in source.relative_to(ROOT / "bridge").parts[:1]:
            continue
        read |= set(re.findall(r"[\"']((?:BRIDGE|PROMETHEUS)_[A-Z_]+)[\"']", source.read_text()))
    assert read, "no environment variable found: the scan is broken"
    for name in read:
        assert any(doc == name or doc.startswith(name) for doc in documented), (
            f"{name}: read by the code, not in docs/configuration.md")


def test_the_readme_points_to_the_reference() -> None:
    assert "(docs/configuration.md)" in (ROOT / "README.md").read_text()
