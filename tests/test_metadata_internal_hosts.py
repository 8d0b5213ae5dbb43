"""An IdP's internal metadata host (AD FS on the company network): fetched on exactly the
addresses and port the admin named, from exactly that host, with every other SSRF rule still
standing; an internal host may only be on a private address (RFC 1918, IPv6 ULA); a failure tells
the admin nothing about the internal network; and the setting itself refuses what would open more
than one service.

The internal server is a real HTTPS server on a private address this test session puts on the
loopback interface (``ip addr add 10.203.x.y/32 dev lo``, and an fd42:203:: ULA when IPv6 works);
``metadata.test`` reaches it through the fetcher's resolver argument."""

from __future__ import annotations

import http.server
import ipaddress
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import urllib3.util.connection
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from bridge.admin.access import AdminAccess
from bridge.dev.saml_idp import DevIdp
from bridge.errors import ConfigError, FetchRefused
from bridge.idps.fetch import INTERNAL_HOST_REFUSED, FetchPolicy, fetch_metadata
from bridge.idps.internal_hosts import parse_internal_hosts
from bridge.idps.lifecycle import IdpAdmin
from bridge.idps.settings import parse_idp_settings
from bridge.ip_forms import nat64_networks
from bridge.services import Services
from bridge.store.models import AuditEvent, IdpRecord
from tests.test_admin_metadata_url import _Handler as PublishedHandler
from tests.test_admin_metadata_url import _Published
from tests.test_metadata_fetch import (  # noqa: F401
    METADATA,
    Pki,
    Resolver,
    Running,
    _Handler,
    _Server,
    pki,
)

HOST_REFUSED = "metadata_internal_host_refused"
FETCH_FAILED = "metadata_internal_fetch_failed"
BANNER = b"Apache/2.4.1 (Internal) intranet-wiki.corp.test secret banner"


# --- private addresses on this machine --------------------------------------------------------

def _add_address(address: str) -> bool:
    """Put ``address`` on ``lo``; True when this session added it (and must remove it)."""
    family = "-6" if ":" in address else "-4"
    prefix = "/128" if ":" in address else "/32"
    shown = subprocess.run(["ip", family, "addr", "show", "dev", "lo"], capture_output=True,
                           text=True, check=False)
    if f" {address}{prefix} " in shown.stdout or f" {address}/" in shown.stdout:
        return False
    extra = ["nodad"] if ":" in address else []
    added = subprocess.run(["ip", family, "addr", "add", address + prefix, "dev", "lo", *extra],
                           capture_output=True, text=True, check=False)
    if added.returncode != 0:
        raise OSError(added.stderr.strip() or f"ip addr add {address} failed")
    return True


def _remove_address(address: str) -> None:
    family = "-6" if ":" in address else "-4"
    prefix = "/128" if ":" in address else "/32"
    subprocess.run(["ip", family, "addr", "del", address + prefix, "dev", "lo"],
                   capture_output=True, check=False)


def _usable(address: str) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def private_addresses() -> Iterator[dict[int, str]]:
    """A private IPv4 address (and an IPv6 ULA when IPv6 works) on ``lo``, one per test process
    so parallel runs do not share (or remove) each other's."""
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is missing; scripts/setup test installs it")
    unique = os.getpid() % 65000 + 1
    wanted = {4: f"10.203.{unique // 256}.{unique % 256}", 6: f"fd42:203::{unique:x}"}
    added: list[str] = []
    available: dict[int, str] = {}
    try:
        for version, address in wanted.items():
            try:
                if _add_address(address):
                    added.append(address)
            except OSError as exc:
                if version == 4:
                    pytest.skip(f"cannot add {address} to lo (not root?): {exc}")
                continue
            if _usable(address):
                available[version] = address
        if 4 not in available:
            pytest.skip("the private address on lo cannot be bound")
        yield available
    finally:
        for address in added:
            _remove_address(address)


class _InternalHandler(_Handler):
    """The test server's routes, and what an internal server that is not AD FS answers."""

    def route_banner(self) -> None:
        self.reply(500, BANNER, Server="intranet-wiki/1.0")

    def route_wiki(self) -> None:
        self.reply(200, b"<html><head><title>" + BANNER + b"</title></head><body/></html>",
                   Content_Type="text/html")

    def route_other_xml(self) -> None:
        self.reply(200, b"<config><db-password>" + BANNER + b"</db-password></config>",
                   Content_Type="application/xml")


