"""The published claim schemas, loaded from the package."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema

VERSIONS = (1, 2, 3)


@functools.cache
def schema_text(version: int) -> str:
    if version not in VERSIONS:
        raise KeyError(version)
    return resources.files("bridge.claims").joinpath(f"schemas/v{version}.json").read_text()


@functools.cache
def schema(version: int) -> dict[str, Any]:
    return json.loads(schema_text(version))


@functools.cache
def _validator(version: int) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema(version))
    return cls(schema(version), format_checker=cls.FORMAT_CHECKER)


def validate_payload(payload: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``payload`` fits its declared version."""
    version = payload.get("ver")
    if version not in VERSIONS:
        raise jsonschema.ValidationError(f"unknown claims version {version!r}")
    _validator(int(version)).validate(payload)
