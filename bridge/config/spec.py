"""How a setting is declared: once, as a dataclass field whose metadata holds the rest.

``setting(default, doc=..., between=..., check=..., secret=...)`` gives the field its default,
the line of ``docs/configuration.md`` that explains it, its range or check, and whether it is a
secret (read from the environment or a ``*_FILE`` only, never from the config file). The loader
reads and checks every field from this; the reference tables are written from it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.config.problems import Problems

# A check of a well-typed value: None when it is fine, else the problem (without the key).
Check = Callable[[Any], str | None]
# A structured value (a list or table; from the environment as JSON): the raw value, where to
# report problems, the environment (for secrets) and the scalar settings already read.
Parse = Callable[[Any, Problems, Mapping[str, str], Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Spec:
    doc: str
    between: tuple[int, int] | None = None
    check: Check | None = None
    parse: Parse | None = None
    secret: bool = False
    # The default cell of the reference when it is no TOML value (it comes from elsewhere).
    default_doc: str | None = None


def setting(default: Any = None, *, doc: str, between: tuple[int, int] | None = None,
            check: Check | None = None, parse: Parse | None = None, secret: bool = False,
            default_doc: str | None = None, factory: Callable[[], Any] | None = None,
            required: bool = False) -> Any:
    spec = Spec(doc, between, check, parse, secret, default_doc)
    if required:
        return field(metadata={"spec": spec})
    if factory is not None:
        return field(default_factory=factory, metadata={"spec": spec}, repr=not secret)
    return field(default=default, metadata={"spec": spec}, repr=not secret)


def specs(model: type) -> dict[str, tuple[dataclasses.Field[Any], Spec]]:
    """Every declared setting of ``model``, in declaration order."""
    return {f.name: (f, f.metadata["spec"]) for f in dataclasses.fields(model)
            if "spec" in f.metadata}


def default_of(declared: dataclasses.Field[Any]) -> Any:
    if declared.default_factory is not dataclasses.MISSING:
        return declared.default_factory()
    return declared.default


def one_of(choices: tuple[str, ...], message: str | None = None) -> Check:
    said = message or f"must be one of {', '.join(choices)}"
    return lambda value: None if value in choices else said


def reference_table(model: type, *, skip: frozenset[str] = frozenset()) -> list[str]:
    """The rows of ``model``'s table in docs/configuration.md."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, (declared, spec) in specs(model).items():
        if name not in skip:
            rows.append(f"| `{name}` | {_default_cell(declared, spec)} | {spec.doc} |")
    return rows


def _default_cell(declared: dataclasses.Field[Any], spec: Spec) -> str:
    if spec.default_doc is not None:
        return spec.default_doc
    if declared.default is dataclasses.MISSING and declared.default_factory is dataclasses.MISSING:
        return "required"
    value = default_of(declared)
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"