class _InternalServer(_Server):
    def __init__(self, context: ssl.SSLContext, address: str, port: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        http.server.ThreadingHTTPServer.__init__(self, (address, port), _InternalHandler)
        self.socket = context.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)
        self.connections = 0
        self.requests = []
        self.stopping = threading.Event()


def _serve(pki: Pki, address: str, port: int = 0) -> tuple[_Server, threading.Thread]:  # noqa: F811
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    httpd = _InternalServer(context, address, port)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return httpd, thread


def _stop(httpd: _Server, thread: threading.Thread) -> None:
    httpd.stopping.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(params=[4, 6], ids=["ipv4", "ipv6"])
def internal(request: pytest.FixtureRequest, pki: Pki,  # noqa: F811
             private_addresses: dict[int, str]) -> Iterator[tuple[Running, str]]:
    if request.param not in private_addresses:
        pytest.skip("IPv6 is not available here")
    address = private_addresses[request.param]
    httpd, thread = _serve(pki, address)
    try:
        yield Running(httpd, pki.ca_file), address
    finally:
        _stop(httpd, thread)


@pytest.fixture
def internal_v4(pki: Pki,  # noqa: F811
                private_addresses: dict[int, str]) -> Iterator[tuple[Running, str]]:
    httpd, thread = _serve(pki, private_addresses[4])
    try:
        yield Running(httpd, pki.ca_file), private_addresses[4]
    finally:
        _stop(httpd, thread)


