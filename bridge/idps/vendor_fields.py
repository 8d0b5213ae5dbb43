"""What to paste into the IdP before it gives us its metadata: per vendor, the names its admin
console uses for our values (Okta's "Audience URI" is our SP entity ID, Entra ID's "Reply URL" is
our ACS URL). Shown on a draft IdP's page, each value with a copy button, so the IdP side can be
set up first, as Okta and Entra ID require."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.config import Settings


@dataclass(frozen=True)
class SpValues:
    """Our values for one IdP slug."""

    entity_id: str
    acs_url: str
    slo_url: str
    metadata_url: str

    @classmethod
    def for_slug(cls, settings: Settings, slug: str) -> SpValues:
        return cls(entity_id=settings.sp_entity_id, acs_url=settings.acs_url(slug),
                   slo_url=settings.slo_url(slug),
                   metadata_url=f"{settings.base_url}/saml/{slug}/metadata")


@dataclass(frozen=True)
class VendorField:
    label: str     # the vendor's own name for it, as its console shows it
    value: str     # ours, to copy; "" for a choice made there (then ``note`` says which)
    note: str = ""


def vendor_fields(vendor: str | None, sp: SpValues) -> tuple[str, list[VendorField]]:
    """Where in the vendor's console, and the fields to fill, for ``vendor`` (a preset name; None
    or unknown: the SAML names every IdP understands)."""
    where, fields = _TABLES.get(vendor or "", _GENERIC)
    return where, [VendorField(label, getattr(sp, key) if key else "", note)
                   for label, key, note in fields]


_Fields = list[tuple[str, str, str]]

_GENERIC: tuple[str, _Fields] = ("Any SAML 2.0 IdP: register a service provider with", [
    ("Entity ID (SP entity ID, audience)", "entity_id", ""),
    ("Assertion Consumer Service URL (HTTP-POST)", "acs_url", ""),
    ("Single Logout URL (HTTP-Redirect)", "slo_url", "optional"),
    ("SP metadata URL", "metadata_url", "if the IdP can read it from a URL"),
])

_TABLES: dict[str, tuple[str, _Fields]] = {
    "okta": ("Okta Admin Console > Applications > Create App Integration > SAML 2.0 > "
             "Configure SAML", [
                 ("Single sign-on URL", "acs_url",
                  "tick 'Use this for Recipient URL and Destination URL'"),
                 ("Audience URI (SP Entity ID)", "entity_id", ""),
                 ("Name ID format", "", "Persistent"),
                 ("Application username", "", "Okta username"),
                 ("Single Logout URL (Show Advanced Settings)", "slo_url",
                  "optional; needs our signing certificate, in our SP metadata"),
                 ("SP Issuer", "entity_id", "with Single Logout only"),
             ]),
    "entra": ("Entra admin center > Enterprise applications > New application > Create your own "
              "application > Single sign-on > SAML > Basic SAML Configuration", [
                  ("Identifier (Entity ID)", "entity_id", ""),
                  ("Reply URL (Assertion Consumer Service URL)", "acs_url", ""),
                  ("Sign on URL", "", "leave empty"),
                  ("Logout Url", "slo_url", "optional"),
                  ("Upload metadata file", "metadata_url",
                   "or download our SP metadata below and upload it: it fills the fields above"),
              ]),
    "adfs": ("AD FS Management > Relying Party Trusts > Add Relying Party Trust > Claims aware", [
        ("Federation metadata address (Import data about the relying party published online)",
         "metadata_url", "or import the downloaded file, or enter the data manually:"),
        ("Relying party trust identifier", "entity_id", ""),
        ("Endpoints: SAML Assertion Consumer, binding POST, trusted URL", "acs_url", ""),
        ("Endpoints: SAML Logout, binding Redirect, trusted URL", "slo_url", "optional"),
        ("Advanced: secure hash algorithm", "", "SHA-256"),
    ]),
    "google": ("Google Admin console > Apps > Web and mobile apps > Add app > Add custom SAML "
               "app > Service provider details", [
                   ("ACS URL", "acs_url", ""),
                   ("Entity ID", "entity_id", ""),
                   ("Name ID format", "", "EMAIL"),
                   ("Name ID", "", "Basic Information > Primary email"),
               ]),
    "shibboleth": ("Shibboleth IdP: conf/metadata-providers.xml and the relying party", [
        ("MetadataProvider (FileBackedHTTPMetadataProvider) metadataURL", "metadata_url", ""),
        ("entityID of the relying party", "entity_id", ""),
        ("AssertionConsumerService Location (HTTP-POST)", "acs_url", "in our SP metadata"),
    ]),
    "keycloak": ("Keycloak admin console > Clients > Create client (type SAML), or Import client "
                 "with our SP metadata", [
                     ("Client ID", "entity_id", ""),
                     ("Valid redirect URIs", "acs_url", ""),
                     ("Assertion Consumer Service POST Binding URL (Advanced)", "acs_url", ""),
                     ("Logout Service Redirect Binding URL (Advanced)", "slo_url", "optional"),
                     ("Name ID format", "", "persistent"),
                 ]),
}
