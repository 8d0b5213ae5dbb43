"""IT's onboarding in real Chromium, in the order Okta and Entra ID require it: a draft first, our
values copied from its page into the IdP, then the IdP's metadata (made at test time by an
independent SAML implementation), a test login, go live, and a user signs in through it.

The IdP is pysaml2 (the development IdP) serving its login page on a port of its own, naming its
attributes as the vendor does (Okta: email, firstName, lastName, groups; Entra ID: its claim
URIs, the object ID among them), and configured only with what IT took from the bridge's pages:
our SP metadata by URL (Okta) or as the downloaded file (Entra ID). Screenshots of each step are
kept as test artifacts: in ``$BRIDGE_TEST_ARTIFACTS`` if set, else in ``artifacts/`` under
pytest's base temporary directory (the last three runs are kept)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from bridge.dev.idp_app import create_idp_app
from bridge.dev.saml_idp import DevIdp, User
from tests.dev_stack import dev_stack, free_port

pytestmark = pytest.mark.browser

_MS = "http://schemas.microsoft.com"
_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"
CAROL = User("carol", "carol", "00u1carol", {  # as Okta's attribute statements send her
    "email": ["carol@contoso.example"], "firstName": ["Carol"], "lastName": ["Chen"],
    "groups": ["Everyone", "engineering"]})
DANA = User("dana", "dana", "dana-pairwise-9f2", {  # as Entra ID's default claims send her
    f"{_MS}/identity/claims/objectidentifier": ["5e7d1c2a-3b4f-4d6e-8a9b-0c1d2e3f4a5b"],
    f"{_MS}/identity/claims/tenantid": ["72f988bf-86f1-41af-91ab-2d7cd011db47"],
    f"{_CLAIMS}/emailaddress": ["dana@fabrikam.example"],
    f"{_CLAIMS}/givenname": ["Dana"], f"{_CLAIMS}/surname": ["Diaz"],
    f"{_MS}/identity/claims/displayname": ["Dana Diaz"]})


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    with dev_stack(tmp_path) as urls:
        yield urls


@pytest.fixture
def artifacts(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    root = Path(os.environ.get("BRIDGE_TEST_ARTIFACTS")
                or tmp_path_factory.getbasetemp() / "artifacts")
    directory = root / request.node.name
    directory.mkdir(parents=True, exist_ok=True)
    return directory


class VendorIdp:
    """The IdP side: set up with what IT gave it from the bridge's pages, serving its own login
    page on a port of its own."""

    def __init__(self, state_dir: Path, user: User) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.our_metadata: Callable[[], bytes] | None = None
        self.idp = DevIdp(base_url=self.base_url, state_dir=state_dir,
                          sp_metadata=self._our_metadata, users={user.username: user},
                          attribute_names="basic")
        self.server = make_server("127.0.0.1", self.port, create_idp_app(self.idp), threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _our_metadata(self) -> bytes:
        assert self.our_metadata is not None, "IT never gave the IdP our SP metadata"
        return self.our_metadata()


@pytest.fixture
def vendor_idp(tmp_path: Path) -> Iterator[Callable[[User], VendorIdp]]:
    started: list[VendorIdp] = []

    def start(user: User) -> VendorIdp:
        side = VendorIdp(tmp_path / user.username, user)
        side.thread.start()
        started.append(side)
        return side

    yield start
    for side in started:
        side.server.shutdown()


def _sign_in_at(page: Page, user: str) -> None:
    page.wait_for_url(re.compile(r".*/sso/redirect\?SAMLRequest=.*"))
    page.fill("#username", user)
    page.fill("#password", user)
    page.click("#sign-in")


def _copied(page: Page, label: str) -> str:
    row = page.locator(f"#vendor-fields tr[data-label='{label}']")
    row.locator("button.copy").click()
    expect(row.locator("button.copy")).to_have_text("Copied")
    return str(page.evaluate("navigator.clipboard.readText()"))


def _sign_in_as_admin(page: Page, stack: dict[str, str]) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack["bridge"])
    page.goto(stack["demo"])
    expect(page.locator("#who-is-admin")).to_contain_text("alice")  # the demo says who
    page.goto(stack["bridge"] + "/admin/")
    page.click("a.idp-login")
    _sign_in_at(page, "alice")
    page.wait_for_url(stack["bridge"] + "/admin/")
    expect(page.locator("#admin-name")).to_have_text("Alice Andersen")
    expect(page.locator("#admin-email")).to_have_text("<alice@example.com>")


def _draft(page: Page, slug: str, name: str, vendor: str, shots: Path) -> None:
    page.click("#add-idp")
    page.fill("#slug", slug)
    page.fill("#display_name", name)
    page.select_option("#preset", vendor)
    page.click("#create")
    expect(page.locator("#notice")).to_contain_text("Draft created")
    expect(page.locator("#stage")).to_have_attribute("data-state", "draft")
    page.screenshot(path=shots / "01-draft.png", full_page=True)


def _add_metadata(page: Page, side: VendorIdp, path: Path, shots: Path) -> None:
    path.write_bytes(side.idp.metadata_xml())  # the IdP's metadata, made now
    page.set_input_files("#draft-metadata-file", str(path))
    page.click("#add-metadata")
    expect(page.locator("#notice")).to_contain_text("Test a login, then go live")
    expect(page.locator("#stage")).to_have_attribute("data-state", "testing")
    expect(page.locator("#idp-entity-id")).to_have_text(side.idp.entity_id)
    expect(page.locator("#go-live-button")).to_be_disabled()
    page.screenshot(path=shots / "02-testing.png", full_page=True)


def _test_and_go_live(page: Page, bridge: str, slug: str, user: str, expected: str,
                      shots: Path) -> None:
    page.goto(f"{bridge}/admin/idps/{slug}")
    page.click("#test-login")
    _sign_in_at(page, user)
    page.wait_for_url(re.compile(r".*/admin/test-logins/.*"))
    expect(page.locator("#test-outcome")).to_contain_text("Accepted")
    expect(page.locator("#claims-v2")).to_contain_text(expected)
    page.screenshot(path=shots / "03-test-login.png", full_page=True)
    page.goto(f"{bridge}/admin/idps/{slug}")
    page.click("#go-live-button")
    expect(page.locator("#notice")).to_contain_text("Live")
    expect(page.locator("#stage")).to_have_attribute("data-state", "live")
    page.screenshot(path=shots / "04-live.png", full_page=True)


def _user_signs_in(page: Page, stack: dict[str, str], name: str, slug: str, user: str,
                   expected: str, shots: Path) -> None:
    page.goto(stack["demo"])
    page.click("#sign-in")
    page.locator("a.idp", has_text=name).click()
    _sign_in_at(page, user)
    page.wait_for_url(stack["demo"] + "/")
    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.locator("#claims")).to_contain_text(expected)
    expect(page.locator("#claims")).to_contain_text(f'"idp": "{slug}"')
    page.screenshot(path=shots / "05-signed-in.png", full_page=True)
    assert sorted(p.name for p in shots.iterdir()) == [
        "01-draft.png", "02-testing.png", "03-test-login.png", "04-live.png", "05-signed-in.png"]


def test_it_onboards_an_okta_idp_and_a_user_signs_in(
        page: Page, stack: dict[str, str], vendor_idp: Callable[[User], VendorIdp],
        tmp_path: Path, artifacts: Path) -> None:
    bridge, slug = stack["bridge"], "contoso-okta"
    okta = vendor_idp(CAROL)
    _sign_in_as_admin(page, stack)
    _draft(page, slug, "Contoso", "okta", artifacts)

    # IT copies our values into Okta's "Configure SAML" form, and our SP metadata URL.
    assert _copied(page, "Single sign-on URL") == f"{bridge}/saml/{slug}/acs"
    assert _copied(page, "Audience URI (SP Entity ID)") == f"{bridge}/saml/metadata"
    expect(page.locator("#our-entity-id")).to_have_text(f"{bridge}/saml/metadata")
    page.click("#copy-sp-metadata-url")
    metadata_url = str(page.evaluate("navigator.clipboard.readText()"))
    assert metadata_url == f"{bridge}/saml/{slug}/metadata"
    okta.our_metadata = lambda: requests.get(metadata_url, timeout=10).content

    _add_metadata(page, okta, tmp_path / "okta-metadata.xml", artifacts)
    # Not offered to users yet: the demo app goes straight to the only live IdP.
    page.goto(stack["demo"])
    page.click("#sign-in")
    page.wait_for_url(re.compile(r".*/sso/redirect\?SAMLRequest=.*"))
    assert not page.url.startswith(okta.base_url)

    _test_and_go_live(page, bridge, slug, "carol", "carol@contoso.example", artifacts)
    _user_signs_in(page, stack, "Contoso", slug, "carol", "carol@contoso.example", artifacts)


def test_it_onboards_an_entra_idp_and_a_user_signs_in(
        page: Page, stack: dict[str, str], vendor_idp: Callable[[User], VendorIdp],
        tmp_path: Path, artifacts: Path) -> None:
    bridge, slug = stack["bridge"], "fabrikam-entra"
    entra = vendor_idp(DANA)
    _sign_in_as_admin(page, stack)
    _draft(page, slug, "Fabrikam", "entra", artifacts)

    # Entra ID's Basic SAML Configuration: Identifier and Reply URL, or our SP metadata file.
    assert _copied(page, "Identifier (Entity ID)") == f"{bridge}/saml/metadata"
    assert _copied(page, "Reply URL (Assertion Consumer Service URL)") == (
        f"{bridge}/saml/{slug}/acs")
    with page.expect_download() as download:
        page.click("#sp-metadata")
    ours = Path(download.value.path()).read_bytes()
    assert f'Location="{bridge}/saml/{slug}/acs"'.encode() in ours
    entra.our_metadata = lambda: ours

    _add_metadata(page, entra, tmp_path / "Fabrikam.xml", artifacts)
    _test_and_go_live(page, bridge, slug, "dana", "dana@fabrikam.example", artifacts)
    _user_signs_in(page, stack, "Fabrikam", slug, "dana", "dana@fabrikam.example", artifacts)
