"""Where settings come from, later wins: the TOML file named by ``BRIDGE_CONFIG`` (or
``--config``), then ``BRIDGE_<KEY>`` environment variables. Secrets come from the environment or
from a file named by ``BRIDGE_<KEY>_FILE``, never from the TOML file."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bridge.config.problems import Problems


def variable(key: str) -> str:
    """The environment variable of a setting."""
    return f"BRIDGE_{key.upper()}"


def read_toml(path: str | os.PathLike[str], problems: Problems) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        problems.add(f"config file {path}: not found (set BRIDGE_CONFIG to an existing file)")
    except tomllib.TOMLDecodeError as exc:
        problems.add(f"config file {path}: not valid TOML ({exc})")
    return {}


def read_environ(env: Mapping[str, str], keys: Iterable[str]) -> dict[str, str]:
    """The ``BRIDGE_<KEY>`` variables that are set, by key."""
    return {key: env[variable(key)] for key in keys if variable(key) in env}


def read_secret(env: Mapping[str, str], name: str, problems: Problems) -> str | None:
    """``name`` from the environment, or the file ``name_FILE`` names (a mounted secret)."""
    if env.get(name):
        return _not_blank(env[name], name, problems)
    file_name = env.get(f"{name}_FILE")
    if file_name:
        try:
            return _not_blank(Path(file_name).read_text(), f"{name}_FILE ({file_name})", problems)
        except OSError as exc:
            problems.extend([f"{name}_FILE: cannot read {file_name} ({exc.strerror})"])
    return None


def _not_blank(value: str, where: str, problems: Problems) -> str | None:
    # A secret of only whitespace is a mistake, never "no secret": taking it as unset would leave
    # open what the operator meant to close (e.g. /metrics).
    if not value.strip():
        problems.extend([f"{where}: is set but blank; give the secret or unset it"])
        return None
    return value.strip()


def json_value(text: str, problems: Problems | None = None, refusal: str = "") -> Any:
    """A structured setting given in the environment as JSON; None (and the problem, when
    ``problems`` is given) when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if problems is not None:
            problems.add(f"{refusal} ({exc})")
        return None


def as_int(value: Any) -> int | None:
    """An integer, or one written as digits (from the environment); booleans are not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def as_bool(value: Any) -> bool | None:
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    return value if isinstance(value, bool) else None
