"""The real client behind a reverse proxy: ``X-Forwarded-For`` / ``-Proto`` from trusted proxies only.

``forwarded_allow_ips`` (the Gunicorn setting of the same name, comma-separated addresses
or networks, ``*`` for any) lists the proxies we trust. For a request whose peer is one
of them, the client is the right-most ``X-Forwarded-For`` hop that is *not* a trusted
proxy (each proxy appends the address it saw, so hops left of an untrusted one are
whatever the client claimed), and ``X-Forwarded-Proto`` sets the scheme. From anyone
else the headers are ignored. ``REMOTE_ADDR`` is rewritten in place, so the access log,
the audit log, the rate limiter and ``metrics_allow`` all see the real client (issue 10).
Werkzeug's ``ProxyFix`` trusts a fixed number of hops from *any* peer, which would let
every direct client pick its own address; this checks the peer first.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Callable, Iterable

__all__ = ["TrustedProxies", "parse_networks"]

PEER_KEY = "pypi_repo.proxy_peer"  # the proxy's own address, kept in the environ

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[bool, list[Network]]:
    """``(trust_all, networks)`` from a ``forwarded_allow_ips`` value; bad items are skipped."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    networks = []
    for item in items:
        if item == "*":
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue  # a host name: Gunicorn does not resolve them either
    return "*" in items, networks


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:1234"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # "::ffff:127.0.0.1" on a dual-stack socket
    return mapped or address


class TrustedProxies:
    """WSGI middleware: rewrite ``REMOTE_ADDR`` and the scheme for trusted proxies only."""

    def __init__(self, app: Callable, spec: str) -> None:
        self.app = app
        self.trust_all, self.networks = parse_networks(spec)

    def trusted(self, address: Any) -> bool:
        if address is None:
            return False
        return self.trust_all or any(address in net for net in self.networks)

    def client_of(self, peer: str, forwarded_for: str) -> str:
        """The client address for a request from a trusted ``peer``."""
        client = peer
        for hop in reversed(forwarded_for.split(",")):
            address = _address(hop)
            if address is None:
                break  # garbage: keep the last address a trusted proxy vouched for
            client = str(address)
            if not self.trusted(address):
                break
        return client

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        peer = environ.get("REMOTE_ADDR") or ""
        if (self.trust_all or self.networks) and self.trusted(_address(peer)):
            forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
            if forwarded_for:
                environ[PEER_KEY] = peer
                environ["REMOTE_ADDR"] = self.client_of(peer, forwarded_for)
            proto = environ.get("HTTP_X_FORWARDED_PROTO")
            if proto:
                scheme = proto.split(",")[-1].strip().lower()
                if scheme in ("http", "https"):
                    environ["wsgi.url_scheme"] = scheme
        return self.app(environ, start_response)
