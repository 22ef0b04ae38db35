"""Every built-in tag against hand-computed values, including across a merge and a split.

As of 2026-11-30 12:00 UTC (20:00 in the chain's UTC+8), with the default settings:

- Alice: six store receipts of 62.50 with formula, 08:00 on 2, 7, 12, 17, 22 and 27 November
  (7th a Saturday, 22nd a Sunday). Loyal (3 days, 6 purchases, 375.00), high frequency, new
  (first 28 days ago), store-heavy, morning, not a weekend shopper, formula every 5 days: due 2 December.
- Bob: one app order of 50.00 on 1 June at 20:00, and a complaint yesterday. Dormant tier (182 days,
  1 purchase, under 100), lifecycle dormant, online-heavy, evening, high care.
- Carol: mini-program 120.00 on Sunday 15 November and store 30.00 on Saturday 21 November at 14:00.
  Potential (9 days, 2 purchases), new (first 15 days ago), omnichannel, afternoon, weekend share
  1.0 but only 2 purchases.
- Dave: three store receipts of 40.00 at S002 on Saturdays 5, 12 and 19 September at 22:00. At risk
  (72 days), tier other, evening, weekend shopper.
- Eve: one receipt of 20.00 on 10 January 2025: churned, dormant tier, not active (no RFM scores).

RFM over the four active customers (score 1 + 5 (rank - 1) / 4): R by last purchase Bob 1, Dave 2,
Carol 3, Alice 4; F by purchases Bob 1, Carol 2, Dave 3, Alice 4; M by spend Bob (50) 1,
Dave (120) 2, Carol (150) 3, Alice (375) 4.

Everyone gave profiling consent on 1 January 2026: tags that profile need it (test_profiling_tags.py).
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.config_loader import load_config
from central.customers import catalog, tagging
from central.customers.clv import Histories, fit_purchases, fit_spend, lifetime_value
from central.customers.export import export_tags
from central.identity.models import LedgerEntry
from central.identity.split import split
from tests.central.customer_support import NOW, PRODUCTS, card, engine_at, phone, profiling_consent, sale, store
from tests.central.sources_support import default_registry

ALICE, BOB, CAROL, DAVE, EVE, FRANK = (phone(n) for n in range(1, 7))
CONFIG = load_config(None, environ={})


def _history() -> list[dict[str, Any]]:
    events = [
        sale(f"a{d}", f"2026-11-{d:02d}T08:00:00+08:00", "62.50", phone=ALICE, skus=["F900", "W1"])
        for d in (2, 7, 12, 17, 22, 27)
    ]
    events.append(
        sale("b1", "2026-06-01T20:00:00+08:00", "50.00", phone=BOB, kind="order.online", channel="app", store="WEB")
    )
    events.append(
        {
            "event_id": "b-complaint",
            "kind": "service.complaint",
            "observed_at": "2026-11-29T10:00:00+08:00",
            "identifiers": {"phone": BOB},
            "payload": {"ticket_no": "T-1", "category": "quality"},
        }
    )
    events.append(
        sale("c1", "2026-11-15T14:00:00+08:00", "120.00", phone=CAROL, kind="order.online", channel="mini_program")
    )
    events.append(sale("c2", "2026-11-21T14:00:00+08:00", "30.00", phone=CAROL, skus=["D52"]))
    events += [sale(f"d{d}", f"2026-09-{d:02d}T22:00:00+08:00", "40.00", phone=DAVE, store="S002") for d in (5, 12, 19)]
    events.append(sale("e1", "2025-01-10T10:00:00+08:00", "20.00", phone=EVE))
    events += [profiling_consent(f"consent-{n}", phone=p) for n, p in enumerate((ALICE, BOB, CAROL, DAVE, EVE))]
    return events


def _tags(engine) -> dict[str, dict[str, str]]:
    """phone -> {tag: value} for live customers, found through their phone."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT i.value, t.tag, t.value FROM customer_tags t"
                " JOIN identifiers i ON i.customer_id = t.customer_id WHERE i.kind = 'phone'"
            )
        )
        out: dict[str, dict[str, str]] = {}
        for number, tag, value in rows:
            out.setdefault(number.removeprefix("+86"), {})[tag] = value
    return out


def _recompute(engine) -> tagging.Recomputed:
    with engine.begin() as conn:
        return tagging.recompute(conn, CONFIG, NOW)


