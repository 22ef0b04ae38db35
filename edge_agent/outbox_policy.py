"""What the outbox may let go, and in what order, when it is over quota or the disk is full.

Sales (``pos.*``), scans (``scan.*``), identity events and gap reports are never shed. Under
pressure the outbox first gives up delivered rows it was keeping for resync (they are safe at
central), then sheds presence data (``presence.*``), then heartbeats, each oldest first. Every shed
row is counted and reported to central, in the same transaction, by an ``agent.gap`` event:
``{"reason": "disk_pressure" | "quota", "shed": {kind: count}, "from_seq": int, "to_seq": int}``.

Three triggers, all checked by the writer thread between groups (writer.py):
* **age quota**: presence data and heartbeats still unsent after ``outbox.max_age_hours``;
* **byte quota**: rows taking more than ``outbox.max_bytes`` (shed down to 90 % of it);
* **disk pressure**: while the disk is full (diskspace.py), keep ``room_bytes`` of free pages
  inside the database so new sales can be committed without the file growing.

Candidates are read in pages of ``page_rows``, so memory stays flat however large the backlog.
The quarantine is bounded too, by row count and age, oldest first (the number purged is counted).
See docs/decisions/0010-outbox-priority-and-shedding.md.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_agent.config import AgentConfig
from edge_agent.diskspace import SpaceReserve
from edge_agent.outbox import DELIVERED, Capture, Outbox, add_counts
from shared.wire import timestamp

log = logging.getLogger(__name__)

# Shed first to last; the conditions repeat the partial index events_sheddable (outbox.py) word for word.
SHEDDABLE = "(kind GLOB 'presence.*' OR kind = 'agent.heartbeat')"
SHED_CLASSES = ("kind GLOB 'presence.*'", "kind = 'agent.heartbeat'")
ROW_OVERHEAD = 48  # bytes a row takes beyond its sealed blob (key, id, kind, state, b-tree cell)
QUOTA_TARGET = 0.9


@dataclass(frozen=True)
class OutboxPolicy:
    """Quotas and bounds; the agent builds it from ``outbox.*`` and ``quarantine.*`` settings."""

    max_bytes: int = 1024**3
    max_age_seconds: float = 7 * 24 * 3600.0
    room_bytes: int = 8 * 1024 * 1024
    quarantine_max_rows: int = 10_000
    quarantine_max_age_seconds: float = 30 * 24 * 3600.0
    page_rows: int = 1000


def is_sheddable(kind: str) -> bool:
    """True for the kinds shedding may delete (the same rule as SHEDDABLE)."""
    return kind.startswith("presence.") or kind == "agent.heartbeat"


class OutboxHousekeeper:
    """Applies an OutboxPolicy to one outbox; :meth:`run` is the writer's housekeeping call."""

    def __init__(
        self,
        outbox: Outbox,
        policy: OutboxPolicy,
        *,
        reserve: SpaceReserve | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.policy = policy
        self.reserve = reserve
        self._clock = clock
        self.gaps: list[dict[str, Any]] = []  # the gap payloads reported since start, newest last
        self._short = False  # the last round could not free enough (warned once)

    def run(self) -> None:
        """One round: re-create the disk reserve if space came back, then bounds, ages and sizes."""
        if self.reserve is not None:
            self.reserve.check()
        self.purge_quarantine()
        self.shed_aged()
        self.enforce_size()

    # --- quarantine ------------------------------------------------------------------------------

    def purge_quarantine(self) -> int:
        """Delete quarantine rows past the age bound, then the oldest past the count bound."""
        conn = self.outbox.connection()
        cutoff = self._clock() - self.policy.quarantine_max_age_seconds
        conn.execute("BEGIN IMMEDIATE")
        try:
            purged = conn.execute("DELETE FROM quarantine WHERE received_at < ?", (cutoff,)).rowcount
            purged += conn.execute(
                "DELETE FROM quarantine WHERE id <= (SELECT id FROM quarantine ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (self.policy.quarantine_max_rows,),
            ).rowcount
            if purged:
                add_counts(conn, {"quarantine_purged": purged})
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if purged:
            log.info("quarantine: purged %d oldest rows (bounds: %d rows, %.0f days)", purged, *self._bounds())
        return purged

    def _bounds(self) -> tuple[int, float]:
        return self.policy.quarantine_max_rows, self.policy.quarantine_max_age_seconds / 86400

    # --- shedding ----------------------------------------------------------------------------------

    def shed_aged(self) -> int:
        """Shed presence data and heartbeats unsent for longer than the age quota."""
        cutoff_ms = int((self._clock() - self.policy.max_age_seconds) * 1000)
        if cutoff_ms <= 0:
            return 0
        text = f"{cutoff_ms:012x}"
        # UUIDv7 ids start with their millisecond timestamp in hex, so they compare in time order.
        cutoff_id = f"{text[:8]}-{text[8:]}"
        total = 0
        while True:
            rows = (
                self.outbox.connection()
                .execute(
                    f"SELECT seq, kind FROM events WHERE state = 0 AND {SHEDDABLE} AND event_id < ? "  # noqa: S608
                    "ORDER BY seq LIMIT ?",
                    (cutoff_id, self.policy.page_rows),
                )
                .fetchall()
            )
            if not rows:
                if total:
                    log.warning(
                        "outbox %s: shed %d presence and heartbeat events unsent too long", self.outbox.path, total
                    )
                return total
            self._shed(rows, "quota")
            total += len(rows)

    def enforce_size(self) -> int:
        """Make room: under disk pressure keep free pages inside the file; over quota, shrink to 90 %."""
        need, reason = self._bytes_needed()
        if need <= 0:
            return 0
        freed = self._purge_delivered(need)
        shed = 0
        for condition in SHED_CLASSES:
            while freed < need:
                rows = (
                    self.outbox.connection()
                    .execute(
                        f"SELECT seq, kind, LENGTH(sealed) FROM events WHERE state = 0 AND {SHEDDABLE} "  # noqa: S608
                        f"AND {condition} ORDER BY seq LIMIT ?",
                        (self.policy.page_rows,),
                    )
                    .fetchall()
                )
                if not rows:
                    break
                take = []
                for seq, kind, size in rows:
                    take.append((seq, kind))
                    freed += size + ROW_OVERHEAD
                    if freed >= need:
                        break
                self._shed(take, reason)
                shed += len(take)
        if shed:
            why = "the disk is full" if reason == "disk_pressure" else "the outbox is over its byte quota"
            log.warning("outbox %s: shed %d presence and heartbeat events: %s", self.outbox.path, shed, why)
        short = freed < need
        if short and not self._short:
            log.warning(
                "outbox %s: %s, and nothing more may be shed (%d KiB short); sales are kept regardless",
                self.outbox.path,
                "disk full" if reason == "disk_pressure" else "over its byte quota",
                (need - freed) // 1024,
            )
        self._short = short
        return shed

    def _bytes_needed(self) -> tuple[int, str]:
        conn = self.outbox.connection()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free_pages = conn.execute("PRAGMA freelist_count").fetchone()[0]
        if self.reserve is not None and self.reserve.full:
            return self.policy.room_bytes - free_pages * page_size, "disk_pressure"
        used = (pages - free_pages) * page_size
        if used > self.policy.max_bytes:
            return used - int(self.policy.max_bytes * QUOTA_TARGET), "quota"
        return 0, "quota"

    def _purge_delivered(self, need: int) -> int:
        """Delete delivered rows (already at central), oldest first, up to ``need`` bytes; bytes freed."""
        conn = self.outbox.connection()
        freed = purged = 0
        while freed < need:
            rows = conn.execute(
                "SELECT seq, LENGTH(sealed) FROM events WHERE state = ? ORDER BY state_at LIMIT ?",
                (DELIVERED, self.policy.page_rows),
            ).fetchall()
            if not rows:
                break
            take = []
            for seq, size in rows:
                take.append((seq,))
                freed += size + ROW_OVERHEAD
                if freed >= need:
                    break
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("DELETE FROM events WHERE seq = ?", take)
                add_counts(conn, {"delivered_purged_early": len(take)})
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            purged += len(take)
        if purged:
            log.warning(
                "outbox %s: purged %d delivered events before their time to make room", self.outbox.path, purged
            )
        return freed

    def _shed(self, rows: list[tuple[int, str]], reason: str) -> None:
        """Delete ``rows`` and append the agent.gap event that reports them, in one transaction."""
        kinds = Counter(kind for _seq, kind in rows)
        seqs = [seq for seq, _kind in rows]
        payload = {"reason": reason, "shed": dict(kinds), "from_seq": min(seqs), "to_seq": max(seqs)}
        gap = Capture.of("agent.gap", payload, timestamp(self._clock))
        self.outbox.append([gap], discard=seqs, count={f"shed:{kind}": n for kind, n in kinds.items()})
        self.gaps.append(payload)


def policy_from_config(config: AgentConfig) -> OutboxPolicy:
    """The policy the agent's settings declare."""
    return OutboxPolicy(
        max_bytes=config.outbox_max_bytes,
        max_age_seconds=config.outbox_max_age_hours * 3600,
        room_bytes=max(config.outbox_reserve_bytes, 1024 * 1024),
        quarantine_max_rows=config.quarantine_max_rows,
        quarantine_max_age_seconds=config.quarantine_max_age_days * 86400,
    )
