"""What the cashier panel shows for one scan: a pure function from a scan outcome to a small JSON card.

A member code that verifies shows the member masked (name 张*, phone 138****5678, or the member id
with all but its last four characters hidden when the agent knows no more), the member's value tier
and the coupons they can use; a refused code shows why, in Chinese and English. A coupon shows the
till's verdict: accepted (campaign and value), or refused with the reason in both languages. A
payment code shows only that it was one: its digits never leave :mod:`edge_agent.parsing.scan`.

Central's ``member_cards`` job fills both: ``MemberCard.tier`` is the member's value tier (empty
without profiling consent), and ``coupons`` come from a :class:`CouponSource`, by default the same
document's coupon hints (:mod:`edge_agent.panel.member_coupons`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge_agent.till.scans import ScanOutcome
from shared.masking import mask_card, mask_name, mask_phone

# downlink document, masked at central: {"members": {member_id: {"name", "phone", "tier", "coupons": [...]}}}
MEMBER_CARDS_DOCUMENT = "member_cards"

# (中文, English) for each refusal reason of shared.member_code.REASONS; a cashier reads it aloud.
REASONS: dict[str, tuple[str, str]] = {
    "expired": ("会员码已过期，请会员刷新后重新出示", "Code expired: ask the member to refresh it and show it again"),
    "replayed": ("此会员码已在本店使用过", "Code already used at this store"),
    "other-store-replayed": ("此会员码已在其他门店使用过", "Code already used at another store"),
    "forged": ("会员码无效：签名不符", "Forged code: the signature does not verify"),
    "unknown": (
        "无法识别的会员码（非本公司签发，或本店尚未同步密钥）",
        "Unknown code: not issued by us, or this store has no keys from HQ yet",
    ),
    "not-a-member-code": ("这不是会员码", "Not a member code"),
    "wrong-member": ("会员码与会员不符", "The code does not belong to the member it names"),
    "revoked": ("此会员的手机已停用，请会员重新登录", "The member's app key is revoked: ask them to sign in again"),
    "unverified": (
        "本店尚未同步会员密钥：会员码已记录，总部核验后关联本单",
        "This store has no member keys from HQ yet: the code is kept, and HQ will check it and link the sale",
    ),
}
OTHER_REASON = ("会员码被拒绝", "Member code refused")

# (中文, English) for each refusal reason of shared.coupon_code.REASONS, as the till's redemption gives them.
COUPON_REASONS: dict[str, tuple[str, str]] = {
    "not-a-coupon": ("这不是本公司的优惠券", "Not a coupon of this chain"),
    "unknown-key": (
        "无法识别的优惠券（非本公司签发，或本店尚未同步优惠券）",
        "Unknown coupon: not issued by us, or this store has no coupons from HQ yet",
    ),
    "forged": ("优惠券无效：签名不符", "Forged coupon: the signature does not verify"),
    "unknown-campaign": ("本店没有此优惠活动（可能尚未同步）", "Unknown campaign: this store has not received it yet"),
    "not-this-store": ("此优惠券不适用于本店", "This coupon is not valid at this store"),
    "revoked": ("此优惠券已被总部作废", "This coupon was withdrawn by HQ"),
    "not-yet-valid": ("优惠活动尚未开始", "The campaign has not started yet"),
    "expired": ("优惠券已过期", "Coupon expired"),
    "used-here": ("此优惠券已在本店使用过", "Coupon already used at this store"),
    "budget-exhausted": ("本店此活动的核销名额已用完", "This store's allowance for the campaign is used up"),
}
OTHER_COUPON_REASON = ("优惠券未能核销", "Coupon not accepted")


@dataclass(frozen=True, slots=True)
class MemberCard:
    """What a store may show about a member; ``name`` and ``phone`` are masked again before display."""

    name: str = ""
    phone: str = ""
    tier: str = ""


@dataclass(frozen=True, slots=True)
class Coupon:
    """A coupon the member can use now, as the panel lists it."""

    title: str
    code_hint: str = ""


class CouponSource(Protocol):
    """Seam for the till's coupons: the coupons a member can use at this store now."""

    def valid_for(self, member_id: str) -> tuple[Coupon, ...]: ...


@dataclass(frozen=True, slots=True)
class Directory:
    """Member cards by member id, from the downlink document ``member_cards`` (absent: ids only)."""

    cards: Mapping[str, MemberCard] = field(default_factory=dict)

    @classmethod
    def from_document(cls, body: Any) -> Directory:
        members = body.get("members") if isinstance(body, dict) else None
        cards: dict[str, MemberCard] = {}
        for member_id, entry in (members or {}).items() if isinstance(members, dict) else ():
            if isinstance(entry, dict):
                cards[str(member_id)] = MemberCard(
                    str(entry.get("name") or ""), str(entry.get("phone") or ""), str(entry.get("tier") or "")
                )
        return cls(cards)


def masked_member(member_id: str, card: MemberCard | None) -> dict[str, str]:
    """The member as the panel shows it: never a full name, phone or member id."""
    card = card or MemberCard()
    return {
        "id": mask_card(member_id),
        "name": mask_name(card.name),
        "phone": mask_phone(card.phone),
        "tier": card.tier,
    }


def scan_card(
    outcome: ScanOutcome,
    *,
    directory: Directory = Directory(),
    coupons: Callable[[str], tuple[Coupon, ...]] = lambda _member: (),
    again: bool = False,
) -> dict[str, Any]:
    """The panel's card for one scan (without its sequence number and time, added by the hub).

    ``again``: the scan is a repeat of the member code this register has just accepted (a double
    read, or the cashier scanning once more): it shows that member, marked as already scanned,
    not the ``replayed`` refusal the till recorded for it.
    """
    scan, verdict = outcome.scan, outcome.verdict
    if scan.kind == "member" and verdict is not None:
        if (verdict.accepted or again) and verdict.member_id:
            card: dict[str, Any] = {
                "kind": "member",
                "member": masked_member(verdict.member_id, directory.cards.get(verdict.member_id)),
                "coupons": [{"title": c.title, "hint": c.code_hint} for c in coupons(verdict.member_id)],
            }
            if again and not verdict.accepted:
                card["again"] = True
            return card
        reason = verdict.reason or "unknown"
        zh, en = REASONS.get(reason, OTHER_REASON)
        return {"kind": "rejected", "reason": reason, "zh": zh, "en": en}
    if scan.kind == "payment":
        return {"kind": "payment"}  # the digits are never shown, not even masked
    if scan.kind == "product":
        return {"kind": "product", "code": scan.gtin or scan.code or ""}
    if scan.kind == "coupon":
        coupon = outcome.coupon
        if coupon is not None and coupon.accepted:
            campaign = coupon.campaign
            return {
                "kind": "coupon",
                "campaign": campaign.name if campaign is not None else "",
                "value": campaign.value if campaign is not None else "",
            }
        reason = coupon.reason if coupon is not None and coupon.reason else "not-checked"
        zh, en = COUPON_REASONS.get(reason, OTHER_COUPON_REASON)
        return {"kind": "coupon-refused", "reason": reason, "zh": zh, "en": en}
    return {"kind": "unknown"}