class _Connects:
    """Every TCP connection the fetcher opens, by address."""

    def __init__(self) -> None:
        self.addresses: list[str] = []


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> _Connects:
    seen = _Connects()
    real = urllib3.util.connection.create_connection

    def recording(address: tuple[str, int], *args: object, **kwargs: object) -> object:
        seen.addresses.append(address[0])
        return real(address, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(urllib3.util.connection, "create_connection", recording)
    return seen


def _policy(running: Running, hosts: dict[str, list[str]]) -> FetchPolicy:
    problems: list[str] = []
    parsed = parse_internal_hosts(hosts, problems.append)
    assert not problems
    # Every internal failure takes the whole connect and read budget (decision 28): short ones
    # keep these tests quick.
    return FetchPolicy(ca_bundle=running.ca_file, internal_hosts=parsed, connect_timeout=1.0,
                       read_timeout=1.0)


def _entry(running: Running) -> str:
    return f"metadata.test:{running.port}"


# --- what is fetched ----------------------------------------------------------------------------

def test_a_listed_host_is_fetched_on_its_listed_address(internal: tuple[Running, str],
                                                          connects: _Connects) -> None:
    running, address = internal
    fetched = fetch_metadata(running.url(), policy=_policy(running, {_entry(running): [address]}),
                             resolver=Resolver(metadata_test=[address]))
    assert fetched.body == METADATA and running.server.connections == 1
    assert connects.addresses == [address]


def test_an_entry_without_a_port_is_fetched_on_443_only(
        pki: Pki, private_addresses: dict[int, str], connects: _Connects) -> None:  # noqa: F811
    address = private_addresses[4]
    try:
        httpd, thread = _serve(pki, address, port=443)
    except OSError:
        pytest.skip("port 443 cannot be bound here")
    try:
        running = Running(httpd, pki.ca_file)
        policy = _policy(running, {"metadata.test": [address]})
        fetched = fetch_metadata("https://metadata.test/idp.xml", policy=policy,
                                 resolver=Resolver(metadata_test=[address]))
        assert fetched.body == METADATA
        for url in ("https://metadata.test:8443/idp.xml", "https://metadata.test:22/idp.xml"):
            with pytest.raises(FetchRefused) as caught:
                fetch_metadata(url, policy=policy, resolver=Resolver(metadata_test=[address]))
            assert caught.value.code == HOST_REFUSED
            assert "port 443 only" in str(caught.value)
        assert connects.addresses == [address] and httpd.connections == 1
    finally:
        _stop(httpd, thread)


def test_an_entry_with_a_port_is_fetched_on_that_port_only(internal_v4: tuple[Running, str],
                                                           connects: _Connects) -> None:
    running, address = internal_v4
    policy = _policy(running, {_entry(running): [address]})
    for url in ("https://metadata.test/idp.xml", f"https://metadata.test:{running.port + 1}/"):
        with pytest.raises(FetchRefused) as caught:
            fetch_metadata(url, policy=policy, resolver=Resolver(metadata_test=[address]))
        assert caught.value.code == HOST_REFUSED
    assert connects.addresses == [] and running.server.connections == 0


def test_a_host_not_on_the_list_is_refused(internal: tuple[Running, str],
                                           connects: _Connects) -> None:
    running, address = internal
    policy = _policy(running, {f"adfs.corp.test:{running.port}": [address]})
    # another name that leads to the very same internal address
    with pytest.raises(ConfigError, match=r"metadata_url: metadata.test has no public address "
                       r"\(it does not resolve, or resolves to a private or internal one\); "
                       r"metadata is only fetched from public addresses \(an "
                       r"internal host must be listed, with its addresses, in the "
                       r"metadata_internal_hosts of this IdP\)") as caught:
        fetch_metadata(running.url(), policy=policy, resolver=Resolver(metadata_test=[address]))
    assert address not in str(caught.value)
    assert running.server.connections == 0 and connects.addresses == []


# Every range an internal host may never be on, as a DNS answer for a listed host.
REFUSED_ANSWERS = [
    "10.20.0.99",           # rebound to another internal service
    "127.0.0.1",            # loopback
    "127.203.0.1",
    "169.254.169.254",      # the cloud's metadata service
    "169.254.10.1",         # link-local
    "100.64.0.1",           # CGNAT (shared address space)
    "100.127.255.254",
    "198.18.0.1",           # benchmarking
    "198.19.255.1",
    "240.0.0.1",            # reserved
    "255.255.255.255",
    "0.0.0.0",              # 'this network'
    "0.1.2.3",
    "224.0.0.1",            # multicast
    "239.255.255.250",
    "192.0.2.2",            # TEST-NET-1 (this machine's own address)
    "198.51.100.7",         # TEST-NET-2
    "203.0.113.9",          # TEST-NET-3
    "192.0.0.8",            # IETF protocol assignments
    "192.88.99.1",          # 6to4 relay anycast
    "::1",                  # IPv6 loopback
    "::",                   # unspecified
    "fe80::1",              # IPv6 link-local
    "fd00:ec2::254",        # AWS's IPv6 instance metadata service (inside fc00::/7)
    "fd20:ce::254",         # Google Cloud's IPv6 metadata server (inside fc00::/7)
    "ff02::1",              # IPv6 multicast
    "2001:db8::1",          # IPv6 documentation
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",   # NAT64 form of 169.254.169.254
    "2002:a9fe:a9fe::1",    # 6to4 form of 169.254.169.254
    "2001::1",              # Teredo
    "fec0::1",              # site-local (deprecated)
]


@pytest.mark.parametrize("answer", REFUSED_ANSWERS)
def test_a_listed_host_resolving_to_a_refused_range_is_never_connected_to(
        internal_v4: tuple[Running, str], connects: _Connects, answer: str,
        caplog: pytest.LogCaptureFixture) -> None:
    running, address = internal_v4
    policy = _policy(running, {_entry(running): [address, "10.20.0.15", "fd42:203::5"]})
    for answers in ([answer], [address, answer]):
        with pytest.raises(FetchRefused) as caught, caplog.at_level(logging.WARNING):
            fetch_metadata(running.url(), policy=policy,
                           resolver=Resolver(metadata_test=answers))
        assert caught.value.code == HOST_REFUSED
        # the admin is not told what the internal name resolves to; the log is
        shown = ipaddress.ip_address(answer)
        assert str(shown) not in str(caught.value) and answer not in str(caught.value)
        assert caught.value.log_detail["address"] in caplog.text
    assert connects.addresses == [] and running.server.connections == 0


def test_a_rebinding_answer_after_the_check_is_never_connected_to(
        internal: tuple[Running, str], connects: _Connects) -> None:
    running, address = internal
    rebinding = Resolver(metadata_test=[[address], ["10.20.0.99"]])
    fetched = fetch_metadata(running.url(), policy=_policy(running, {_entry(running): [address]}),
                             resolver=rebinding)
    assert fetched.body == METADATA
    assert rebinding.calls == [("metadata.test", running.port)]  # asked once, connected there
    assert connects.addresses == [address]


# --- what the admin is told when it fails ----------------------------------------------------

def _refusal(running: Running, address: str, path: str, **policy_changes: object) -> FetchRefused:
    policy = replace(_policy(running, {_entry(running): [address]}), **policy_changes)
    with pytest.raises(FetchRefused) as caught:
        fetch_metadata(running.url(path), policy=policy,
                       resolver=Resolver(metadata_test=[address]))
    return caught.value


def test_an_internal_failure_reveals_nothing_of_the_internal_server(
        internal: tuple[Running, str], caplog: pytest.LogCaptureFixture,
        tmp_path: object) -> None:
    running, address = internal
    with caplog.at_level(logging.WARNING, logger="bridge.idps.fetch"):
        failures = {
            "redirect": _refusal(running, address, "/moved"),
            "status": _refusal(running, address, "/banner"),
            "missing": _refusal(running, address, "/nothing-here"),
            "html": _refusal(running, address, "/wiki"),
            "other xml": _refusal(running, address, "/other.xml"),
            "oversized": _refusal(running, address, "/large-declared", max_bytes=1024),
            "tls": _refusal(running, address, "/idp.xml", ca_bundle=None),
        }
    messages = {"; ".join(error.problems) for error in failures.values()}
    # One message for every failure: nothing to tell a closed port from a wrong path or an answer.
    assert len(messages) == 1 and all(e.code == FETCH_FAILED for e in failures.values())
    [message] = messages
    assert "could not be fetched from the internal host metadata.test" in message
    for secret in ("500", "404", "302", "elsewhere", "apache", "banner", "wiki", "html",
                   "db-password", "bytes", "certificate verify", address):
        assert secret not in message.lower(), secret
    # The operator's log keeps every detail.
    for detail in ("302", "elsewhere.test", "500", "404", "secret banner", "db-password",
                   "6553600", "CERTIFICATE_VERIFY"):
        assert detail in caplog.text, detail


def test_a_closed_port_reads_like_any_other_failure(
        internal_v4: tuple[Running, str], pki: Pki,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    running, address = internal_v4
    refused_by_server = _refusal(running, address, "/banner")
    closed = Running(running.server, pki.ca_file)
    with socket.socket() as spare:  # a port nothing listens on
        spare.bind((address, 0))
        free_port = spare.getsockname()[1]
    policy = _policy(closed, {f"metadata.test:{free_port}": [address]})
    with pytest.raises(FetchRefused) as caught, caplog.at_level(logging.WARNING):
        fetch_metadata(f"https://metadata.test:{free_port}/idp.xml", policy=policy,
                       resolver=Resolver(metadata_test=[address]))
    assert caught.value.code == FETCH_FAILED
    assert str(caught.value) == str(refused_by_server)
    assert "could not connect" in caplog.text


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
    ({"adfs.corp.test:0": ["10.1.2.3"]}, "is not a host name (or a host name and a port"),
    ({"adfs.corp.test:65536": ["10.1.2.3"]}, "is not a host name (or a host name and a port"),
    ({"adfs.corp.test:https": ["10.1.2.3"]}, "is not a host name (or a host name and a port"),
    ({"adfs.corp.test": ["127.0.0.1/32"]}, "a loopback address"),
    ({"adfs.corp.test": ["169.254.169.254/32"]}, "a link-local address"),
    ({"adfs.corp.test": ["fe80::1"]}, "a link-local address"),
    ({"adfs.corp.test": ["::1"]}, "a loopback address"),
    ({"adfs.corp.test": ["100.64.0.1"]}, "a shared address space (CGNAT, 100.64/10) address"),
    ({"adfs.corp.test": ["198.18.0.1"]}, "a benchmarking (198.18/15) address"),
    ({"adfs.corp.test": ["240.0.0.1"]}, "a reserved (240/4) address"),
    ({"adfs.corp.test": ["0.0.0.1"]}, "a 'this network' (0/8) address"),
    ({"adfs.corp.test": ["224.0.0.251"]}, "a multicast address"),
    ({"adfs.corp.test": ["ff02::fb"]}, "a multicast address"),
    ({"adfs.corp.test": ["192.0.2.2"]}, "a documentation (TEST-NET) address"),
    ({"adfs.corp.test": ["198.51.100.0/24"]}, "a documentation (TEST-NET) address"),
    ({"adfs.corp.test": ["203.0.113.5"]}, "a documentation (TEST-NET) address"),
    ({"adfs.corp.test": ["2001:db8::1"]}, "a documentation address"),
    ({"adfs.corp.test": ["192.0.0.8"]}, "an IETF protocol assignment (192.0.0/24) address"),
    ({"adfs.corp.test": ["192.88.99.1"]}, "a 6to4 relay (192.88.99/24) address"),
    ({"adfs.corp.test": ["fd00:ec2::254"]}, "a cloud metadata service (fd00:ec2::/64, "),
    ({"adfs.corp.test": ["fd00:ec2::/64"]}, "a cloud metadata service (fd00:ec2::/64, "),
    ({"adfs.corp.test": ["fd20:ce::254"]}, "a cloud metadata service (fd00:ec2::/64, "
                                           "fd20:ce::/64) address"),
    ({"adfs.corp.test": ["fd20:ce::/64"]}, "fd20:ce::/64) address can never be fetched from"),
    ({"adfs.corp.test": ["fd20:ce::/80"]}, "fd20:ce::/64) address can never be fetched from"),
    # A zone names an interface of the fetching node, not the service's address.
    ({"adfs.corp.test": ["fd42:203::5%eth0"]}, "an address with a zone (%...) cannot be named"),
    ({"adfs.corp.test": ["fd42:203::5%1/128"]}, "an address with a zone (%...) cannot be named"),
    ({"adfs.corp.test": ["::"]}, "the unspecified address"),
    ({"adfs.corp.test": ["fec0::1"]}, "a site-local (deprecated) address"),
    ({"adfs.corp.test": ["64:ff9b::a00:1"]}, "a NAT64 address"),
    ({"adfs.corp.test": ["2002:a00:1::1"]}, "a 6to4 address"),
    ({"adfs.corp.test": ["2001::a00:1"]}, "a Teredo address"),
    ({"adfs.corp.test": ["172.32.0.1"]}, "not a private address"),
    ({"adfs.corp.test": ["11.0.0.1"]}, "not a private address"),
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
        "ADFS.Corp.Test": ["10.20.0.15", "10.20.1.0/28", "fd12::5", "172.31.255.1",
                           "192.168.1.0/24"],
        "adfs2.corp.test:8443": ["172.16.0.9"]}}, source="x")
    [(host, port, networks), (host2, port2, networks2)] = settings.metadata_internal_hosts
    assert (host, port, host2, port2) == ("adfs.corp.test", 443, "adfs2.corp.test", 8443)
    assert [str(n) for n in networks] == ["10.20.0.15/32", "10.20.1.0/28", "fd12::5/128",
                                          "172.31.255.1/32", "192.168.1.0/24"]
    assert [str(n) for n in networks2] == ["172.16.0.9/32"]


