"""The outbox: an encrypted SQLite queue of events waiting for central, and the quarantine.

SQLite in WAL mode with ``synchronous=FULL``: a committed event survives a power cut. Every payload
and every quarantined byte is sealed with AES-256-GCM before it is written, so the database, its
WAL and its shared-memory file hold no customer data in clear. Only what the queue needs in order
to work stays readable: the event id, the sequence number, the kind and the delivery state.

Rows are never deleted until central has answered for them: acknowledged rows are marked
delivered and kept ``keep_delivered_hours`` for resync; rejected rows are kept with their reason.
The one exception is shedding under quota or disk pressure (outbox_policy.py), which deletes only
presence data and heartbeats and reports what it deleted in an ``agent.gap`` event.

A sealed canary in ``meta`` tells which key the store is sealed under, so a wrong key file is
refused at start instead of turning every row unreadable.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag

from edge_agent.records import Capture, Pending, Quarantined, QuarantineRow, Record, Stats
from shared import ids
from shared.crypto import KEY_BYTES, KeyFileError, Sealer
from shared.ids import uuid7_time
from shared.wire import event_body

log = logging.getLogger(__name__)

PENDING, DELIVERED, REJECTED = 0, 1, 2

_MIGRATIONS = [
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,        -- per-device sequence, assigned before the first write
        event_id TEXT NOT NULL,         -- UUIDv7 (unique by construction), central's dedupe key
        kind TEXT NOT NULL,
        state INTEGER NOT NULL DEFAULT 0,
        state_at REAL,
        reason TEXT,
        sealed BLOB NOT NULL
    );
    CREATE INDEX events_settled ON events(state, state_at) WHERE state <> 0;
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        received_at REAL NOT NULL,
        sealed BLOB NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # What quota and disk-pressure shedding may delete (see outbox_policy.SHED_CLASSES); sales never
    # match, so the hot path pays only for evaluating the condition.
    """
    CREATE INDEX events_sheddable ON events(seq)
        WHERE state = 0 AND (kind GLOB 'presence.*' OR kind = 'agent.heartbeat');
    CREATE TABLE secrets (name TEXT PRIMARY KEY, sealed BLOB NOT NULL);
    """,
]

KEY_CHECK = b"outbox key check"
# Page cache of each thread's connection, in KiB. The agent holds about five connections (one per
# thread that uses the outbox), and SQLite's default of 2,000 KiB each filled up while a backlog
# drained: the agent's resident memory rose from about 50 to 66 MB, over its 60 MB budget.
# Every write appends (keys are sequence numbers and times) and reads walk the backlog in order, so
# a small cache holds the pages in use (docs/benchmarks.md, "Agent memory while draining").
CACHE_KIB = 512
UNREADABLE_SOURCE = "outbox"
__all__ = ["Capture", "Outbox", "OutboxKeyError", "Pending", "QuarantineRow", "Quarantined", "Record", "Stats"]


class OutboxKeyError(KeyFileError):
    """The outbox was sealed under another key than the one the agent was given."""


class Outbox:
    """The agent's durable queue. Each thread gets its own connection; one writer appends."""

    def __init__(
        self,
        path: Path,
        sealer: Sealer,
        store_id: str,
        *,
        clock: Callable[[], float] = time.time,
        id_source: ids.UUID7 = ids.new_id,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self.store_id = store_id
        self._sealer = sealer
        self._clock = clock
        self._ids = id_source
        self._pending_from: int | None = None  # lowest seq that may be pending; sync thread only
        self._local = threading.local()
        self._migrate()
        self._check_key()
        self._next_seq = self._load_next_seq()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_timeout)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            # Freed pages are zeroed, so deleted sealed blobs do not linger in the file.
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            self.path.chmod(0o600)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _migrate(self) -> None:
        conn = self._conn()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (for the policy and key-rotation modules)."""
        return self._conn()

    @property
    def sealer(self) -> Sealer:
        return self._sealer

    def _check_key(self) -> None:
        """Refuse a key that does not open the canary; write the canary on a store that has none."""
        conn = self._conn()
        row = conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        if row is not None:
            try:
                self._sealer.open(bytes.fromhex(row[0]), b"key_check")
                return
            except (InvalidTag, ValueError):
                raise OutboxKeyError(
                    f"{self.path} is sealed under a different key than the one given "
                    "(outbox.key or the systemd credential): restore outbox.key from the backup taken with this outbox"
                ) from None
        sample = conn.execute("SELECT event_id, sealed FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        if sample is not None:
            try:
                self._sealer.open(sample[1], sample[0].encode())
            except InvalidTag:
                raise OutboxKeyError(f"{self.path}: its newest event does not open with this key") from None
        canary = self._sealer.seal(KEY_CHECK, b"key_check").hex()
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('key_check', ?)", (canary,))

    def secret(self, name: str, default: bytes) -> bytes:
        """A secret kept sealed in the outbox (e.g. the card-hash key), so it survives key rotation.

        The first call stores ``default``; later calls, and later processes, get the stored value.
        """
        conn = self._conn()
        aad = b"secret:" + name.encode()
        row = conn.execute("SELECT sealed FROM secrets WHERE name = ?", (name,)).fetchone()
        if row is None:
            conn.execute(
                "INSERT OR IGNORE INTO secrets (name, sealed) VALUES (?, ?)", (name, self._sealer.seal(default, aad))
            )
            row = conn.execute("SELECT sealed FROM secrets WHERE name = ?", (name,)).fetchone()
        value = self._sealer.open(row[0], aad)
        if len(value) != KEY_BYTES:
            raise OutboxKeyError(f"{self.path}: secret {name!r} is malformed")
        return value

    def _load_next_seq(self) -> int:
        conn = self._conn()
        row = conn.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
        stored = int(row[0]) if row else 1
        highest = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        return max(stored, highest + 1)

    # --- writer side -------------------------------------------------------------------------

    def append(
        self,
        records: Sequence[Record],
        *,
        discard: Sequence[int] = (),
        count: dict[str, int] | None = None,
        release: Sequence[int] = (),
    ) -> dict[str, int]:
        """Write ``records`` in one transaction; return the stream offsets it committed per source.

        Only the writer thread calls this. The sequence counter and the journal offsets move in the
        same transaction as the rows, so a crash leaves them consistent. ``discard`` deletes rows and
        ``count`` adds to counters in the same transaction (shedding, with the gap event reporting it);
        ``release`` deletes quarantine rows whose input the records now stand for (``edge-agent reparse``).
        """
        conn = self._conn()
        captures = [r for r in records if isinstance(r, Capture)]
        first = self._next_seq
        store_id = self.store_id
        event_ids = self._ids.many(len(captures))
        sealed = self._sealer.seal_many(
            [
                (event_body(c.observed_at, store_id, c.payload_json), e.encode())
                for c, e in zip(captures, event_ids, strict=True)
            ]
        )
        seq = first + len(captures)
        events = list(zip(range(first, seq), event_ids, [c.kind for c in captures], sealed, strict=True))
        quarantined = [
            (r.source, r.reason, r.received_at, self._sealer.seal(r.raw, b"quarantine:" + r.source.encode()))
            for r in records
            if isinstance(r, Quarantined)
        ]
        # Offsets only grow within a source, so the last record of each source carries its offset.
        offsets = {r.source: r.offset for r in records if r.source is not None and r.offset is not None}
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT INTO events (seq, event_id, kind, sealed) VALUES (?, ?, ?, ?)", events)
            conn.executemany(
                "INSERT INTO quarantine (source, reason, received_at, sealed) VALUES (?, ?, ?, ?)",
                quarantined,
            )
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_seq', ?)", (str(seq),))
            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(f"offset:{source}", str(offset)) for source, offset in offsets.items()],
            )
            if discard:
                conn.executemany("DELETE FROM events WHERE seq = ?", [(n,) for n in discard])
            if count:
                add_counts(conn, count)
            if release:
                conn.executemany("DELETE FROM quarantine WHERE id = ?", [(n,) for n in release])
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self._next_seq = seq
        return offsets

    def committed_offset(self, source: str) -> int:
        """How far into ``source``'s byte stream the outbox has committed (0 if never)."""
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (f"offset:{source}",)).fetchone()
        return int(row[0]) if row else 0

    # --- sync side ---------------------------------------------------------------------------

    def pending(self, limit: int, *, after: int | None = None) -> list[Pending]:
        """The oldest ``limit`` events not yet answered for (those past seq ``after``), opened."""
        conn = self._conn()
        if after is None:
            if self._pending_from is None:
                first = conn.execute("SELECT MIN(seq) FROM events WHERE state = 0").fetchone()[0]
                self._pending_from = 0 if first is None else first
            start = self._pending_from
        else:
            start = after + 1
        # Rows below the cursor are all settled, so the scan starts there instead of needing an index
        # (an index of pending rows would tax every append, which is the agent's hot path).
        while True:
            rows = conn.execute(
                "SELECT seq, event_id, kind, sealed FROM events WHERE seq >= ? AND state = 0 ORDER BY seq LIMIT ?",
                (start, limit),
            ).fetchall()
            if rows and after is None:
                self._pending_from = rows[0][0]
            out = []
            unreadable = []
            for seq, event_id, kind, sealed in rows:
                try:
                    body = self._sealer.open(sealed, event_id.encode())
                except InvalidTag:
                    unreadable.append((seq, event_id, kind, sealed, "unreadable_event"))
                    continue
                if not (body.startswith(b'{"observed_at":') and body.endswith(b"}")):
                    unreadable.append((seq, event_id, kind, sealed, "undecodable_event"))
                    continue
                out.append(Pending(seq, event_id, kind, body))
            if unreadable:
                self._quarantine_rows(unreadable)
            # A page of nothing but bad rows must not read as "nothing pending": they are gone now, read on.
            if out or len(rows) < limit:
                return out
            start = rows[-1][0] + 1

    def _quarantine_rows(self, rows: list[tuple[int, str, str, bytes, str]]) -> None:
        """Move rows that cannot be opened or decoded to the quarantine, with the reason; count them."""
        conn = self._conn()
        now = self._clock()
        aad = b"quarantine:" + UNREADABLE_SOURCE.encode()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for seq, event_id, kind, sealed, reason in rows:
                # Keep the row as it was (its id, seq and kind, and the blob), in case the right key turns up.
                kept = orjson.dumps({"seq": seq, "event_id": event_id, "kind": kind, "sealed": sealed.hex()})
                conn.execute(
                    "INSERT INTO quarantine (source, reason, received_at, sealed) VALUES (?, ?, ?, ?)",
                    (UNREADABLE_SOURCE, reason, now, self._sealer.seal(kept, aad)),
                )
                conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
            add_counts(conn, {"unreadable_events": len(rows)})
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        log.error("%s: %d events could not be opened or decoded; moved to the quarantine", self.path, len(rows))

    def answered_through(self, seq: int) -> None:
        """Every row up to ``seq`` has been answered for: later scans for pending rows start past it."""
        if self._pending_from is not None and self._pending_from <= seq:
            self._pending_from = seq + 1

    def settle(self, delivered: Iterable[int], rejected: Iterable[tuple[int, str]]) -> None:
        """Record central's answer: delivered rows are kept for resync, rejected ones with the reason."""
        now = self._clock()
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "UPDATE events SET state = 1, state_at = ? WHERE seq = ? AND state = 0",
                [(now, seq) for seq in delivered],
            )
            conn.executemany(
                "UPDATE events SET state = 2, state_at = ?, reason = ? WHERE seq = ? AND state = 0",
                [(now, reason, seq) for seq, reason in rejected],
            )
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def ask_resend(self, first: int, before: int) -> None:
        """Remember that central lacks seqs ``first`` to ``before - 1`` (it said so in reply to a batch
        starting at ``before``), until :meth:`resend` acts on it; a restart must not forget it."""
        self._conn().execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
            "CAST(MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
            (f"resend:{first}", str(before)),
        )

    def resend_asked(self) -> list[tuple[int, int]]:
        """The gaps central asked for and :meth:`resend` has not acted on: (first seq, seq after the last)."""
        rows = self._conn().execute("SELECT key, value FROM meta WHERE key GLOB 'resend:*'").fetchall()
        return sorted((int(key[len("resend:") :]), int(value)) for key, value in rows)

    def resend(self, first: int, before: int) -> tuple[int, int]:
        """Mark the delivered rows from ``first`` up to ``before`` pending again; (rows marked, seqs not held).

        Central holds nothing of the device in that range (its highest seq below ``before`` is
        ``first - 1``), so exactly these rows go again, and none is a duplicate. A seq of the range
        the outbox holds no row for (purged after delivery, shed, set aside as unreadable) is counted
        once, however often central asks: it asks again after the resend whenever such a hole stays
        below a resent row. One UPDATE and one COUNT over the key range: nothing is read into memory.
        """
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM meta WHERE key = ?", (f"resend:{first}",))
            resent = conn.execute(
                "UPDATE events SET state = 0, state_at = NULL WHERE seq >= ? AND seq < ? AND state = 1",
                (first, before),
            ).rowcount
            row = conn.execute("SELECT value FROM meta WHERE key = 'resend_counted_through'").fetchone()
            start = max(first, int(row[0]) + 1 if row else first)
            held = conn.execute("SELECT COUNT(*) FROM events WHERE seq >= ? AND seq < ?", (start, before)).fetchone()[0]
            missing = max(0, before - start - held)
            if before - 1 >= start:
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('resend_counted_through', ?)", (str(before - 1),)
                )
            add_counts(conn, {"resent": resent, "resend_missing": missing})
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        if resent and self._pending_from is not None:
            self._pending_from = min(self._pending_from, first)
        return resent, missing

    def purge_delivered(self, older_than_seconds: float) -> int:
        """Delete delivered rows acknowledged more than ``older_than_seconds`` ago."""
        cutoff = self._clock() - older_than_seconds
        cur = self._conn().execute("DELETE FROM events WHERE state = 1 AND state_at < ?", (cutoff,))
        return cur.rowcount

    # --- inspection ----------------------------------------------------------------------------

    def stats(self) -> Stats:
        conn = self._conn()
        counts = dict(conn.execute("SELECT state, COUNT(*) FROM events GROUP BY state").fetchall())
        oldest_id = conn.execute("SELECT event_id FROM events WHERE state = 0 ORDER BY seq LIMIT 1").fetchone()
        quarantined = conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
        return Stats(
            pending=counts.get(PENDING, 0),
            delivered=counts.get(DELIVERED, 0),
            rejected=counts.get(REJECTED, 0),
            quarantined=quarantined,
            last_seq=self._load_next_seq() - 1,
            oldest_pending_at=None if oldest_id is None else uuid7_time(oldest_id[0]),
            counters=self.counters(),
        )

    def counters(self) -> dict[str, int]:
        """Running totals of what the outbox let go: ``shed:<kind>``, ``quarantine_purged``, ``unreadable_events``,
        and of resyncs central asked for: ``resent`` (rows sent again), ``resend_missing`` (seqs no longer held)."""
        rows = self._conn().execute("SELECT key, value FROM meta WHERE key GLOB 'count:*'").fetchall()
        return {key[len("count:") :]: int(value) for key, value in rows}

    def shed_count(self) -> int:
        """How many events the outbox has shed (all kinds) since it was created."""
        return sum(value for key, value in self.counters().items() if key.startswith("shed:"))

    def quarantine(self, limit: int = 100) -> list[QuarantineRow]:
        """The newest quarantined inputs, opened (``raw`` is None if a row cannot be opened)."""
        rows = (
            self._conn()
            .execute(
                "SELECT id, source, reason, received_at, sealed FROM quarantine ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [self._opened(*row) for row in rows]

    def quarantined(self, source: str, reason_prefix: str = "") -> list[QuarantineRow]:
        """Every quarantined input of ``source`` (whose reason starts with ``reason_prefix``), oldest first."""
        rows = (
            self._conn()
            .execute(
                "SELECT id, source, reason, received_at, sealed FROM quarantine"
                " WHERE source = ? AND substr(reason, 1, ?) = ? ORDER BY id",
                (source, len(reason_prefix), reason_prefix),
            )
            .fetchall()
        )
        return [self._opened(*row) for row in rows]

    def _opened(self, row_id: int, source: str, reason: str, received_at: float, sealed: bytes) -> QuarantineRow:
        try:
            raw: bytes | None = self._sealer.open(sealed, b"quarantine:" + source.encode())
        except InvalidTag:
            raw = None
        return QuarantineRow(row_id, source, reason, received_at, raw)

    def rejected(self, limit: int = 100) -> list[tuple[int, str, str, str | None]]:
        """The newest events central rejected: (seq, event_id, kind, reason)."""
        return (
            self._conn()
            .execute(
                "SELECT seq, event_id, kind, reason FROM events WHERE state = 2 ORDER BY seq DESC LIMIT ?",
                (limit,),
            )
            .fetchall()
        )

    def dead_letter_counts(self) -> dict[str, int]:
        """Events central rejected (dead letters), counted by central's reason."""
        rows = self._conn().execute("SELECT reason, COUNT(*) FROM events WHERE state = 2 GROUP BY reason").fetchall()
        return {str(reason): count for reason, count in rows}


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: SQLite ends it by itself on some errors (disk full),
    and a ROLLBACK then would raise "no transaction is active" and hide the real cause."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def add_counts(conn: sqlite3.Connection, counts: dict[str, int]) -> None:
    """Add to the running totals in meta (inside the caller's transaction)."""
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER)",
        [(f"count:{name}", str(n)) for name, n in counts.items() if n],
    )
