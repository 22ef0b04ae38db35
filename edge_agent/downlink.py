"""The agent's copy of what central publishes to its store: verified, applied atomically, kept offline.

Central's batch reply names the store's current downlink version; when it is not the version the
agent runs, :meth:`DownlinkStore.maybe_fetch` asks ``GET /api/v1/downlink?since=V`` (a signed
request), checks every document's signature with central's downlink key (from enrollment, see
:func:`remember_central_key`), and only if all of them verify writes the new set to
``downlink.json`` (temporary file, fsync, rename, fsync of the directory). A tampered or foreign
document is refused as a whole and the last good set stays in force, across restarts too; the file
is verified again when it is read back.

Documents are named slots: ``settings`` holds setting overrides (``{"sync.interval": 5}``) that
:meth:`DownlinkStore.settings_overrides` hands to the configuration loader; the member-code keys,
coupons, location-consent and suppression lists of later releases use other names.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import orjson

from edge_agent.transport import Response, TransportError
from shared.crypto import RequestSigner, b64, document_message, unb64, verify
from shared.wire import timestamp as wire_timestamp

log = logging.getLogger(__name__)

DOWNLINK_PATH = "/api/v1/downlink"
STATE_FILE = "downlink.json"
KEY_FILE = "central-downlink.key"
FORMAT = 1


class DownlinkError(Exception):
    """A fetch that failed or an answer that was refused; the last good documents stay in force."""


class Getter(Protocol):
    """What fetching needs from the transport: a GET with headers."""

    def get(self, path: str, timeout: float, headers: dict[str, str] | None = None) -> Response: ...


def remember_central_key(directory: Path, enroll_reply: dict[str, Any]) -> None:
    """Keep central's downlink key from the enrollment reply (``central_key``), if it sent one."""
    key = enroll_reply.get("central_key")
    if isinstance(key, str) and len(_raw_key(key) or b"") == 32:
        _write_atomically(directory / KEY_FILE, key.encode("ascii") + b"\n")