@pytest.fixture
def adfs_like(pki: Pki, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
              session_other_idp: DevIdp,
              private_addresses: dict[int, str]) -> Iterator[tuple[str, str, str]]:
    """The IdP's metadata on an internal https host, the way AD FS publishes it; the system
    resolver answers for that name with the session's private address."""
    address = private_addresses[4]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    server = http.server.ThreadingHTTPServer((address, 0), PublishedHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    _Published.body, _Published.requests = session_other_idp.metadata_xml(), []
    monkeypatch.setattr("bridge.idps.fetch.system_resolver", Resolver(metadata_test=[address]))
    port = server.server_address[1]
    try:
        yield address, f"https://metadata.test:{port}/metadata.xml", f"metadata.test:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_ad_fs_rollover_from_an_internal_host_without_the_global_switch(
        bridge: Services, adfs_like: tuple[str, str, str], pki: Pki) -> None:  # noqa: F811
    address, url, entry = adfs_like
    assert not bridge.settings.insecure_metadata_private_addresses
    admin = IdpAdmin(bridge, FetchPolicy(ca_bundle=pki.ca_file))
    with pytest.raises(ConfigError, match="must be listed, with its addresses, in the "
                       "metadata_internal_hosts"):
        admin.create_idp("adfs", xml=None, url=url, settings={}, actor="test")
    assert _Published.requests == []

    hosts = {entry: [address]}
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


