"""IdP-initiated logins go to clients: each one named must exist and say where a login starts."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.idps.settings import IdentityProvider


def check_idp_initiated_targets(settings: Settings, idps: Mapping[str, IdentityProvider]) -> None:
    """Every client an IdP may start logins for exists and has a login start URL."""
    problems = []
    for slug, idp in sorted(idps.items()):
        for client_id in idp.settings.idp_initiated_clients:
            client = settings.client(client_id)
            if client is None:
                problems.append(f"{settings.idp_metadata_dir}/{slug}.toml: idp_initiated_clients: "
                                f"{client_id!r} is not a configured client")
            elif not client.login_start_uri:
                problems.append(f"clients[{client_id}].login_start_uri: required, because IdP "
                                f"{slug} may start logins for this client")
    if problems:
        raise ConfigError(problems)
