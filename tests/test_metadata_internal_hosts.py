"""An IdP's internal metadata host (AD FS on the company network): fetched on exactly the
addresses the admin named, from exactly that host, with every other SSRF rule still standing; and
the setting itself refuses what would open more than one service.

The internal server is a real HTTPS server on this machine's own private (non-loopback) address;
``metadata.test`` reaches it through the fetcher's resolver argument."""

from __future__ import annotations

import http.server
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from bridge.dev.saml_idp import DevIdp
from bridge.errors import ConfigError
from bridge.idps.fetch import FetchPolicy, fetch_metadata
from bridge.idps.internal_hosts import parse_internal_hosts
from bridge.idps.lifecycle import IdpAdmin
from bridge.idps.settings import parse_idp_settings
from bridge.services import Services
from bridge.store.models import AuditEvent
from tests.test_admin_metadata_url import _Handler as PublishedHandler
from tests.test_admin_metadata_url import _Published
from tests.test_metadata_fetch import METADATA, Pki, Resolver, Running, _Server, pki  # noqa: F401


def _own_private_address() -> str:
    """The address this machine uses towards other hosts, if it is a private one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.254", 9))  # no packet is sent: this only picks a route
            address = probe.getsockname()[0]
        except OSError:
            pytest.skip("no route off this machine")
    parsed = ipaddress.ip_address(address)
    if parsed.is_loopback or not parsed.is_private or parsed.is_link_local:
        pytest.skip(f"this machine's address {address} is not a private one")
    return address


@pytest.fixture
def internal(pki: Pki) -> Iterator[tuple[Running, str]]:  # noqa: F811
    address = _own_private_address()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    httpd = _Server(context, address)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Running(httpd, pki.ca_file), address
    finally:
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _policy(running: Running, hosts: dict[str, list[str]]) -> FetchPolicy:
    problems: list[str] = []
    parsed = parse_internal_hosts(hosts, problems.append)
    assert not problems
    return FetchPolicy(ca_bundle=running.ca_file, internal_hosts=parsed)


def test_a_listed_host_is_fetched_on_its_listed_address(internal: tuple[Running, str]) -> None:
    running, address = internal
    fetched = fetch_metadata(running.url(), policy=_policy(running, {"metadata.test": [address]}),
                             resolver=Resolver(metadata_test=[address]))
    assert fetched.body == METADATA and running.server.connections == 1


def test_a_host_not_on_the_list_is_refused(internal: tuple[Running, str]) -> None:
    running, address = internal
    policy = _policy(running, {"adfs.corp.test": [address]})
    # another name that leads to the very same internal address
    with pytest.raises(ConfigError, match=r"metadata_url: metadata.test resolves to .* \(private\); "
                       r"metadata is only fetched from public addresses \(an internal host must "
                       r"be listed, with its addresses, in the metadata_internal_hosts of this "
                       r"IdP\)"):
        fetch_metadata(running.url(), policy=policy, resolver=Resolver(metadata_test=[address]))
    assert running.server.connections == 0


@pytest.mark.parametrize("answers", [
    ["10.20.0.99"],                      # rebound to another internal service
    ["{listed}", "10.20.0.99"],          # one listed address among others
    ["127.0.0.1"],                       # loopback is never an internal host
    ["169.254.169.254"],                 # nor the cloud's metadata service
    ["::ffff:10.20.0.15"],               # nor an IPv6 form of a listed address
])
def test_a_listed_host_on_any_other_address_is_refused(internal: tuple[Running, str],
                                                        answers: list[str]) -> None:
    running, address = internal
    policy = _policy(running, {"metadata.test": [address, "10.20.0.15"]})
    resolver = Resolver(metadata_test=[a.replace("{listed}", address) for a in answers])
    with pytest.raises(ConfigError, match=r"metadata_url: metadata.test resolves to "):
        fetch_metadata(running.url(), policy=policy, resolver=resolver)
    assert running.server.connections == 0


def test_a_rebinding_answer_after_the_check_is_never_connected_to(
        internal: tuple[Running, str]) -> None:
    running, address = internal
    rebinding = Resolver(metadata_test=[[address], ["10.20.0.99"]])
    fetched = fetch_metadata(running.url(), policy=_policy(running, {"metadata.test": [address]}),
                             resolver=rebinding)
    assert fetched.body == METADATA
    assert rebinding.calls == [("metadata.test", running.port)]  # asked once, connected there


def test_a_listed_host_that_redirects_is_refused(internal: tuple[Running, str]) -> None:
    running, address = internal
    with pytest.raises(ConfigError, match="redirect"):
        fetch_metadata(running.url("/moved"),
                       policy=_policy(running, {"metadata.test": [address]}),
                       resolver=Resolver(metadata_test=[address]))
    assert [path for path, _ in running.server.requests] == ["/moved"]  # nothing followed


@pytest.mark.parametrize("hosts,problem", [
    ({"adfs.corp.test": ["127.0.0.1"]}, "a loopback address can never be fetched from"),
    ({"adfs.corp.test": ["169.254.169.254"]}, "a link-local address can never be fetched from"),
    ({"adfs.corp.test": ["10.0.0.0/8"]}, "wider than /24"),
    ({"adfs.corp.test": ["fd00::/48"]}, "wider than /64"),
    ({"adfs.corp.test": ["8.8.8.8"]}, "not a private address"),
    ({"adfs.corp.test": ["::ffff:10.1.2.3"]}, "write the IPv4 address itself"),
    ({"adfs.corp.test": "10.1.2.3"}, "a list of 1 to 16 addresses"),
    ({"10.1.2.3": ["10.1.2.3"]}, "'10.1.2.3' is not a host name"),
    ({"https://adfs.corp.test/": ["10.1.2.3"]}, "is not a host name"),
    (["adfs.corp.test"], "a table of at most 8 host names"),
])
def test_the_setting_refuses_what_would_open_more_than_one_service(hosts: object,
                                                                   problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_idp_settings({"metadata_internal_hosts": hosts}, source="IdP adfs settings")
    assert any(p.startswith("IdP adfs settings: metadata_internal_hosts") and problem in p
               for p in caught.value.problems), caught.value.problems


def test_the_setting_reads_names_and_networks() -> None:
    settings = parse_idp_settings({"metadata_internal_hosts": {
        "ADFS.Corp.Test": ["10.20.0.15", "10.20.1.0/28", "fd12::5"]}}, source="x")
    [(host, networks)] = settings.metadata_internal_hosts
    assert host == "adfs.corp.test"
    assert [str(n) for n in networks] == ["10.20.0.15/32", "10.20.1.0/28", "fd12::5/128"]



@pytest.fixture
def adfs_like(pki: Pki, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
              session_other_idp: DevIdp) -> Iterator[tuple[str, str]]:
    """The IdP's metadata on an internal https host, the way AD FS publishes it; the system
    resolver answers for that name with this machine's private address."""
    address = _own_private_address()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    server = http.server.ThreadingHTTPServer((address, 0), PublishedHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    _Published.body, _Published.requests = session_other_idp.metadata_xml(), []
    monkeypatch.setattr("bridge.idps.fetch.system_resolver", Resolver(metadata_test=[address]))
    try:
        yield address, f"https://metadata.test:{server.server_address[1]}/metadata.xml"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_ad_fs_rollover_from_an_internal_host_without_the_global_switch(
        bridge: Services, adfs_like: tuple[str, str], pki: Pki) -> None:  # noqa: F811
    address, url = adfs_like
    assert not bridge.settings.insecure_metadata_private_addresses
    admin = IdpAdmin(bridge, FetchPolicy(ca_bundle=pki.ca_file))
    with pytest.raises(ConfigError, match="must be listed, with its addresses, in the "
                       "metadata_internal_hosts"):
        admin.create_idp("adfs", xml=None, url=url, settings={}, actor="test")
    assert _Published.requests == []

    hosts = {"metadata.test": [address]}
    created = admin.create_idp("adfs", xml=None, url=url, actor="alice",
                               settings={"metadata_internal_hosts": hosts})
    assert created["metadata_url"] == url and len(_Published.requests) == 1
    assert admin.refresh("adfs")["status"] in ("not_modified", "identical")

    # Taking the host off the list is a settings change like any other: audited, and in force.
    admin.update_settings("adfs", {}, actor="bob")
    with pytest.raises(ConfigError, match="metadata_internal_hosts"):
        admin.refresh("adfs")
    with bridge.db.transaction() as session:
        events = {e.event: json.loads(e.detail_json) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.idp_slug == "adfs"))}
    assert events["idp_created"]["settings"]["metadata_internal_hosts"] == hosts
    assert events["idp_settings_changed"]["before"]["metadata_internal_hosts"] == hosts
    assert events["idp_settings_changed"]["actor"] == "bob"
