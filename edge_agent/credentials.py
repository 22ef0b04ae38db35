"""The device's credentials from enrollment: its id, its store, central's URL and its signing key.

Kept in one JSON file with mode 0600 beside the outbox key. The private key never leaves the
store PC; central holds only the public half.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shared.crypto import KeyFileError, b64, read_secret_file, unb64, write_secret_file


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