def test_every_builtin_tag_matches_the_hand_computed_value(backend):
    with engine_at(backend.url) as engine:
        with engine.begin() as conn:
            catalog.load(conn, PRODUCTS, NOW)
        store(engine, _history())
        done = _recompute(engine)
        assert done.clv_problem is None
        tags = _tags(engine)
        clv = {k: float(v.pop("value.clv")) for k, v in tags.items()}
        assert tags[ALICE] == {
            "rfm.r": "4",
            "rfm.f": "4",
            "rfm.m": "4",
            "value_tier": "loyal",
            "frequency": "high",
            "channel": "store_heavy",
            "top_category.1": "Baby > Care",
            "top_category.2": "Baby > Formula",
            "preferred_store": "S001",
            "time_of_day": "morning",
            "weekend_shopper": "no",
            "lifecycle": "new",
            "repurchase.Baby > Care": "2026-12-02",
            "repurchase.Baby > Formula": "2026-12-02",
            "value.spend": "375.00",
        }
        assert tags[BOB] == {
            "rfm.r": "1",
            "rfm.f": "1",
            "rfm.m": "1",
            "value_tier": "dormant",
            "frequency": "normal",
            "channel": "online_heavy",
            "preferred_store": "WEB",
            "time_of_day": "evening",
            "weekend_shopper": "no",
            "lifecycle": "dormant",
            "value.spend": "50.00",
            "service.high_care": "yes",
        }
        assert tags[CAROL] == {
            "rfm.r": "3",
            "rfm.f": "2",
            "rfm.m": "3",
            "value_tier": "potential",
            "frequency": "normal",
            "channel": "omnichannel",
            "top_category.1": "Baby > Diapers",
            "preferred_store": "S001",
            "time_of_day": "afternoon",
            "weekend_shopper": "no",
            "lifecycle": "new",
            "value.spend": "150.00",
        }
        assert tags[DAVE] == {
            "rfm.r": "2",
            "rfm.f": "3",
            "rfm.m": "2",
            "value_tier": "other",
            "frequency": "normal",
            "channel": "store_heavy",
            "preferred_store": "S002",
            "time_of_day": "evening",
            "weekend_shopper": "yes",
            "lifecycle": "at_risk",
            "value.spend": "120.00",
        }
        assert tags[EVE] == {
            "value_tier": "dormant",
            "frequency": "normal",
            "channel": "store_heavy",
            "preferred_store": "S001",
            "time_of_day": "morning",
            "weekend_shopper": "no",
            "lifecycle": "churned",
            "value.spend": "20.00",
        }
        # The predicted value is the existing model's, fitted on these histories (in days, as of today):
        # repeat purchase days, first to last purchase day, first purchase day to 30 November.
        histories = Histories.of([5, 0, 1, 2, 0], [25, 0, 6, 14, 0], [28, 182, 15, 86, 689], [62.5, 0, 30.0, 40.0, 0])
        expected = lifetime_value(
            fit_purchases(histories).params,
            fit_spend(histories).params,
            histories,
            periods=12,
            period_length=365.25 / 12,
            discount_rate=0.01,
        )
        got = [clv[p] for p in (ALICE, BOB, CAROL, DAVE, EVE)]
        assert got == [round(float(v), 2) for v in expected]


def test_each_tag_keeps_its_inputs_and_version(backend):
    with engine_at(backend.url) as engine:
        store(engine, _history())
        _recompute(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT t.tag, t.inputs, t.version FROM customer_tags t JOIN identifiers i"
                    " ON i.customer_id = t.customer_id WHERE i.value = :p ORDER BY t.tag"
                ),
                {"p": "+86" + ALICE},
            ).all()
        why = {tag: (inputs if isinstance(inputs, dict) else json.loads(inputs)) for tag, inputs, _ in rows}
        # The last purchase itself, as each database writes a timestamp into JSON (win-back compares it).
        for tag in ("value_tier", "lifecycle"):
            last = datetime.fromisoformat(why[tag].pop("last_purchase_at"))
            assert last.replace(tzinfo=last.tzinfo or UTC) == datetime(2026, 11, 27, tzinfo=UTC)
        assert why["value_tier"] == {
            "days_since_last": 3,
            "purchases_in_window": 6,
            "spent_in_window": 375.0,
            "window_days": 365,
        }
        assert why["frequency"] == {"purchases_in_window": 6, "window_days": 30}
        assert why["rfm.r"]["rank"] == 4 and why["rfm.r"]["active_customers"] == 4
        # Six purchase days from 2 to 27 November, 62.50 each; today is 30 November.
        model = why["value.clv"].pop("model")
        assert why["value.clv"] == {
            "repeat_purchase_days": 5,
            "recency_days": 25,
            "age_days": 28,
            "mean_repeat_spend": 62.5,
            "horizon_months": 12,
        }
        assert set(model) == {"r", "alpha", "a", "b", "p", "q", "gamma"}
        assert all(isinstance(v, float) for v in model.values())
        versions = {tag: version for tag, _, version in rows}
        assert versions["value_tier"].startswith("2:")
    # A changed threshold is a new version of the definition, and changes the value.
    stricter = load_config(None, environ={}, overrides={"tags.loyal_min_purchases": 7})
    with engine_at(backend.url) as engine:
        with engine.begin() as conn:
            tagging.recompute(conn, stricter, NOW)
        with engine.connect() as conn:
            value, version = conn.execute(
                text(
                    "SELECT t.value, t.version FROM customer_tags t JOIN identifiers i ON i.customer_id = t.customer_id"
                    " WHERE i.value = :p AND t.tag = 'value_tier'"
                ),
                {"p": "+86" + ALICE},
            ).one()
    assert value == "other"
    assert version != versions["value_tier"]


