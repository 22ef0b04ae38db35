"""Coupons at the till: redeemed offline with central's public key, the store's used-set and offline budget.

What the agent holds is the downlink ``coupons`` document (central's coupon public key, the
campaigns with their validity and per-store offline budget, revoked serials) and its own used-set
(:mod:`edge_agent.till.coupon_store`). Nothing of it can make a code. A scan ends as a
``scan.coupon`` event either way: ``result`` is ``accepted`` or one refusal reason of
:data:`shared.coupon_code.REASONS`, checked in this order: not a coupon, unknown key, forged,
unknown campaign, not this store, revoked, not yet valid, expired, used here, budget exhausted.

The offline budget is the most codes of a campaign this store redeems on its own authority: it
bounds how far a store cut off from central can overrun the campaign's total; central applies the
total at sync and flags anything over it (docs/decisions/0053-coupons.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from edge_agent.till.coupon_store import BUDGET, CouponStore
from shared import coupon_code as cc
from shared.crypto import unb64

DOCUMENT = "coupons"


@dataclass(frozen=True, slots=True)
class CampaignTerms:
    """What a till needs of one campaign."""

    id: int
    name: str
    value: str
    valid_from: float
    valid_to: float
    offline_budget: int
    stores: frozenset[str] | None


def _when(text: Any) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class CouponTerms:
    """The ``coupons`` document, parsed: central's key, the campaigns by id, the revoked serials."""

    key: bytes | None
    campaigns: Mapping[int, CampaignTerms]
    revoked: frozenset[int]

    @classmethod
    def parse(cls, body: Any) -> CouponTerms:
        """Read the document; entries that do not parse are left out (the till refuses their codes)."""
        body = body if isinstance(body, dict) else {}
        try:
            key: bytes | None = unb64(str(body.get("key", "")))
        except ValueError:
            key = None
        campaigns = {}
        for entry in body.get("campaigns", []):
            try:
                stores = entry.get("stores")
                terms = CampaignTerms(
                    int(entry["id"]),
                    str(entry.get("name", ""))[:128],
                    str(entry.get("value", "")),
                    _when(entry["valid_from"]),
                    _when(entry["valid_to"]),
                    int(entry["offline_budget"]),
                    None if stores is None else frozenset(str(s) for s in stores),
                )
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            campaigns[terms.id] = terms
        revoked = frozenset(r for r in body.get("revoked", []) if type(r) is int)
        return cls(key if key and len(key) == 32 else None, campaigns, revoked)


@dataclass(frozen=True, slots=True)
class CouponVerdict:
    """A scan's result: accepted (reason None) or refused with a reason a cashier can be shown."""

    reason: str | None
    detail: str
    campaign: CampaignTerms | None = None
    serial: int | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None

    def payload(self, code: str, register: str) -> dict[str, Any]:
        """The ``scan.coupon`` event payload for this verdict."""
        body: dict[str, Any] = {"code": code.strip()[:512], "register": register, "result": self.reason or cc.ACCEPTED}
        if self.serial is not None:
            body["coupon_id"] = str(self.serial)
        if self.campaign is not None:
            body["campaign"] = self.campaign.id
            body["value"] = self.campaign.value
        if self.reason:
            body["detail"] = self.detail[:256]
        return body


def check(text: str, terms: CouponTerms, store_id: str, now: float) -> CouponVerdict:
    """Everything about a code that needs no used-set: format, signature, campaign, store, revocation, time."""
    try:
        code = cc.decode(text)
    except cc.CouponFormatError as exc:
        return CouponVerdict(cc.NOT_A_COUPON, f"not a coupon code of this chain ({exc})")
    if terms.key is None or code.key_id != cc.key_id(terms.key):
        detail = "signed by a key this store does not know (another chain, or the coupons document is not synced)"
        return CouponVerdict(cc.UNKNOWN_KEY, detail, serial=code.serial)
    if not code.verifies(terms.key):
        return CouponVerdict(cc.FORGED, "the code is not signed by central", serial=code.serial)
    campaign = terms.campaigns.get(code.campaign)
    if campaign is None:
        return CouponVerdict(cc.UNKNOWN_CAMPAIGN, f"campaign {code.campaign} is not in this store's coupons document")

    def refuse(reason: str, detail: str) -> CouponVerdict:
        return CouponVerdict(reason, detail, campaign, code.serial)

    if campaign.stores is not None and store_id not in campaign.stores:
        return refuse(cc.NOT_THIS_STORE, f"campaign {campaign.name} does not run in store {store_id}")
    if code.serial in terms.revoked:
        return refuse(cc.REVOKED, "central revoked this code")
    if now < campaign.valid_from:
        return refuse(cc.NOT_YET_VALID, f"campaign {campaign.name} has not started")
    if now > campaign.valid_to:
        return refuse(cc.EXPIRED, f"campaign {campaign.name} has ended")
    return CouponVerdict(None, "valid", campaign, code.serial)


class CouponRedeemer:
    """Redeems scanned coupon codes for one store, offline, each at most once."""

    def __init__(
        self, directory: Path, store_id: str, *, clock: Callable[[], float] = time.time, document: Any = None
    ) -> None:
        self.store_id = store_id
        self.clock = clock
        self.terms = CouponTerms.parse(document)
        self.store = CouponStore(directory)

    def close(self) -> None:
        self.store.close()

    def update(self, documents: Mapping[str, Any]) -> None:
        """Take the ``coupons`` document in force (from DownlinkStore)."""
        self.terms = CouponTerms.parse(documents.get(DOCUMENT))

    def redeem(self, text: str) -> CouponVerdict:
        """Accept a code once (recording it) or refuse it with one of shared.coupon_code.REASONS."""
        now = self.clock()
        verdict = check(text, self.terms, self.store_id, now)
        if verdict.reason is not None or verdict.campaign is None or verdict.serial is None:
            return verdict
        campaign = verdict.campaign
        problem = self.store.redeem(verdict.serial, campaign.id, campaign.offline_budget, now)
        if problem is None:
            return verdict
        if problem == BUDGET:
            detail = f"this store has redeemed its offline budget of {campaign.offline_budget} for {campaign.name}"
            return CouponVerdict(cc.BUDGET_EXHAUSTED, detail, campaign, verdict.serial)
        return CouponVerdict(cc.USED_HERE, "this code was already redeemed at this store", campaign, verdict.serial)