@pytest.fixture
def quick_app_fetches(app: Flask) -> None:
    """The app's fetch policy with short timeouts: an internal failure takes all of them."""
    idps = app.extensions["admin"].idps
    idps.fetch_policy = replace(idps.fetch_policy, connect_timeout=1.0, read_timeout=1.0)


def test_the_admin_api_tells_only_that_an_internal_fetch_failed(
        bridge: Services, client: FlaskClient, adfs_like: tuple[str, str, str],
        pki: Pki, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        caplog: pytest.LogCaptureFixture, quick_app_fetches: None) -> None:
    address, url, entry = adfs_like
    monkeypatch.setattr("bridge.idps.fetch.certifi.where", lambda: pki.ca_file)
    token = AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token("t", expires_in=3600,
                                                               actor="test")[1]
    headers = {"Authorization": f"Bearer {token}"}
    metadata = _Published.body
    _Published.body = b"<html><title>" + BANNER + b"</title></html>"
    with caplog.at_level(logging.WARNING):
        response = client.post("/admin/api/idps", headers=headers, json={
            "slug": "adfs", "metadata_url": url,
            "settings": {"metadata_internal_hosts": {entry: [address]}}})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.json["code"] == FETCH_FAILED
    assert b"secret banner" not in response.data and address.encode() not in response.data
    assert "secret banner" in caplog.text and response.json["error_id"] in caplog.text
    assert len(_Published.requests) == 1
    with bridge.db.transaction() as session:
        assert session.get(IdpRecord, "adfs") is None  # nothing was created

    # A refresh of an IdP whose internal host stops serving metadata: the stored fetch error and
    # the audit trail (which admins read) say only that it failed.
    _Published.body = metadata
    assert client.post("/admin/api/idps", headers=headers, json={
        "slug": "adfs", "metadata_url": url,
        "settings": {"metadata_internal_hosts": {entry: [address]}}}).status_code == 201
    _Published.body = b"<html><title>" + BANNER + b"</title></html>"
    refreshed = client.post("/admin/api/idps/adfs/metadata/refresh", headers=headers)
    assert refreshed.status_code == 422 and refreshed.json["code"] == FETCH_FAILED
    shown = client.get("/admin/api/idps/adfs", headers=headers).get_data(as_text=True)
    trail = client.get("/admin/api/audit", headers=headers).get_data(as_text=True)
    assert "could not be fetched from the internal host" in trail
    assert address not in refreshed.get_data(as_text=True)
    for text in (refreshed.get_data(as_text=True), shown, trail):
        assert "secret banner" not in text