def _one_sale_each(
    backend, times: tuple[str, ...], first: int, tags: tuple[str, ...]
) -> tuple[list[str], dict[tuple[str, str], tuple[str, dict[str, Any], str]]]:
    """One customer per local time in ``times`` (phones from ``first``), each with one sale of 10.00 then and
    profiling consent; after a recompute, ``tags`` of each as ``{(phone, tag): (value, inputs, version)}``."""
    phones = [phone(n) for n in range(first, first + len(times))]
    events = [
        sale(f"one{first + n}", f"{at}:00+08:00", "10.00", phone=p)
        for n, (at, p) in enumerate(zip(times, phones, strict=True))
    ]
    events += [profiling_consent(f"onec{first + n}", phone=p) for n, p in enumerate(phones)]
    with engine_at(backend.url) as engine:
        store(engine, events)
        _recompute(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT i.value, t.tag, t.value, t.inputs, t.version FROM customer_tags t JOIN identifiers i"
                    " ON i.customer_id = t.customer_id AND i.kind = 'phone' WHERE t.tag IN :tags"
                ).bindparams(bindparam("tags", expanding=True)),
                {"tags": list(tags)},
            ).all()
    got = {
        (number.removeprefix("+86"), tag): (value, inputs if isinstance(inputs, dict) else json.loads(inputs), version)
        for number, tag, value, inputs, version in rows
    }
    return phones, got


def test_recency_scores_rank_the_local_days_their_why_shows(backend):
    """Last purchases as of 30 November 20:00 in the chain's UTC+8 (12:00 UTC), each one of five:

    - 27 November 09:00 and 19:00 local: 3 local days ago both (3 d 11 h and 3 d 1 h elapsed).
    - 28 November 07:00 local (27 November in UTC) and 23:00 local: 2 local days ago both
      (2 d 13 h and 1 d 21 h elapsed).
    - 30 November 10:00 local: today, 0 days.

    Ranked by days, most first, ties sharing a rank: 1, 1, 3, 3, 5 of 5 customers; scores
    1 + 5 (rank - 1) / 5 = 1, 1, 3, 3, 5. Ranked by the exact time they were 1, 2, 3, 4, 5.
    """
    lasts = ("2026-11-27T09:00", "2026-11-27T19:00", "2026-11-28T07:00", "2026-11-28T23:00", "2026-11-30T10:00")
    phones, tags = _one_sale_each(backend, lasts, 11, ("rfm.r",))
    got = {p: tags[p, "rfm.r"] for p in phones}
    assert [(got[p][0], got[p][1]["days_since_last"], got[p][1]["rank"]) for p in phones] == [
        ("1", 3, 1),
        ("1", 3, 1),
        ("3", 2, 3),
        ("3", 2, 3),
        ("5", 0, 5),
    ]
    for p in phones:
        assert {k: v for k, v in got[p][1].items() if k not in ("days_since_last", "rank")} == {
            "active_customers": 5,
            "window_days": 365,
        }
    assert {got[p][2].split(":")[0] for p in phones} == {"2"}  # the definition changed: stored tags show it


