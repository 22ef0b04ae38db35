"""The till's used-set of coupon codes: a table in ``till.sqlite`` that survives restarts and power cuts.

A redemption is checked and recorded in one ``BEGIN IMMEDIATE`` transaction (WAL, ``synchronous=FULL``):
two scanners of one PC cannot both redeem a code, nor both take the campaign's last unit of budget.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from edge_agent.till.storage import DB_FILE, open_till_db

_SCHEMA = """
CREATE TABLE IF NOT EXISTS coupons_used (
    serial INTEGER PRIMARY KEY,
    campaign INTEGER NOT NULL,
    redeemed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS coupons_used_campaign ON coupons_used (campaign);
"""

USED = "used"
BUDGET = "budget"


class CouponStore:
    """The codes this store redeemed, and how many per campaign."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / DB_FILE
        self._conn = open_till_db(directory, _SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def redeem(self, serial: int, campaign: int, budget: int, at: float) -> str | None:
        """Record the redemption and return None, or return USED or BUDGET and record nothing."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM coupons_used WHERE serial = ?", (serial,)).fetchone():
                return USED
            (count,) = conn.execute("SELECT count(*) FROM coupons_used WHERE campaign = ?", (campaign,)).fetchone()
            if count >= budget:
                return BUDGET
            conn.execute(
                "INSERT INTO coupons_used (serial, campaign, redeemed_at) VALUES (?, ?, ?)", (serial, campaign, at)
            )
            return None
        finally:
            conn.execute("COMMIT")

    def used(self, serials: Collection[int]) -> set[int]:
        """Which of ``serials`` this store redeemed."""
        wanted = sorted(set(serials))[:500]  # a member's coupons: a handful
        marks = ",".join("?" * len(wanted))
        rows = self._conn.execute(f"SELECT serial FROM coupons_used WHERE serial IN ({marks})", wanted)  # noqa: S608
        return {int(serial) for (serial,) in rows}

    def redeemed(self, campaign: int) -> int:
        """How many codes of ``campaign`` this store redeemed."""
        (count,) = self._conn.execute("SELECT count(*) FROM coupons_used WHERE campaign = ?", (campaign,)).fetchone()
        return int(count)
