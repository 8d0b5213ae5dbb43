"""Print the Settings and Clients tables of docs/configuration.md from the declarations:
``python -m bridge.config.reference``."""

from __future__ import annotations

from bridge.config.clients import ClientConfig
from bridge.config.settings import Settings
from bridge.config.spec import reference_table

TABLES = {
    "Settings": reference_table(Settings),
    "Clients": reference_table(ClientConfig, skip=frozenset({"client_secret"})),
}

if __name__ == "__main__":
    for section, rows in TABLES.items():
        print(f"## {section}\n")
        print("\n".join(rows), end="\n\n")
