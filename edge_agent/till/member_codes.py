"""Member codes at the till: verified offline with central's public key, each accepted once, chain-wide where known.

What the agent holds: central's member-code public keys and revocation list (downlink document
``member_codes``), the codes other stores accepted recently (document ``member_codes_used``), and
its own replay cache, all in ``till.sqlite``. None of it can make a code: the keys are public and
the caches hold only :func:`shared.member_code.code_digest` values, never a code that could be shown
again. A store with no keys yet (freshly enrolled) keeps a code that reads as a member code as
``unverified``, with the code itself sealed in the outbox for central to check with its own key
(decision 0038), and notes it in the replay cache like an accepted one. The replay cache is a
table in SQLite (WAL, ``synchronous=FULL``), so a code accepted just before a power cut is still
refused after it.

A code accepted here and then shown at another store within its few steps of validity is refused
there only if that store has fetched central's ``member_codes_used`` since this store synced;
otherwise central sees the second use at sync and flags it (docs/decisions/0038-member-codes.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edge_agent.till.storage import DB_FILE, open_till_db
from shared.crypto import unb64
from shared.member_code import (
    OTHER_STORE_REPLAYED,
    REPLAYED,
    SKEW_STEPS,
    STEP_SECONDS,
    UNKNOWN,
    UNVERIFIED,
    Verdict,
    check,
    key_id,
    unchecked,
)

KEYS_DOCUMENT = "member_codes"
USED_DOCUMENT = "member_codes_used"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS member_codes_seen (
    digest TEXT PRIMARY KEY,
    store_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS member_codes_seen_step ON member_codes_seen (step);
"""


class MemberCodeKeys:
    """Central's public keys by key id, the revocation list, and the step rules, from the downlink."""

    def __init__(self, body: Any) -> None:
        body = body if isinstance(body, dict) else {}
        self.keys: dict[bytes, bytes] = {}
        for text in body.get("keys", []):
            try:
                raw = unb64(str(text))
            except ValueError:
                continue
            if len(raw) == 32:
                self.keys[key_id(raw)] = raw
        self.revoked = frozenset(str(r) for r in body.get("revoked", []))
        self.step_seconds = _int(body.get("step_seconds"), STEP_SECONDS, 5, 600)
        self.skew_steps = _int(body.get("skew_steps"), SKEW_STEPS, 0, 5)


def _int(value: Any, default: int, low: int, high: int) -> int:
    return value if type(value) is int and low <= value <= high else default


class MemberCodeVerifier:
    """Verifies scanned member codes for one store and remembers each accepted code."""

    def __init__(
        self, directory: Path, store_id: str, *, clock: Callable[[], float] = time.time, keys: Any = None
    ) -> None:
        self.store_id = store_id
        self.clock = clock
        self.keys = MemberCodeKeys(keys)
        self.path = directory / DB_FILE
        self._conn = open_till_db(directory, _SCHEMA)
        # Files written before the replay cache stopped keeping member ids (till.sqlite is not sealed).
        self._conn.execute("UPDATE member_codes_seen SET member_id = '' WHERE member_id <> ''")

    def close(self) -> None:
        self._conn.close()

    def update(self, documents: Mapping[str, Any]) -> None:
        """Take the ``member_codes`` and ``member_codes_used`` documents in force (from DownlinkStore)."""
        self.keys = MemberCodeKeys(documents.get(KEYS_DOCUMENT))
        used = documents.get(USED_DOCUMENT)
        rows = []
        for entry in used.get("used", []) if isinstance(used, dict) else []:
            if isinstance(entry, dict) and isinstance(entry.get("digest"), str) and isinstance(entry.get("store"), str):
                step = entry.get("step") if type(entry.get("step")) is int else 0
                rows.append((entry["digest"][:64], entry["store"][:32], "", step))
        if rows:
            self._conn.executemany(
                "INSERT OR IGNORE INTO member_codes_seen (digest, store_id, member_id, step, seen_at)"
                " VALUES (?, ?, ?, ?, 0)",
                rows,
            )

    def verify(self, text: str) -> Verdict:
        """Accept a code once (and remember it), or refuse it with one of shared.member_code.REASONS."""
        now = self.clock()
        if not self.keys.keys:
            # Kept for central to check with its own key, so the member's sale can still be linked.
            verdict = unchecked(text)
            if verdict.reason != UNVERIFIED:
                detail = "this store has no member-code keys from central yet (downlink document member_codes)"
                return Verdict(UNKNOWN, detail)
            return self._remember(verdict, now)
        verdict = check(
            text,
            self.keys.keys,
            now=now,
            revoked=self.keys.revoked,
            step_seconds=self.keys.step_seconds,
            skew_steps=self.keys.skew_steps,
        )
        if not verdict.accepted:
            return verdict
        return self._remember(verdict, now)

    def _remember(self, verdict: Verdict, now: float) -> Verdict:
        """Note the code as used here; a code already noted is a replay."""
        assert verdict.digest is not None and verdict.member_id is not None and verdict.step is not None
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO member_codes_seen (digest, store_id, member_id, step, seen_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (verdict.digest, self.store_id, "", verdict.step, now),  # the member id is not needed to refuse a replay
        )
        if cursor.rowcount == 1:
            self._prune(int(now // self.keys.step_seconds))
            return verdict
        (store,) = self._conn.execute(
            "SELECT store_id FROM member_codes_seen WHERE digest = ?", (verdict.digest,)
        ).fetchone()
        if store == self.store_id:
            return Verdict(REPLAYED, "this code was already used at this store", **_same(verdict))
        return Verdict(OTHER_STORE_REPLAYED, f"this code was already used at store {store}", **_same(verdict))

    def _prune(self, current_step: int) -> None:
        # A code older than the skew window is refused as expired anyway; keep a margin for clock steps.
        horizon = current_step - 4 * (self.keys.skew_steps + 1)
        self._conn.execute("DELETE FROM member_codes_seen WHERE step < ? AND step > 0", (horizon,))

    def seen_count(self) -> int:
        """How many codes the replay cache holds (for health and tests)."""
        return int(self._conn.execute("SELECT count(*) FROM member_codes_seen").fetchone()[0])


def _same(verdict: Verdict) -> dict[str, Any]:
    return {
        "member_id": verdict.member_id,
        "step": verdict.step,
        "fingerprint": verdict.fingerprint,
        "digest": verdict.digest,
    }
