"""What the IdP page shows to set the IdP up: our values under the vendor's own names, with copy
buttons. The buttons need a few lines of script: the page allows exactly that script (by its
hash), and shows the values as text for a browser without it. Its policy allows one more script,
the settings form's (by its hash too), and nothing else."""

from __future__ import annotations

import base64
import hashlib
from importlib.resources import files
from typing import Any

from werkzeug.wrappers import Response as BaseResponse

from bridge.claims.presets import PRESETS
from bridge.config import Settings
from bridge.idps.vendor_fields import SpValues, vendor_fields

# No character here that HTML escaping would change: the page must carry exactly what is hashed.
COPY_SCRIPT = ("document.querySelectorAll(`button.copy`).forEach(function (button) {"
               " button.hidden = false;"
               " button.addEventListener(`click`, function () {"
               " navigator.clipboard.writeText(button.dataset.copy).then(function () {"
               " button.textContent = `Copied`; }); }); });")


def _sha256(data: bytes) -> str:
    return f"sha256-{base64.b64encode(hashlib.sha256(data).digest()).decode()}"


# The settings form's rows and live preview (bridge/web/scripts): a file of ours, loaded with its
# hash as integrity, which is what the policy allows; its fetch() goes to our own origin only.
PREVIEW_SCRIPT = (files("bridge.web") / "scripts" / "settings_preview.js").read_bytes()
PREVIEW_INTEGRITY = _sha256(PREVIEW_SCRIPT)
CSP = (f"default-src 'none'; script-src '{_sha256(COPY_SCRIPT.encode())}' '{PREVIEW_INTEGRITY}'; "
       "connect-src 'self'; style-src 'unsafe-inline'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")

# Our entity ID and ACS URL in each console's words, for the table at the top of the page.
_ENTITY_ID_NAMES = "Okta: Audience URI; Entra ID: Identifier; AD FS: relying party identifier"
_ACS_URL_NAMES = "Okta: Single sign-on URL; Entra ID: Reply URL; AD FS: SAML Assertion Consumer"


def setup_context(settings: Settings, idp: dict[str, Any]) -> dict[str, Any]:
    sp = SpValues.for_slug(settings, idp["slug"])
    vendor = idp.get("vendor")
    preset = PRESETS.get(vendor or "")
    where, fields = vendor_fields(vendor, sp)
    return {"vendor_name": preset.display_name if preset else "the IdP", "where": where,
            "fields": fields, "metadata_url": sp.metadata_url, "entity_id": sp.entity_id,
            "entity_id_names": _ENTITY_ID_NAMES, "acs_url_names": _ACS_URL_NAMES,
            "instructions": preset.instructions if preset else (),
            "signs": preset.signs if preset else ""}


def allow_page_scripts(response: BaseResponse) -> BaseResponse:
    response.headers["Content-Security-Policy"] = CSP
    return response