def _raw_key(text: str) -> bytes | None:
    try:
        return unb64(text.strip())
    except ValueError:
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class DownlinkStore:
    """The documents this store runs, their combined version, and how to bring them up to date."""

    def __init__(self, directory: Path, store_id: str, *, central_key: bytes | None = None) -> None:
        self.directory = directory
        self.store_id = store_id
        self.path = directory / STATE_FILE
        self._key = central_key if central_key is not None else self._stored_key()
        self.version = 0
        self._documents: dict[str, dict[str, Any]] = {}
        self._load()

    def _stored_key(self) -> bytes | None:
        try:
            return _raw_key((self.directory / KEY_FILE).read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError):
            return None

    def _load(self) -> None:
        try:
            state = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self._set_aside(f"unreadable ({exc})")
            return
        try:
            if state.get("format") != FORMAT or state.get("store_id") != self.store_id:
                raise DownlinkError("written for another store or by another release")
            documents = state["documents"]
            for name, doc in documents.items():
                self._check(name, doc)
            self.version = int(state["version"])
            self._documents = documents
        except (DownlinkError, KeyError, TypeError, ValueError, AttributeError) as exc:
            self._set_aside(str(exc))

    def _set_aside(self, why: str) -> None:
        # Kept for inspection; the agent starts from nothing and fetches everything again.
        log.error("%s is not a valid downlink file (%s); moved aside, fetching again from central", self.path, why)
        os.replace(self.path, self.path.with_name(STATE_FILE + ".bad"))

    def _check(self, name: str, doc: dict[str, Any]) -> None:
        if self._key is None:
            raise DownlinkError("central's downlink key is unknown (enroll again, or remember it from enrollment)")
        signature = _raw_key(str(doc.get("signature", ""))) or b""
        version = doc.get("version")
        if type(version) is not int:
            raise DownlinkError(f"document {name}: no version")
        if not verify(self._key, document_message(self.store_id, name, version, doc.get("body")), signature):
            raise DownlinkError(f"document {name} version {version}: the signature does not verify with central's key")

    def document(self, name: str) -> Any:
        """The body of document ``name``, or None if central publishes none to this store."""
        doc = self._documents.get(name)
        return None if doc is None else doc["body"]

    def names(self) -> list[str]:
        """The names of the documents in force."""
        return sorted(self._documents)

    def settings_overrides(self) -> dict[str, Any]:
        """The ``settings`` document as overrides for the configuration loader (empty if none)."""
        body = self.document("settings")
        return dict(body) if isinstance(body, dict) else {}

    def apply(self, answer: dict[str, Any], *, full: bool = False) -> None:
        """Verify every document of a fetch answer, then write the new set atomically; raise if any fails.

        ``full`` (an answer to ``since=0``) replaces the whole set instead of updating it.
        """
        if answer.get("store_id") != self.store_id:
            raise DownlinkError(f"the answer is for store {answer.get('store_id')!r}, not {self.store_id}")
        if self._key is None and isinstance(answer.get("key"), str):
            # An agent enrolled before central published its key trusts the first one it sees.
            self._key = _raw_key(answer["key"])
            if self._key is not None and len(self._key) == 32:
                log.warning("central's downlink key was not known from enrollment; trusting the one central sent")
                remember_central_key(self.directory, {"central_key": answer["key"]})
        version = answer.get("version")
        documents = answer.get("documents")
        if type(version) is not int or not isinstance(documents, list):
            raise DownlinkError("central's downlink answer is not understood")
        updated = {} if full else dict(self._documents)
        for doc in documents:
            name = doc.get("name") if isinstance(doc, dict) else None
            if not isinstance(name, str):
                raise DownlinkError("central's downlink answer has a document without a name")
            self._check(name, doc)
            if doc.get("body") is None:
                updated.pop(name, None)
            else:
                updated[name] = {"version": doc["version"], "body": doc["body"], "signature": doc["signature"]}
        state = {"format": FORMAT, "store_id": self.store_id, "version": version, "documents": updated}
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.path, json.dumps(state, ensure_ascii=False).encode("utf-8"))
        self.version, self._documents = version, updated
        log.info("downlink version %d applied (%s)", version, ", ".join(sorted(updated)) or "no documents")

    def maybe_fetch(
        self,
        transport: Getter,
        signer: RequestSigner,
        reply_version: int | None,
        *,
        timestamp: Callable[[], str] = wire_timestamp,
        timeout: float = 30.0,
        everything: bool = False,
    ) -> bool:
        """Fetch and apply what changed if central's reply names another version; True if something was applied.

        A lower version than the one in force (central restored from a backup) fetches everything
        again and replaces the set, and so does ``everything`` (the agent learnt of a restore from the
        events central asked for again): after a restore, central may have published other documents
        under versions this agent already ran, even past its own, and a fetch of what is newer would
        miss them. A set with lower versions is still central's, signed with its key.
        Raises DownlinkError when the fetch fails or is refused.
        """
        if reply_version is None or (reply_version == self.version and not everything):
            return False
        full = everything or reply_version < self.version
        path = f"{DOWNLINK_PATH}?since={0 if full else self.version}"
        headers = signer.headers("GET", path, timestamp(), b"")
        try:
            response = transport.get(path, timeout, headers=headers)
        except TransportError as exc:
            raise DownlinkError(f"cannot fetch the downlink: {exc}") from None
        if response.status != 200:
            detail = response.body[:200].decode("utf-8", "replace")
            raise DownlinkError(f"central answered {response.status} to the downlink fetch: {detail}")
        try:
            answer = orjson.loads(response.body)
        except ValueError:
            raise DownlinkError("central's downlink answer is not JSON") from None
        if not isinstance(answer, dict):
            raise DownlinkError("central's downlink answer is not understood")
        self.apply(answer, full=full)
        return True

    def key_b64(self) -> str | None:
        """Central's downlink key in force, base64 (for `doctor`)."""
        return None if self._key is None else b64(self._key)
