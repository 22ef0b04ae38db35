"""The member app's side of member codes, as ``central-server member-code`` plays it for demos and tests.

A real app makes its key pair on the phone and sends central only the public half to certify.
This stand-in does the same on central's machine and keeps the app's private key, certificate and
beacon root (shared.member_beacon) in ``<data dir>/member-app/`` (mode 0600), apart from central's
database, which never holds a member's private key.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import segno
from sqlalchemy.orm import Session

from central.members.codes import certify
from central.presence import beacons
from shared import member_beacon
from shared.crypto import b64, new_signing_key, read_secret_file, unb64, write_secret_file
from shared.member_code import Certificate, decode_certificate, fingerprint, make_code

WALLET_DIR = "member-app"


def _path(data_dir: Path, member_id: str) -> Path:
    return data_dir / WALLET_DIR / (hashlib.sha256(member_id.encode("utf-8")).hexdigest()[:24] + ".json")


def _load(path: Path) -> tuple[bytes, Certificate] | None:
    if not path.exists():
        return None
    doc = json.loads(read_secret_file(path))
    return unb64(doc["private_key"]), decode_certificate(unb64(doc["certificate"]))


def member_code(
    db: Session, secret: bytes, data_dir: Path, member_id: str, *, now: datetime, days: float, actor: str
) -> str:
    """The code the member's app shows at ``now``; certifies a new app key first when needed."""
    path = _path(data_dir, member_id)
    held = _load(path)
    if held is None or held[1].valid_until < now.timestamp() + 60:
        private, public = new_signing_key()
        cert = certify(db, secret, member_id, public, now=now, days=days, actor=actor)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        doc = {
            "member_id": member_id,
            "private_key": b64(private),
            "certificate": b64(cert.encode()),
            # Handed to the app with its certificate: what its rotating beacon ids come from.
            "beacon_root": b64(beacons.beacon_root(secret, fingerprint(public))),
        }
        if path.exists():
            path.unlink()
        write_secret_file(path, json.dumps(doc).encode())
        held = (private, cert)
    return make_code(held[1], held[0], now.timestamp())


def beacon_id(data_dir: Path, member_id: str, at: float) -> bytes | None:
    """The rotating id the member's app advertises at ``at`` (None before its first certificate)."""
    path = _path(data_dir, member_id)
    if not path.exists():
        return None
    root = json.loads(read_secret_file(path)).get("beacon_root")
    return None if root is None else member_beacon.advertised_id(unb64(root), at)


def write_png(code: str, path: Path) -> None:
    """A QR image of the code (segno: alphanumeric mode, error correction M), 4 pixels a module."""
    segno.make_qr(code, error="m").save(str(path), scale=4, border=4)
