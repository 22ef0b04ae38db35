"""Outbound HTTP to addresses central's users configure (webhooks), kept off HQ's own network.

Marketing sets a segment's or a trigger's webhook URL, and HQ the store-alert webhook. Unguarded,
anyone allowed to set one could make central POST to the services of HQ's own network or to a
cloud's metadata address, and learn from the deliveries' errors which of them answer
(server-side request forgery, OWASP Top 10 A10:2021). So every connection is checked on the
address it actually reached, after the name was resolved: a name that resolves to a public
address when a URL is saved and to a private one when it is used gains nothing. Loopback,
private (RFC 1918, unique local), link-local (169.254.169.254), shared (100.64.0.0/10),
documentation, reserved, multicast and unspecified addresses are refused unless
``webhooks.allow_private_addresses`` says HQ's receivers live there (or an egress proxy on HQ's
network carries the calls: its address is the one connected to). Calls to public addresses go over
https only: a webhook's body names customers (their ids; identifiers too, in an administrator's
segment export), which plain http would carry in clear across the internet.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from typing import Any, ClassVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class BlockedAddress(OSError):
    """A connection reached an address of HQ's own network (or no public one) and was closed unused."""


def public(address: str) -> bool:
    """Whether ``address`` (an IP, as a socket reports it) is one the public internet routes to."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_peer(sock: socket.socket, host: str, *, allow_private: bool, plain: bool) -> socket.socket:
    """``sock``, connected to ``host``, if a webhook may be sent over it; otherwise closed, and
    :class:`BlockedAddress` says why (``plain``: the connection is http://, not https://)."""
    address = sock.getpeername()[0]
    where = address if host.strip("[]") == address else f"{host} ({address})"
    if public(address):
        if plain:
            sock.close()
            raise BlockedAddress(
                f"{where} is a public address reached over plain http://, which would carry customers' data"
                " in clear; use its https:// address"
            )
    elif not allow_private:
        sock.close()
        raise BlockedAddress(
            f"{where} is not a public address (a private network, this machine, link-local or reserved);"
            " webhooks go to public addresses unless webhooks.allow_private_addresses is set"
        )
    return sock


class _HTTPConnection(HTTPConnection):
    allow_private = False

    def _new_conn(self) -> socket.socket:
        return check_peer(super()._new_conn(), self.host, allow_private=self.allow_private, plain=True)


class _HTTPSConnection(HTTPSConnection):
    allow_private = False

    def _new_conn(self) -> socket.socket:  # before the TLS handshake: nothing is sent to a refused address
        return check_peer(super()._new_conn(), self.host, allow_private=self.allow_private, plain=False)


class _PrivateHTTPConnection(_HTTPConnection):
    allow_private = True


class _PrivateHTTPSConnection(_HTTPSConnection):
    allow_private = True


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _PrivateHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PrivateHTTPConnection


class _PrivateHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PrivateHTTPSConnection


class PublicOnlyAdapter(HTTPAdapter):
    """A requests adapter whose connections to anything but public addresses, and plain-http ones to
    public addresses, fail with :class:`BlockedAddress`."""

    pools: ClassVar[Mapping[str, type[HTTPConnectionPool]]] = {"http": _HTTPPool, "https": _HTTPSPool}

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self.pools)


class ReceiverAdapter(PublicOnlyAdapter):
    """As :class:`PublicOnlyAdapter`, except that HQ's own network is allowed (over http or https)."""

    pools: ClassVar[Mapping[str, type[HTTPConnectionPool]]] = {"http": _PrivateHTTPPool, "https": _PrivateHTTPSPool}


def session(*, allow_private: bool) -> requests.Session:
    """A requests session for calls to configured URLs: public addresses only unless ``allow_private``,
    and never plain http:// to a public address."""
    made = requests.Session()
    adapter = ReceiverAdapter() if allow_private else PublicOnlyAdapter()
    made.mount("http://", adapter)
    made.mount("https://", adapter)
    return made
