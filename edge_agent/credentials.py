"""The device's credentials from enrollment: its id, its store, central's URL and its signing key.

Kept in one JSON file with mode 0600 beside the outbox key. The private key never leaves the
store PC; central holds only the public half.

The outbox key (which seals everything at rest) comes from a systemd credential when the service
has one (``LoadCredentialEncrypted=outbox.key:...``, so it is stored encrypted by the host), else
from ``outbox.key`` (mode 0600) in the data directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.crypto import (
    KEY_BYTES,
    KeyFileError,
    b64,
    load_or_create_key,
    read_secret_file,
    unb64,
    write_secret_file,
)


class CredentialsError(Exception):
    """Missing or unreadable credentials."""


@dataclass(frozen=True)
class Credentials:
    device_id: str
    store_id: str
    central_url: str
    private_key: bytes

    def save(self, path: Path) -> None:
        """Write the credentials with mode 0600; refuses to overwrite an existing file."""
        doc = {
            "device_id": self.device_id,
            "store_id": self.store_id,
            "central_url": self.central_url,
            "private_key": b64(self.private_key),
        }
        write_secret_file(path, json.dumps(doc, indent=2).encode() + b"\n")

    @classmethod
    def load(cls, path: Path) -> Credentials:
        try:
            doc = json.loads(read_secret_file(path))
            return cls(
                device_id=str(doc["device_id"]),
                store_id=str(doc["store_id"]),
                central_url=str(doc["central_url"]),
                private_key=unb64(doc["private_key"]),
            )
        except KeyFileError as exc:
            if not path.exists():
                raise CredentialsError(
                    f"{path}: not enrolled yet; run `edge-agent enroll --central URL --token TOKEN`"
                ) from None
            raise CredentialsError(str(exc)) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CredentialsError(f"{path}: unreadable credentials ({exc})") from None


# --- the outbox key ------------------------------------------------------------------------------

OUTBOX_KEY_CREDENTIAL = "outbox.key"
CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"


@dataclass(frozen=True)
class KeySource:
    """Where the outbox key was read from: a systemd credential, or the 0600 file in the data directory."""

    path: Path
    from_credential: bool


def outbox_key_source(key_path: Path, environ: Mapping[str, str] | None = None) -> KeySource:
    """``$CREDENTIALS_DIRECTORY/outbox.key`` when systemd provides it (``LoadCredentialEncrypted=``),
    else ``key_path`` (the 0600 file, created on first use)."""
    environ = os.environ if environ is None else environ
    directory = environ.get(CREDENTIALS_DIRECTORY)
    if directory:
        candidate = Path(directory) / OUTBOX_KEY_CREDENTIAL
        if candidate.exists():
            return KeySource(candidate, from_credential=True)
    return KeySource(key_path, from_credential=False)


def load_outbox_key(key_path: Path, environ: Mapping[str, str] | None = None) -> tuple[bytes, KeySource]:
    """The outbox key and where it came from; the file is created on first use, a credential never is."""
    source = outbox_key_source(key_path, environ)
    if not source.from_credential:
        return load_or_create_key(source.path), source
    key = read_secret_file(source.path)
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{source.path}: expected a {KEY_BYTES}-byte key, found {len(key)} bytes")
    return key, source