# --- what the admin learns of the internal network's names and ports -------------------------------

class Dns(Resolver):
    """The resolver as DNS answers: a name with its trailing dot (the fully qualified form) is
    the same name."""

    def __call__(self, host: str, port: int) -> list[str]:
        return super().__call__(host.removesuffix("."), port)


@pytest.mark.parametrize("host", ["metadata.test.", "METADATA.Test", "metadata\u3002test",
                                  "metadata\uff0etest\uff61"])
def test_every_form_of_a_listed_host_name_is_the_listed_host(
        internal_v4: tuple[Running, str], connects: _Connects, host: str) -> None:
    """A fully qualified name, another case, or the full stops IDNA reads as dots name the
    listed host: it is fetched as that host (on its listed address, its certificate checked for
    the name of its entry), not judged as some other name whose refusal names its address."""
    running, address = internal_v4
    policy = _policy(running, {_entry(running): [address]})
    fetched = fetch_metadata(f"https://{host}:{running.port}/idp.xml", policy=policy,
                             resolver=Dns(metadata_test=[address]))
    assert fetched.status == 200 and connects.addresses == [address]


def test_a_form_of_a_listed_host_on_an_unlisted_address_is_refused_without_it(
        internal_v4: tuple[Running, str], connects: _Connects) -> None:
    running, address = internal_v4
    policy = _policy(running, {_entry(running): ["10.20.0.15"]})
    with pytest.raises(FetchRefused) as caught:
        fetch_metadata(f"https://metadata.test.:{running.port}/idp.xml", policy=policy,
                       resolver=Dns(metadata_test=[address]))
    assert caught.value.code == HOST_REFUSED and address not in str(caught.value)
    assert connects.addresses == []


