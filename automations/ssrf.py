"""Refuse outbound requests to addresses inside our network (SSRF guard).

Checked when a URL is saved and again right before each delivery, against every address
the host resolves to; the request then goes to the checked address (no second lookup an
attacker's DNS could answer differently).
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class UnsafeUrl(ValueError):
    pass


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    address: str  # the vetted IP to connect to


# NAT64's well-known prefix (RFC 6052): the last 32 bits are the IPv4 address a translator connects to.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def embedded_ipv4(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, 6to4, Teredo (server and client) and NAT64.

    A relay or translator on the path connects to them, so they are vetted like the address itself.
    """
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if address in NAT64:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [ipv4 for ipv4 in embedded if ipv4 is not None]


def _refusal(address: Address, *, allow_private: bool) -> str | None:
    if address.is_link_local:
        return "link-local addresses (cloud metadata) are never allowed"
    if address.is_multicast or address.is_unspecified:
        return "multicast and unspecified addresses are not allowed"
    if address.is_loopback or address.is_private:
        return None if allow_private else "private and loopback addresses are not allowed"
    if address.is_reserved or not address.is_global:
        return "reserved addresses are not allowed"
    return None


def _address_refusal(address: Address, *, allow_private: bool) -> str | None:
    for ipv4 in embedded_ipv4(address):
        refusal = _refusal(ipv4, allow_private=allow_private)
        if refusal:
            return f"it embeds {ipv4}, and {refusal}"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return None  # ::ffff:0:0/96 itself is "private": the mapped address alone decides
    return _refusal(address, allow_private=allow_private)


def url_check(url: str, *, allow_private: bool, resolve: bool = True) -> Target:
    """Validate scheme, host and every resolved address; return where to connect."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeUrl(f"Not a valid URL: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("Only http and https URLs are allowed.")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeUrl("Credentials in the URL are not allowed.")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    elif not resolve:
        return Target(url=url, host=host, port=port, address="")
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise UnsafeUrl(f"The host {host} does not resolve.") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        refusal = _address_refusal(address, allow_private=allow_private)
        if refusal:
            raise UnsafeUrl(f"{host} resolves to {address}: {refusal}.")
    return Target(url=url, host=host, port=port, address=str(addresses[0]))
