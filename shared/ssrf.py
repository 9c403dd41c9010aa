"""Outbound addresses (webhooks, CDS Hooks FHIR servers): refuse loopback, private, link-local and other
non-public addresses (SSRF).

A URL is checked when it is registered and again at every send, on the addresses the connection really
uses: `PinnedBackend` resolves the host itself, checks every address and connects to a checked one, so
a DNS answer that changes between the check and the connection (rebinding) cannot reach inside.
TLS still verifies the certificate against the host name (httpcore passes it as server_hostname).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from functools import lru_cache
from urllib.parse import urlsplit

import httpcore
import httpx

Resolver = Callable[[str, int], list[str]]


class DestinationRefused(ValueError):
    """The URL is malformed or points at an address a webhook may not reach."""


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DestinationRefused(f"cannot resolve host {host!r}") from exc
    return sorted({str(info[4][0]) for info in infos})


# IPv6 forms that embed or translate to an IPv4 address (or relay through one): a webhook receiver has no
# reason to publish them, and each could lead to an internal IPv4 host. Refused whatever they embed.
_TRANSLATED_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/96",  # IPv4-compatible (deprecated, RFC 4291)
        "::ffff:0:0/96",  # IPv4-mapped (also caught by ipv4_mapped)
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT, RFC 2765)
        "64:ff9b::/96",  # NAT64 well-known prefix (RFC 6052)
        "64:ff9b:1::/48",  # NAT64 local-use prefix (RFC 8215)
        "2002::/16",  # 6to4 (RFC 3056, deprecated by RFC 7526)
        "2001::/32",  # Teredo (RFC 4380)
        "fec0::/10",  # site-local (deprecated, RFC 3879): Python's is_global says True
        "3fff::/20",  # documentation (RFC 9637): newer than Python 3.11's tables
        "5f00::/16",  # SRv6 SIDs (RFC 9602)
    )
)


def is_public_address(address: str) -> bool:
    """True only for a plain, globally routable unicast address. Every `ipaddress` property that marks a
    special range refuses (private, loopback, link-local, site-local, multicast, reserved, unspecified,
    not global), and so do the IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4,
    Teredo) and scoped addresses (`fe80::1%eth0`)."""
    if "%" in address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None or ip.sixtofour is not None or ip.teredo is not None or ip.is_site_local:
            return False
        if any(ip in network for network in _TRANSLATED_V6):
            return False
    return _is_public(ip)


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def check_addresses(host: str, addresses: Iterable[str], allow_private: bool) -> list[str]:
    """All addresses when every one is public (or private ones are allowed); otherwise refuse."""
    addresses = list(addresses)
    if not addresses:
        raise DestinationRefused(f"host {host!r} has no address")
    if not allow_private:
        refused = [address for address in addresses if not is_public_address(address)]
        if refused:
            raise DestinationRefused(f"host {host!r} resolves to a non-public address ({refused[0]})")
    return addresses


def check_url(url: str, allow_private: bool, resolver: Resolver = resolve) -> str:
    """The URL, normalised, if a webhook may be sent there. https only unless private targets are allowed."""
    parts = urlsplit(url.strip())
    allowed_schemes = ("http", "https") if allow_private else ("https",)
    if parts.scheme not in allowed_schemes:
        raise DestinationRefused(f"URL scheme must be {' or '.join(allowed_schemes)}")
    if not parts.hostname or parts.username or parts.password:
        raise DestinationRefused("URL must name a host and carry no credentials")
    try:
        explicit = parts.port
    except ValueError as exc:
        raise DestinationRefused("URL port is invalid") from exc
    if explicit == 0:
        raise DestinationRefused("URL port is invalid")  # port 0: "any port" to the socket layer
    port = explicit or (443 if parts.scheme == "https" else 80)
    check_addresses(parts.hostname, resolver(parts.hostname, port), allow_private)
    return parts.geturl()


class PinnedBackend(httpcore.SyncBackend):
    """Connects only to addresses that passed `check_addresses` in this very resolution."""

    def __init__(self, allow_private: bool, resolver: Resolver = resolve) -> None:
        self.allow_private = allow_private
        self.resolver = resolver

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # type: ignore[no-untyped-def]
        try:
            if not 0 < port < 65536:
                raise DestinationRefused("port is invalid")
            addresses = check_addresses(host, self.resolver(host, port), self.allow_private)
        except DestinationRefused as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        last_error: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """Built once: loading the CA bundle costs tens of milliseconds."""
    return httpx.create_ssl_context()


class PinnedTransport(httpx.HTTPTransport):
    """httpx transport whose connections go through `PinnedBackend`; no proxies from the environment."""

    def __init__(self, allow_private: bool, resolver: Resolver = resolve) -> None:
        super().__init__(verify=tls_context())
        # httpx has no public hook for the network backend; replace the pool it built with one that has ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=tls_context(),
            max_connections=20,
            network_backend=PinnedBackend(allow_private, resolver),
        )
