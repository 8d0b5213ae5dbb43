"""The administration services of one bridge, wired together once per process."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.admin.access import AdminAccess
from bridge.admin.logins import ADMIN_SIGN_IN, TEST_LOGIN, AdminSignIn, TestLoginCapture
from bridge.federation import Bridge
from bridge.idps.fetch import FetchPolicy
from bridge.idps.lifecycle import IdpAdmin


@dataclass
class AdminServices:
    bridge: Bridge
    access: AdminAccess
    idps: IdpAdmin
    sign_in: AdminSignIn
    test_logins: TestLoginCapture

    @classmethod
    def attach(cls, bridge: Bridge, fetch_policy: FetchPolicy | None = None) -> AdminServices:
        access = AdminAccess(bridge.db, bridge.clock)
        policy = fetch_policy or FetchPolicy(
            allow_private=bridge.settings.insecure_metadata_private_addresses)
        services = cls(bridge, access, IdpAdmin(bridge, policy), AdminSignIn(bridge, access),
                       TestLoginCapture(bridge))
        bridge.special_logins[ADMIN_SIGN_IN] = services.sign_in
        bridge.special_logins[TEST_LOGIN] = services.test_logins
        return services
