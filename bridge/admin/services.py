"""The administration services of one bridge, built with the application (bridge.application)."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.admin.access import AdminAccess
from bridge.admin.logins import AdminSignIn, TestLoginCapture
from bridge.clients.admin import ClientAdmin
from bridge.idps.lifecycle import IdpAdmin


@dataclass(frozen=True)
class Administration:
    access: AdminAccess
    idps: IdpAdmin
    clients: ClientAdmin
    sign_in: AdminSignIn
    test_logins: TestLoginCapture
