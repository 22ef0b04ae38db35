"""Central's URL as a technician writes it (``edge-agent enroll --central``, ``sync.central_url``), checked.

Kept apart from the transport so that reading the agent's configuration can check it without
importing an HTTP client.
"""

from __future__ import annotations

from urllib.parse import urlsplit


class CentralUrlError(ValueError):
    """Central's URL cannot be used as given; the message says how to write it."""


def check_central_url(url: str) -> str:
    """``url`` without a trailing slash if it can reach central; raise CentralUrlError saying how to fix it."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        if "://" not in text:
            raise CentralUrlError(
                f"central's URL {text!r} lacks http:// or https:// (for example https://{text.rstrip('/')})"
            )
        raise CentralUrlError(f"central's URL {text!r} must start with http:// or https://, not {parts.scheme}://")
    if parts.username is not None or parts.password is not None:
        # Said without the URL: what it carries is a secret, and this message goes to logs.
        host = parts.hostname or "the host"
        raise CentralUrlError(
            f"central's URL must not carry a user name or password (before the @ in front of {host}):"
            " agents sign every request with their device key"
        )
    if not parts.hostname:
        raise CentralUrlError(f"central's URL {text!r} names no host (for example https://cdp.example.com)")
    try:
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number or out of range)
    except ValueError:
        raise CentralUrlError(f"central's URL {text!r} has an invalid port") from None
    if parts.query or parts.fragment:
        raise CentralUrlError(f"central's URL {text!r} must not have a query or fragment (just scheme, host, port)")
    return text.rstrip("/")
