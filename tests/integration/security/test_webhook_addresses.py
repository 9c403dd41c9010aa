"""The webhook address filter refuses every non-public address form, at registration (through the API,
with IP-literal URLs) and at send time (check_addresses on what the host resolves to), and port 0."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from shared.settings import get_settings
from shared.ssrf import DestinationRefused, check_addresses, check_url, is_public_address
from tests.integration.security.conftest import client_for

pytestmark = pytest.mark.integration

REFUSED = {
    "IPv4 loopback": "127.0.0.1",
    "IPv4 private 10/8": "10.1.2.3",
    "IPv4 private 172.16/12": "172.16.0.1",
    "IPv4 private 192.168/16": "192.168.1.1",
    "IPv4 CGNAT": "100.64.0.1",
    "IPv4 link-local (cloud metadata)": "169.254.169.254",
    "IPv4 unspecified": "0.0.0.0",
    "IPv4 this network": "0.1.2.3",
    "IPv4 multicast": "224.0.0.1",
    "IPv4 broadcast": "255.255.255.255",
    "IPv4 reserved 240/4": "240.0.0.1",
    "IPv4 benchmarking": "198.18.0.1",
    "IPv4 documentation": "192.0.2.1",
    "IPv4 IETF protocol assignments": "192.0.0.1",
    "IPv6 loopback": "::1",
    "IPv6 unspecified": "::",
    "IPv4-mapped private": "::ffff:10.0.0.1",
    "IPv4-mapped loopback": "::ffff:127.0.0.1",
    "IPv4-mapped public": "::ffff:8.8.8.8",
    "IPv4-translated": "::ffff:0:a00:1",
    "IPv4-compatible private": "::10.0.0.1",
    "IPv4-compatible loopback": "::127.0.0.1",
    "IPv4-compatible public": "::8.8.8.8",
    "NAT64 well-known to private": "64:ff9b::a00:1",
    "NAT64 well-known to metadata": "64:ff9b::a9fe:a9fe",
    "NAT64 local-use /48": "64:ff9b:1::a00:1",
    "6to4 embedding private": "2002:a00:1::1",
    "6to4 embedding loopback": "2002:7f00:1::1",
    "6to4 embedding public": "2002:808:808::1",
    "Teredo": "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "site-local fec0::/10": "fec0::1",
    "unique local fc00::/7": "fd12:3456::1",
    "link-local": "fe80::1",
    "link-local with zone": "fe80::1%eth0",
    "multicast": "ff02::1",
    "multicast global scope": "ff0e::1",
    "documentation 2001:db8::/32": "2001:db8::1",
    "documentation 3fff::/20": "3fff::1",
    "discard-only 100::/64": "100::1",
    "ORCHIDv2": "2001:20::1",
    "SRv6 SIDs": "5f00::1",
    "not an address": "example.org",
}
ACCEPTED = {"IPv4 public": "8.8.8.8", "IPv4 public 2": "1.1.1.1", "IPv6 public": "2606:4700:4700::1111"}


@pytest.mark.parametrize("address", REFUSED.values(), ids=REFUSED.keys())
def test_every_non_public_form_is_refused(address: str) -> None:
    assert not is_public_address(address)
    with pytest.raises(DestinationRefused):
        check_addresses("hook.example", [address], allow_private=False)
    # One bad address among good ones refuses the whole host (the connection could pick it).
    with pytest.raises(DestinationRefused):
        check_addresses("hook.example", ["8.8.8.8", address], allow_private=False)
    with pytest.raises(DestinationRefused):
        check_url("https://hook.example/h", allow_private=False, resolver=lambda host, port: [address])


@pytest.mark.parametrize("address", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(address)
    assert check_url("https://hook.example/h", allow_private=False, resolver=lambda host, port: [address])


@pytest.mark.parametrize(
    "url",
    ["https://hook.example:0/h", "https://hook.example:65536/h", "https://hook.example:-1/h", "http://hook.example/h"],
)
def test_bad_ports_and_schemes_are_refused(url: str) -> None:
    with pytest.raises(DestinationRefused):
        check_url(url, allow_private=False, resolver=lambda host, port: ["8.8.8.8"])


def _literal(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def test_the_api_refuses_each_form_as_an_ip_literal(
    notifications_app: FastAPI, bearer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_ALLOW_PRIVATE_WEBHOOKS", "false")
    get_settings.cache_clear()
    client = client_for(notifications_app)
    literals = {k: v for k, v in REFUSED.items() if "%" not in v and v != "example.org"}
    for label, address in literals.items():
        response = client.post(
            "/v1/webhook-endpoints", json={"url": f"https://{_literal(address)}/hook"}, headers=bearer("ops")
        )
        assert response.status_code == 422, (label, response.status_code)
    response = client.post("/v1/webhook-endpoints", json={"url": "https://8.8.8.8:0/hook"}, headers=bearer("ops"))
    assert response.status_code == 422
    assert client.get("/v1/webhook-endpoints", headers=bearer("ops")).json() in ([], {"items": []})