def test_value_tier_and_lifecycle_decide_on_the_local_days_their_why_shows(backend):
    """As of 30 November 20:00 in the chain's UTC+8, one purchase of 10.00 each:

    - 1 September 08:00 local: 90 local days ago (90 d 12 h elapsed). Dormant needs more than 90
      days: not dormant, its why says 90. By the exact time it was dormant with a why of 90.
    - 31 August 23:00 local: 91 local days ago (91 d 21 h elapsed): dormant.
    - 31 October 09:00 local: 30 local days ago (30 d 11 h elapsed). New is a first purchase at
      most 30 days ago: new, its why says 30. By the exact time it was active with a why of 30.
    """
    firsts = ("2026-09-01T08:00", "2026-08-31T23:00", "2026-10-31T09:00")
    phones, got = _one_sale_each(backend, firsts, 21, ("value_tier", "lifecycle"))
    tiers = [(got[p, "value_tier"][0], got[p, "value_tier"][1]["days_since_last"]) for p in phones]
    assert tiers == [("other", 90), ("dormant", 91), ("other", 30)]
    cycle = [(got[p, "lifecycle"][0], got[p, "lifecycle"][1]["days_since_first"]) for p in phones]
    assert cycle == [("at_risk", 90), ("at_risk", 91), ("new", 30)]


def test_tags_follow_a_merge_and_a_split(backend):
    with engine_at(backend.url) as engine:
        # Frank buys twice by phone and three times by card, then one receipt names both: one customer.
        # He agreed to profiling by phone and by card, so each side keeps a grant after the split.
        store(engine, [profiling_consent("f-phone", phone=FRANK), profiling_consent("f-card", card=card(6))])
        store(engine, [sale(f"fp{d}", f"2026-11-{d:02d}T12:00:00+08:00", "30.00", phone=FRANK) for d in (10, 20)])
        store(engine, [sale(f"fc{d}", f"2026-11-{d:02d}T12:00:00+08:00", "50.00", card=card(6)) for d in (12, 14, 16)])
        store(engine, [sale("f-both", "2026-11-25T12:00:00+08:00", "100.00", phone=FRANK, card=card(6))])
        _recompute(engine)
        merged = _tags(engine)[FRANK]
        assert merged["value.spend"] == "310.00"
        assert merged["value_tier"] == "loyal"  # 6 purchases, 310.00, 5 days ago
        assert merged["frequency"] == "high"
        with Session(engine) as db:
            survivor = db.scalar(text("SELECT customer_id FROM identifiers WHERE value = :p"), {"p": "+86" + FRANK})
            merge = db.scalar(select(LedgerEntry.id).where(LedgerEntry.action == "merge"))
            split(db, survivor, merge, now=NOW, operator="test", registry=default_registry())
            db.commit()
        done = _recompute(engine)
        assert done.marked == 0  # the split recomputed both sides' statistics itself
        with engine.connect() as conn:
            by_customer = dict(
                conn.execute(text("SELECT customer_id, value FROM customer_tags WHERE tag = 'value.spend'")).all()
            )
            tiers = dict(
                conn.execute(text("SELECT customer_id, value FROM customer_tags WHERE tag = 'value_tier'")).all()
            )
        # The phone's two receipts on one side; the card's three and the receipt naming both on the other.
        assert sorted(by_customer.values()) == ["250.00", "60.00"]
        assert sorted(tiers.values()) == ["other", "potential"]


def test_a_recompute_replaces_the_tags_and_leaves_the_keys_and_index_it_rebuilt(backend):
    with engine_at(backend.url) as engine:
        store(engine, _history())
        _recompute(engine)
        with engine.connect() as conn:
            first = conn.execute(text("SELECT customer_id, tag, value, version FROM customer_tags ORDER BY 1, 2")).all()
        again = _recompute(engine)
        with engine.connect() as conn:
            second = conn.execute(
                text("SELECT customer_id, tag, value, version FROM customer_tags ORDER BY 1, 2")
            ).all()
            schema = inspect(conn)
            key = schema.get_pk_constraint("customer_tags")
            indexes = {i["name"]: i["column_names"] for i in schema.get_indexes("customer_tags")}
        assert second == first and sum(again.tags.values()) == len(first)
        assert key["constrained_columns"] == ["customer_id", "tag"]
        assert indexes["ix_customer_tags_tag_value_customer_id"] == ["tag", "value", "customer_id"]
        # The rebuilt primary key still refuses a second row of a customer's tag.
        customer_id, tag, *_ = first[0]
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO customer_tags (customer_id, tag, value, inputs, version, computed_at)"
                    " SELECT customer_id, tag, value, inputs, version, computed_at FROM customer_tags"
                    " WHERE customer_id = :c AND tag = :t"
                ),
                {"c": customer_id, "t": tag},
            )


