"""``load_settings``: one entry point, every problem reported at once, each naming its key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from bridge.config import sources
from bridge.config.problems import Problems
from bridge.config.settings import Settings, check_together
from bridge.config.spec import default_of, specs


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build validated ``Settings``; raise ``ConfigError`` listing every problem."""
    env = os.environ if environ is None else environ
    declared = specs(Settings)
    secrets = [name for name, (_, spec) in declared.items() if spec.secret]
    problems = Problems()

    raw: dict[str, Any] = {}
    path = config_path or env.get("BRIDGE_CONFIG")
    if path:
        raw.update(sources.read_toml(path, problems))
    for key in sorted(set(raw) - set(declared)):
        problems.at(key).add("unknown setting (check the spelling; see docs/configuration.md)")
    for key in secrets:
        if key in raw:
            problems.at(key).add(f"secrets are not read from the config file; set "
                                 f"{sources.variable(key)} or {sources.variable(key)}_FILE")
            raw.pop(key)
    raw.update(sources.read_environ(env, (k for k in declared if k not in secrets)))
    for key in secrets:
        secret = sources.read_secret(env, sources.variable(key), problems)
        if secret is not None:
            raw[key] = secret
    raw.update(overrides or {})

    values = {name: default_of(field) for name, (field, _) in declared.items()}
    structured = []
    for name, (_, spec) in declared.items():
        if spec.parse is not None:
            if name in raw:  # after the scalars: a client's defaults are settings
                structured.append(name)
        elif name in raw:
            value = _scalar(name, raw[name], values[name], spec.between, problems.at(name))
            problem = None if value is None or spec.check is None else spec.check(value)
            if problem is not None:
                problems.at(name).add(problem)
            elif value is not None:
                values[name] = value
    for name in structured:
        parse = declared[name][1].parse
        assert parse is not None
        values[name] = parse(raw[name], problems.at(name), env, values)
    check_together(values, problems)
    problems.raise_any()
    return Settings(**values)


def _scalar(name: str, value: Any, default: Any, between: tuple[int, int] | None,
            problems: Problems) -> Any:
    """``value`` as the type of the setting's default (from the environment: its text), or
    None after reporting why it is not one."""
    if isinstance(default, bool):
        flag = sources.as_bool(value)
        if flag is None:
            problems.add("must be true or false")
        return flag
    if isinstance(default, int):
        number = sources.as_int(value)
        assert between is not None, name
        low, high = between
        if number is None or not low <= number <= high:
            problems.add(f"must be an integer from {low} to {high}, got {value!r}")
            return None
        return number
    if not isinstance(value, str):
        problems.add("must be a string")
        return None
    return value