def _token_headers(bridge: Services) -> dict[str, str]:
    token = AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token("t", expires_in=3600,
                                                               actor="test")[1]
    return {"Authorization": f"Bearer {token}"}


def _internal_fetch_events(bridge: Services) -> list[AuditEvent]:
    with bridge.db.transaction() as session:
        events = list(session.scalars(select(AuditEvent).where(
            AuditEvent.event == "idp_metadata_internal_fetch").order_by(AuditEvent.id)))
        session.expunge_all()
    return events


def test_the_admin_api_does_not_answer_internal_dns_questions(
        bridge: Services, client: FlaskClient, monkeypatch: pytest.MonkeyPatch,
        private_addresses: dict[int, str], quick_app_fetches: None,
        caplog: pytest.LogCaptureFixture) -> None:
    """An admin types an internal name as a draft's metadata URL, with or without an entry for
    it: the answer is never the name's internal address (the log has it, under the error id),
    and each attempt on the listed host is an audit event naming who, which IdP and which host."""
    address = private_addresses[4]
    monkeypatch.setattr("bridge.idps.fetch.system_resolver",
                        Dns(adfs_corp_test=[address], dc01_corp_test=["10.1.2.3"]))
    headers = _token_headers(bridge)
    assert client.post("/admin/api/idp-drafts", headers=headers, json={
        "slug": "adfs", "settings": {"metadata_internal_hosts": {"adfs.corp.test": [address]}}},
    ).status_code == 201
    answers = {}
    with caplog.at_level(logging.WARNING):
        for url in ("https://adfs.corp.test./FederationMetadata.xml",  # the listed host
                    "https://ADFS.corp.test/FederationMetadata.xml",
                    "https://dc01.corp.test/",  # any other internal name
                    "https://dc01.corp.test./",
                    "https://dc02.corp.test/"):  # and one the internal DNS does not know
            answered = client.post("/admin/api/idps/adfs/metadata", headers=headers,
                                   json={"metadata_url": url})
            assert answered.status_code == 422
            answers[url] = answered.json
            assert answered.json["error_id"] in caplog.text
    for answer in answers.values():
        assert address not in json.dumps(answer) and "10.1.2.3" not in json.dumps(answer), answer
    # The listed host: nothing answers on its port 443, which reads like any failure of it.
    assert answers["https://adfs.corp.test./FederationMetadata.xml"]["code"] == FETCH_FAILED
    # Any other internal name, known to the internal DNS or not: one answer, naming no address
    # and not telling whether the name resolves.
    assert answers["https://dc01.corp.test/"]["code"] == "config_invalid"
    assert "has no public address (it does not resolve, or resolves to a private or internal " \
        "one)" in json.dumps(answers["https://dc01.corp.test/"])
    known, unknown = ({key: value for key, value in answers[url].items() if key != "error_id"}
                      for url in ("https://dc01.corp.test/", "https://dc02.corp.test/"))
    assert json.dumps(known) == json.dumps(unknown).replace("dc02", "dc01")
    assert "cannot resolve" not in json.dumps(answers["https://dc02.corp.test/"])
    assert "10.1.2.3" in caplog.text  # the operator's log keeps it

    events = _internal_fetch_events(bridge)
    assert [(e.idp_slug, e.outcome, e.code) for e in events] == [
        ("adfs", "failure", FETCH_FAILED)] * 2
    assert [json.loads(e.detail_json) for e in events] == [
        {"actor": "token:t", "host": "adfs.corp.test"}] * 2  # no address, no reason
    trail = client.get("/admin/api/audit", headers=headers).json["events"]
    shown = [e for e in trail if e["event"] == "idp_metadata_internal_fetch"]
    assert len(shown) == 2 and "Connection refused" not in json.dumps(trail)


def test_a_fetch_from_an_internal_host_is_audited_when_it_succeeds(
        bridge: Services, adfs_like: tuple[str, str, str], pki: Pki) -> None:  # noqa: F811
    address, url, entry = adfs_like
    admin = IdpAdmin(bridge, FetchPolicy(ca_bundle=pki.ca_file))
    admin.create_idp("adfs", xml=None, url=url, actor="alice",
                     settings={"metadata_internal_hosts": {entry: [address]}})
    admin.refresh("adfs", actor="bob")
    events = _internal_fetch_events(bridge)
    assert [(e.idp_slug, e.outcome, json.loads(e.detail_json)) for e in events] == [
        ("adfs", "success", {"actor": "alice", "host": "metadata.test"}),
        ("adfs", "success", {"actor": "bob", "host": "metadata.test"})]


