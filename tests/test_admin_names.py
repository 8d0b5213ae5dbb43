"""Who is signed in, in people's words: the admin pages name the admin by name and e-mail as the
IdP sent them (not by an opaque subject), and the demo says who its admin is."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from lxml import html

from bridge.dev.demo_client import create_demo_app
from bridge.dev.saml_idp import USERS, DevIdp
from tests.helpers import Browser


def test_the_signed_in_admin_is_shown_by_name_and_e_mail(browser: Browser,
                                                         dev_idp: DevIdp) -> None:
    client = browser.client
    started = client.get("/admin/login/dev")
    assert started.status_code == 302, started.get_data(as_text=True)
    saml_request = parse_qs(urlsplit(started.headers["Location"]).query)["SAMLRequest"][0]
    answered = browser.post_acs(dev_idp.response_for(dev_idp.parse_request(saml_request, None),
                                                     USERS["alice"]), "dev", json=False)
    callback = urlsplit(answered.headers["Location"])
    assert callback.path == "/admin/callback"
    assert client.get(f"{callback.path}?{callback.query}").status_code == 303

    page = html.fromstring(client.get("/admin/").get_data(as_text=True))

    assert page.get_element_by_id("admin-name").text == "Alice Andersen"
    assert page.get_element_by_id("admin-email").text == "<alice@example.com>"
    assert "user:" not in page.get_element_by_id("signed-in-admin").text_content()


def test_the_demo_says_who_its_admin_is() -> None:
    demo = create_demo_app(bridge_url="http://127.0.0.1:8000", public_url="http://127.0.0.1:8002")
    page = html.fromstring(demo.test_client().get("/").get_data(as_text=True))
    note = page.get_element_by_id("who-is-admin").text_content()
    assert "alice/alice is the bridge admin" in note and "bob/bob is an ordinary user" in note
    assert page.xpath("//p[@id='who-is-admin']/a/@href") == ["http://127.0.0.1:8000/admin/"]
