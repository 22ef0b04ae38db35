"""How the agent trusts central's TLS certificate, and what it says when that trust fails.

Three ways, in order of preference at a store: the system's CA store (central has a public
certificate), a CA file HQ hands out (``sync.ca_file``: HQ runs its own CA), or the SHA-256
fingerprint of central's certificate (``sync.tls_fingerprint``: a self-signed certificate; the
fingerprint replaces the CA check, and the certificate must then match it exactly).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from requests.adapters import HTTPAdapter

_HEX = re.compile(r"^[0-9a-f]{64}\Z")
_GOT = re.compile(r'got "([0-9a-f]+)"')


class TlsSettingError(ValueError):
    """``sync.ca_file`` or ``sync.tls_fingerprint`` cannot be used; the message names the setting."""


def parse_fingerprint(text: str) -> str:
    """A SHA-256 certificate fingerprint as 64 lowercase hex digits; accepts ``AB:CD:...`` as openssl prints it."""
    # openssl x509 -fingerprint prints "sha256 Fingerprint=AB:CD:..."; keep what follows the "=".
    cleaned = re.sub(r"[\s:]", "", text).lower().rsplit("=", 1)[-1]
    if not _HEX.match(cleaned):
        raise TlsSettingError(
            f"sync.tls_fingerprint {text!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed); "
            "print it with `openssl x509 -in cert.pem -noout -fingerprint -sha256`"
        )
    return cleaned


@dataclass(frozen=True, slots=True)
class TlsTrust:
    """What this agent trusts for central's certificate."""

    ca_file: str = ""
    fingerprint: str = ""

    @classmethod
    def from_settings(cls, ca_file: str, fingerprint: str) -> TlsTrust:
        """Validate the two settings; raise TlsSettingError with the setting's name."""
        if ca_file:
            path = Path(ca_file)
            if not path.is_file():
                raise TlsSettingError(f"sync.ca_file {ca_file} does not exist (copy HQ's CA certificate there)")
            try:
                text = path.read_text(errors="replace")
            except OSError as exc:
                raise TlsSettingError(f"sync.ca_file {ca_file} cannot be read: {exc.strerror}") from None
            if "-----BEGIN CERTIFICATE-----" not in text:
                raise TlsSettingError(f"sync.ca_file {ca_file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        return cls(ca_file=ca_file, fingerprint=parse_fingerprint(fingerprint) if fingerprint else "")

    @property
    def verify(self) -> bool | str:
        """requests' ``verify`` argument; passed on every request so REQUESTS_CA_BUNDLE cannot override it."""
        if self.fingerprint:
            return False  # the pinned fingerprint is the check (see PinnedAdapter)
        return self.ca_file or True

    def describe(self) -> str:
        """What is trusted, in words (for doctor and logs)."""
        if self.fingerprint:
            return f"certificate pinned by SHA-256 fingerprint {self.fingerprint[:16]}..."
        if self.ca_file:
            return f"certificates signed by the CA in {self.ca_file}"
        return "certificates signed by a CA in the system's store"

    def explain(self, message: str, host: str) -> str | None:
        """A readable reason for a TLS failure from urllib3/OpenSSL's ``message``, or None if it is not one."""
        if "Fingerprints did not match" in message:
            got = _GOT.search(message)
            return (
                f"central's certificate at {host} does not match sync.tls_fingerprint (fingerprint mismatch): "
                f"expected {self.fingerprint}, got {got.group(1) if got else 'another certificate'}"
            )
        if "mismatch, certificate is not valid for" in message or "Hostname mismatch" in message:
            return (
                f"central's certificate is not valid for {host}: use the name written on the certificate in "
                "the URL, or have HQ issue a certificate for this name"
            )
        if "certificate has expired" in message:
            return f"central's certificate at {host} has expired (or this PC's date is wrong: check it with `date`)"
        if "certificate is not yet valid" in message:
            return f"central's certificate at {host} is not valid yet: this PC's date is probably wrong (`date`)"
        if "CERTIFICATE_VERIFY_FAILED" in message:
            if self.ca_file:
                return f"central's certificate at {host} is not signed by the CA in {self.ca_file}"
            return (
                f"central's certificate at {host} is not signed by a CA this PC trusts: set sync.ca_file to "
                "HQ's CA certificate, or sync.tls_fingerprint to the certificate's SHA-256 fingerprint"
            )
        if "WRONG_VERSION_NUMBER" in message or "wrong version number" in message or "record layer" in message:
            return plain_http_message(host)
        if "SSL" in message or "TLS" in message:
            return f"the TLS handshake with central at {host} failed ({_innermost(message)})"
        return None


def plain_http_message(host: str) -> str:
    """What to say when an https:// URL reaches a server that speaks plain HTTP."""
    return (
        f"central at {host} speaks plain HTTP, not TLS: use http://{host}, or the address of the TLS proxy "
        "(nginx) in front of central"
    )


def _innermost(message: str) -> str:
    """OpenSSL's reason inside requests' layers of wrapping: "[SSL: X] reason (_ssl.c:1006)" -> "reason"."""
    match = re.search(r"\] ([^(\]]+?) \(_ssl", message)
    return match.group(1) if match else message[-160:]


class PinnedAdapter(HTTPAdapter):
    """Checks central's certificate against a pinned SHA-256 fingerprint (urllib3's ``assert_fingerprint``)."""

    def __init__(self, fingerprint: str) -> None:
        self._fingerprint = fingerprint
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(*args, **kwargs)
