"""The demo chain's past: two years of members, receipts and online orders, so the console has something to show.

A generated chain (:mod:`bench.chain`: ten stores, a mini-program and a member app, households, staff
phones typed at the till, recycled numbers) is moved in time so its last day is yesterday, given the
consent decisions a member signing up records (most members agree to profiling and to marketing
messages, some only to one), and loaded through ``central-server load-events``. Then central does what
its scheduled jobs would do over the next hours: tags, a segment, a coupon campaign with a birthday
trigger, the triggers' first run and the campaign pages' reports.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from bench.chain import write_chain


class Loaded(NamedTuple):
    """What the history brought: its events, and members on store S001's cards for the till's scanner."""

    events: int
    members: list[str]


# Repeat buyers seen in the last 60 days: the segment the demo's campaign starts from.
SEGMENT_RULE = "purchases >= 2 and days_since(last_purchase_on) <= 60d"


def _moved(line: bytes, shift: timedelta) -> dict[str, object]:
    event: dict[str, object] = json.loads(line)
    at = datetime.fromisoformat(str(event["observed_at"]).replace("Z", "+00:00"))
    event["observed_at"] = (at + shift).strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


def _consents(event: dict[str, object], rng: random.Random) -> list[dict[str, object]]:
    """The decisions a member takes when signing up (none for a walk-in, and none for one in ten)."""
    ids = event.get("identifiers")
    if event.get("kind") != "member.signup" or not isinstance(ids, dict) or not ids.get("phone"):
        return []
    draw = rng.random()
    purposes = ["profiling", "marketing"] if draw < 0.75 else ["profiling"] if draw < 0.9 else []
    return [
        {
            "event_id": f"{event['event_id']}-consent-{purpose}",
            "observed_at": event["observed_at"],
            "store_id": event.get("store_id", ""),
            "kind": "consent.given",
            "identifiers": {"phone": ids["phone"]},
            "payload": {"purpose": purpose, "channel": "sms", "notice_version": "2024-01"},
        }
        for purpose in purposes
    ]


def write_history(out_dir: Path, customers: int, *, seed: int, now: datetime) -> tuple[Path, int]:
    """Write the chain's events, ending yesterday, with consent decisions; the file and its event count."""
    write_chain(out_dir, customers, seed=seed, years=2)
    lines = (out_dir / "events.jsonl").read_bytes().splitlines()
    last = max(datetime.fromisoformat(json.loads(line)["observed_at"].replace("Z", "+00:00")) for line in lines)
    shift = (now - timedelta(days=1)) - last
    rng = random.Random(seed)
    target = out_dir / "history.jsonl"
    written = 0
    with target.open("w", encoding="utf-8") as out:
        for line in lines:
            event = _moved(line, shift)
            for each in [event, *_consents(event, rng)]:
                out.write(json.dumps(each, ensure_ascii=False, separators=(",", ":")) + "\n")
                written += 1
    return target, written


def panel_members(cli: Callable[..., str], central: str, limit: int) -> list[str]:
    """Member ids on store S001's cashier cards, at most ``limit``: those with coupons and a tier first.

    The demo's till is at S001, and its panel shows a scanned member's masked name, tier and coupons
    only for the members on the store's cards (the ``member_cards`` job's document: who bought or
    was scanned there lately); anyone else shows as a masked member id.
    """
    listing = json.loads(cli(central, "downlink", "list", "--store", "S001", "--json"))
    cards: dict[str, dict] = next(
        (d["body"]["members"] for d in listing["documents"] if d["name"] == "member_cards" and d["body"]), {}
    )
    ranked = sorted(cards, key=lambda member: (not cards[member].get("coupons"), not cards[member].get("tier"), member))
    return ranked[:limit]


def load_history(
    cli: Callable[..., str], central: str, root: Path, customers: int, seed: int, *, scanned: int
) -> Loaded:
    """Load the past into central and run what its jobs would; ``scanned`` members on store S001's cards to scan."""
    history, events = write_history(root / "history", customers, seed=seed, now=datetime.now(UTC))
    cli(central, "load-events", "--source", "crm-history", "--no-progress", str(history))
    cli(central, "recompute-tags")
    cli(central, "segment", "add", "recent-repeat", "--rule", SEGMENT_RULE, "--channel", "sms",
        "--description", "repeat buyers of the last 60 days")  # fmt: skip
    cli(central, "segment", "evaluate", "recent-repeat")
    today = datetime.now(UTC).date()
    cli(
        central,
        "coupons",
        "create",
        "--name",
        "birthday-10",
        "--value",
        "10",
        "--valid-from",
        f"{today - timedelta(days=1)}T00:00+08:00",
        "--valid-to",
        f"{today + timedelta(days=90)}T00:00+08:00",
        "--max-redemptions",
        "5000",
        "--per-store-offline-budget",
        "50",
    )
    cli(
        central,
        "add-trigger",
        "birthday-coupon",
        "--kind",
        "birthday",
        "--params",
        json.dumps({"days_before": 7, "channel": "sms"}),
        "--action",
        "coupon",
        "--action-params",
        json.dumps({"campaign": "birthday-10"}),
    )
    cli(central, "run-job", "triggers")
    cli(central, "run-job", "reports")  # the campaign pages' effect and by-tier reports, due hourly
    cli(central, "run-job", "member_cards")  # the cashier panel's tiers and coupons, published hourly
    cli(central, "run-job", "name_pinyin")  # the console finds the history's members by pinyin (zhangwei)
    return Loaded(events, panel_members(cli, central, scanned))
