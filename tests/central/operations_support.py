"""Data for the operations pages' tests: a trigger with firings, a coupon campaign, a finished import."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import insert

from central import db as central_db
from central.campaigns import coupons, triggers
from central.campaigns.models import ACTION, CONTROL, TriggerOccasion
from central.customers.models import CustomerTag
from central.sources.import_file import ImportOptions, plan_import
from central.sources.member_import import run_import
from tests.central.sources_support import default_registry
from tests.central.support import START, Agent


def declare_trigger(app: Flask, name: str = "birthday-coupon", *, acted: int = 3, control: int = 1) -> int:
    """A birthday trigger that fired ``acted`` times with its action and ``control`` times for the control group."""
    declared = triggers.check(name, "birthday", {"days_before": 3, "channel": "sms"}, "export", {}, 25.0)
    with central_db.session_factory(app)() as db:
        trigger_id = triggers.declare(db, declared, actor="test", now=START)
        groups = [ACTION] * acted + [CONTROL] * control
        db.execute(
            insert(TriggerOccasion),
            [
                {
                    "trigger_id": trigger_id,
                    "customer_id": 1000 + n,
                    "occasion": "2026",
                    "grp": grp,
                    "fired_at": START - timedelta(hours=n),
                    "instance": "test",
                }
                for n, grp in enumerate(groups)
            ],
        )
        db.commit()
    return trigger_id


@dataclass
class Campaign:
    """A coupon campaign and the codes issued for it: by member id, then anonymous ones."""

    id: int
    member_codes: dict[str, str]
    anonymous: list[str]


def coupon_campaign(app: Flask, members: list[str], anonymous: int = 0, name: str = "double-11") -> Campaign:
    """A campaign valid around the fake clock's start, with a code per member and ``anonymous`` more."""
    secret = app.config["SECRET_KEY"]
    with central_db.session_factory(app)() as db:
        created = coupons.create_campaign(
            db,
            name=name,
            value=coupons.parse_value("10.00"),
            valid_from=START - timedelta(hours=1),
            valid_to=START + timedelta(days=1),
            max_redemptions=100,
            offline_budget=10,
            stores=None,
            now=START - timedelta(hours=1),
            actor="test",
            secret=secret,
        )
        codes = {
            m: coupons.issue_for_member(db, str(created.id), m, now=START, actor="test", secret=secret).code
            for m in members
        }
        extra = (
            [
                i.code
                for i in coupons.issue_anonymous(db, str(created.id), anonymous, now=START, actor="t", secret=secret)
            ]
            if anonymous
            else []
        )
        db.commit()
    return Campaign(created.id, codes, extra)


def redeem(agent: Agent, code: str, campaign: int, store_id: str | None = None) -> object:
    """A ``scan.coupon`` event the till accepted for ``code``."""
    payload = {"code": code, "register": "R1", "result": "accepted", "campaign": campaign, "value": "10.00"}
    return agent.event("scan.coupon", payload, store_id=store_id)


def tag_tier(app: Flask, customer_id: int, tier: str) -> None:
    """Give a customer a value tier as the tagging run would."""
    with central_db.session_factory(app)() as db:
        db.execute(
            insert(CustomerTag).values(
                customer_id=customer_id, tag="value_tier", value=tier, inputs={}, version="1", computed_at=START
            )
        )
        db.commit()


def import_members(app: Flask, directory: Path) -> int:
    """Import a four-row legacy file (one row rejected: no identifier) through the real import path."""
    path = directory / "legacy.csv"
    path.write_text("name,phone\n王芳,13800139001\n李雷,13800139002\n韩梅梅,\n王芳,13800139001\n", encoding="utf-8")
    registry = default_registry()
    options = ImportOptions(chunk_size=2, operator="ops-test")
    plan = plan_import(path, options, registry)
    with central_db.session_factory(app)() as db:
        import_id, _ = run_import(db, plan, options, registry=registry, clock=lambda: START, today=date(2026, 11, 23))
    return import_id