def test_a_listed_host_that_does_not_resolve_fails_like_any_other_internal_failure(
        internal_v4: tuple[Running, str], caplog: pytest.LogCaptureFixture) -> None:
    running, address = internal_v4
    policy = _policy(running, {_entry(running): [address]})
    with pytest.raises(FetchRefused) as caught, caplog.at_level(logging.WARNING):
        fetch_metadata(running.url("/idp.xml"), policy=policy, resolver=Resolver())  # NXDOMAIN
    assert caught.value.code == FETCH_FAILED, (caught.value.code, caught.value.problems)
    assert str(caught.value) == str(_refusal(running, address, "/banner"))
    assert "Name or service not known" in caplog.text


def _timed_failure(url: str, policy: FetchPolicy, address: str) -> tuple[float, str]:
    started = time.monotonic()
    with pytest.raises(FetchRefused) as caught:
        fetch_metadata(url, policy=policy, resolver=Resolver(metadata_test=[address]))
    return time.monotonic() - started, "; ".join(caught.value.problems)


def test_how_long_an_internal_failure_takes_does_not_tell_whether_a_port_answered(
        private_addresses: dict[int, str], pki: Pki) -> None:  # noqa: F811
    """A closed port against a port where a service accepts the connection and waits for its
    own protocol (as SSH servers before their banner, databases, or anything behind a
    firewall that drops packets behave), and a name that does not resolve: one message, and
    each answered when the connect and read timeouts have passed."""
    address = private_addresses[4]
    with socket.socket() as closed, socket.socket() as silent:
        closed.bind((address, 0))  # bound, not listening: the kernel answers with a reset
        silent.bind((address, 0))
        silent.listen(8)  # the kernel completes the handshake; nothing ever speaks
        closed_port, silent_port = closed.getsockname()[1], silent.getsockname()[1]
        policy = _policy(Running(None, pki.ca_file),  # type: ignore[arg-type]
                         {f"metadata.test:{closed_port}": [address],
                          f"metadata.test:{silent_port}": [address]})
        policy = replace(policy, connect_timeout=2.0, read_timeout=1.5)
        fast, closed_message = _timed_failure(f"https://metadata.test:{closed_port}/", policy,
                                              address)
        slow, silent_message = _timed_failure(f"https://metadata.test:{silent_port}/", policy,
                                              address)
        started = time.monotonic()
        with pytest.raises(FetchRefused) as unresolved:
            fetch_metadata(f"https://metadata.test:{closed_port}/", policy=policy,
                           resolver=Resolver())
        nxdomain = time.monotonic() - started
    assert closed_message.replace(str(closed_port), "P") == silent_message.replace(
        str(silent_port), "P") == "; ".join(unresolved.value.problems).replace(
        str(closed_port), "P")  # the wording holds
    assert min(fast, slow, nxdomain) >= 3.5, (fast, slow, nxdomain)
    assert max(fast, slow, nxdomain) - min(fast, slow, nxdomain) < 1.0, (fast, slow, nxdomain)


def test_an_entry_never_reaches_through_a_listed_nat64_prefix(
        internal_v4: tuple[Running, str], connects: _Connects) -> None:
    """An operator whose translator uses a unique local prefix lists it in nat64_prefixes. An
    entry on that prefix is a private IPv6 address by its form, but leads wherever the IPv4
    address it carries does: here 169.254.169.254, a cloud's metadata service."""
    running, _ = internal_v4
    behind = "fd00:64::a9fe:a9fe"
    policy = replace(_policy(running, {_entry(running): [behind]}),
                     nat64_prefixes=nat64_networks(("fd00:64::/96",)))
    with pytest.raises(FetchRefused) as caught:
        fetch_metadata(running.url(), policy=policy, resolver=Resolver(metadata_test=[behind]))
    assert caught.value.code == INTERNAL_HOST_REFUSED
    assert connects.addresses == [] and running.server.connections == 0
