"""The panel's coupons: a member's usable codes as central lists them in ``member_cards``, less those redeemed here.

Central writes each member's claimed, unredeemed codes of running campaigns into the store's
``member_cards`` document (a title and the code's last four characters, never the code). A code
this till redeemed since central last published is left out by asking the till's used-set about
the listed serials; central leaves it out itself once the redemption reaches it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from edge_agent.panel.view import Coupon

UsedSerials = Callable[[Collection[int]], Collection[int]]


def _entries(body: Any) -> dict[str, tuple[tuple[int | None, Coupon], ...]]:
    members = body.get("members") if isinstance(body, dict) else None
    out: dict[str, tuple[tuple[int | None, Coupon], ...]] = {}
    for member_id, entry in members.items() if isinstance(members, dict) else ():
        listed = entry.get("coupons") if isinstance(entry, dict) else None
        coupons = []
        for c in listed if isinstance(listed, list) else ():
            if isinstance(c, dict) and isinstance(c.get("title"), str):
                serial = c.get("serial")
                hint = str(c.get("hint") or "")[-4:]
                coupons.append((serial if type(serial) is int else None, Coupon(c["title"][:128], hint)))
        if coupons:
            out[str(member_id)] = tuple(coupons)
    return out


class MemberCoupons:
    """A :class:`~edge_agent.panel.view.CouponSource` reading the ``member_cards`` document."""

    def __init__(self, used: UsedSerials = lambda _serials: ()) -> None:
        self.used = used
        self._by_member: Mapping[str, tuple[tuple[int | None, Coupon], ...]] = {}

    def update(self, body: Any) -> None:
        """Take the ``member_cards`` document now in force (None: no coupons)."""
        self._by_member = _entries(body)

    def valid_for(self, member_id: str) -> tuple[Coupon, ...]:
        """The member's coupons, without the codes this till has redeemed."""
        listed = self._by_member.get(member_id, ())
        serials = [s for s, _ in listed if s is not None]
        redeemed = set(self.used(serials)) if serials else set()
        return tuple(c for s, c in listed if s is None or s not in redeemed)
