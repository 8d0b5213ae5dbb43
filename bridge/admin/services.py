"""The administration services of one bridge, built with the application (bridge.application)."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.admin.access import AdminAccess
from bridge.admin.logins import AdminSignIn, TestLoginCapture
from bridge.idps.lifecycle import IdpAdmin


@dataclass(frozen=True)
class Administration:
    access: AdminAccess
    idps: IdpAdmin
    sign_in: AdminSignIn
    test_logins: TestLoginCapture
