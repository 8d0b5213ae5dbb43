"""Typed settings: one entry point, validated completely at start-up.

Each setting is declared once (``settings.py``, ``clients.py``): its type, default, range or
check, whether it is a secret, and its line of docs/configuration.md. ``load_settings`` reads the
TOML file, ``BRIDGE_*`` variables and ``*_FILE`` secrets (``sources.py``) and reports every
problem at once, each naming its key and the fix.
"""

from bridge.config.clients import (
    CLAIMS_VERSIONS,
    CLIENT_ID_RE,
    CLIENT_KEYS,
    MIN_SECRET_BITS,
    NEW_SECRET_COMMAND,
    TOKEN_ALGORITHMS,
    ClientConfig,
    client_secret_variable,
    secret_bits,
)
from bridge.config.loader import load_settings
from bridge.config.problems import Problems
from bridge.config.settings import ENVIRONMENTS, Settings
from bridge.config.urls import origin_of

__all__ = [
    "CLAIMS_VERSIONS",
    "CLIENT_ID_RE",
    "CLIENT_KEYS",
    "ENVIRONMENTS",
    "MIN_SECRET_BITS",
    "NEW_SECRET_COMMAND",
    "TOKEN_ALGORITHMS",
    "ClientConfig",
    "Problems",
    "Settings",
    "client_secret_variable",
    "load_settings",
    "origin_of",
    "secret_bits",
]