def test_the_preferred_store_needs_its_share_and_counts_every_store(backend):
    # Grace: two receipts at S003, one at S002 and one online; S003 has half of them, the least share.
    # Heidi: one purchase at each of three stores; none has half, so no preferred store.
    grace, heidi = phone(7), phone(8)
    events = [
        sale("g1", "2026-11-02T10:00:00+08:00", "10.00", phone=grace, store="S003"),
        sale("g2", "2026-11-03T10:00:00+08:00", "10.00", phone=grace, store="S003"),
        sale("g3", "2026-11-04T10:00:00+08:00", "10.00", phone=grace, store="S002"),
        sale("g4", "2026-11-05T10:00:00+08:00", "10.00", phone=grace, kind="order.online", store="WEB"),
        *(sale(f"h{n}", f"2026-11-0{n}T10:00:00+08:00", "10.00", phone=heidi, store=f"S00{n}") for n in (1, 2, 3)),
        profiling_consent("g-consent", phone=grace),
        profiling_consent("h-consent", phone=heidi),
    ]
    with engine_at(backend.url) as engine:
        store(engine, events)
        _recompute(engine)
        tags = _tags(engine)
        with engine.connect() as conn:
            inputs = conn.execute(
                text(
                    "SELECT t.inputs FROM customer_tags t JOIN identifiers i ON i.customer_id = t.customer_id"
                    " WHERE i.value = :p AND t.tag = 'preferred_store'"
                ),
                {"p": "+86" + grace},
            ).scalar_one()
    assert tags[grace]["preferred_store"] == "S003"
    assert (inputs if isinstance(inputs, dict) else json.loads(inputs)) == {"purchases": 2, "share": 0.5, "stores": 3}
    assert "preferred_store" not in tags[heidi]


def test_online_orders_that_name_no_store_are_no_store(backend):
    # Ivan: an order from the mini-program (no store) and, before it, one receipt at S001: half each.
    ivan = phone(9)
    events = [
        sale("i1", "2026-11-02T10:00:00+08:00", "10.00", phone=ivan, store="S001"),
        sale("i2", "2026-11-20T10:00:00+08:00", "10.00", phone=ivan, kind="order.online", channel="mini_program"),
        profiling_consent("i-consent", phone=ivan),
    ]
    del events[1]["store_id"]
    stores = "SELECT store_id, purchases FROM customer_stores"
    with engine_at(backend.url) as engine:
        store(engine, events)
        with engine.connect() as conn:
            assert conn.execute(text(stores)).all() == [("S001", 1)]  # the order counts in customer_stats only
        with engine.begin() as conn:
            tagging.recompute(conn, CONFIG, NOW, statistics=True)  # the full rebuild agrees
            assert conn.execute(text(stores)).all() == [("S001", 1)]
            assert conn.execute(text("SELECT purchases FROM customer_stats")).scalar_one() == 2
        assert _tags(engine)[ivan]["preferred_store"] == "S001"
        with engine.connect() as conn:
            inputs = conn.execute(text("SELECT inputs FROM customer_tags WHERE tag = 'preferred_store'")).scalar_one()
    assert (inputs if isinstance(inputs, dict) else json.loads(inputs)) == {"purchases": 1, "share": 0.5, "stores": 1}


def test_the_export_leaves_out_the_tags_of_a_customer_merged_away_since_the_recompute(backend, tmp_path):
    with engine_at(backend.url) as engine:
        store(engine, [sale("p", "2026-11-20T10:00:00+08:00", "30.00", phone=ALICE)])
        store(engine, [sale("c", "2026-11-21T10:00:00+08:00", "40.00", card=card(1))])
        _recompute(engine)
        store(engine, [sale("both", "2026-11-22T10:00:00+08:00", "50.00", phone=ALICE, card=card(1))])
        done = export_tags(engine, tmp_path, NOW, CONFIG.customers_utc_offset_minutes)
        with engine.connect() as conn:
            merged = conn.execute(text("SELECT id, merged_into FROM customers WHERE merged_into IS NOT NULL")).one()
        with (tmp_path / "tags.csv").open(encoding="utf-8", newline="") as stream:
            rows = list(csv.DictReader(stream))
    # Only the survivor: its tags as of the recompute, its statistics with both sides.
    assert {r["customer_id"] for r in rows} == {str(merged[1])}
    assert [r["value"] for r in rows if r["tag"] == "value.spend"] == ["30.00"]
    assert (done.tags, done.statistics) == (len(rows), 1)
