"""Claims: from a neutral ``Identity`` to the versioned claim set a client receives.

Each version is a published contract: a JSON Schema file in ``schemas/`` served at
``/schemas/claims/v<N>.json``. No Flask, no SAML, no JWT here.
"""

from typing import Any

from bridge.identity import Identity


def build_claims(version: int, identity: Identity) -> dict[str, Any]:
    """The claims of ``identity`` in schema ``version`` (without registered JWT claims)."""
    if version == 1:
        from bridge.claims import v1

        return v1.build(identity)
    raise ValueError(f"unknown claims version {version}")
