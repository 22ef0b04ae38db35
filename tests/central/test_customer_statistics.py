"""Incremental statistics equal a full recompute, whatever the order and duplication of deliveries."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from central import bulk
from central.customers import catalog, rebuild, statistics
from central.customers.models import CustomerDay, CustomerStats
from central.identity.changes import mark_recompute
from central.identity.models import Customer, EventCustomer, LedgerEntry, ReviewItem
from central.identity.review import accept
from central.identity.split import remove_identifier, split
from central.models import table
from central.sources.backfill import DEFAULT_CHUNK
from central.sources.events import read_events, store_rows
from tests.central.customer_support import ANY_TIME, NOW, PRODUCTS, card, engine_at, phone, sale, snapshot, store
from tests.central.sources_support import default_registry

SKUS = ("F900", "D52", "W1", "M1", "X-UNKNOWN", "Y-UNKNOWN")
CHANNELS = (None, "app", "APP", "mini_program", "miniprogram", "web", "商城")
CHANNELS += ("小程序", "Member App", " WeApp", "mini-program")  # spellings folded alike by ingest and recompute


def _chain(rng: random.Random, customers: int, sales: int) -> list[dict[str, Any]]:
    """Sales of ``customers`` people over two years: by phone, by card or by both (which merges)."""
    events = []
    for n in range(sales):
        who = rng.randrange(customers)
        how = rng.random()
        ids: dict[str, str] = {}
        if how < 0.6:
            ids["phone"] = phone(who)
        elif how < 0.85:
            ids["card"] = card(who)
        elif how < 0.95:
            ids = {"phone": phone(who), "card": card(who)}
        kind = rng.choice(("pos.receipt", "pos.receipt", "pos.sale", "order.online"))
        cents = rng.choice((rng.randrange(1, 50_000), -rng.randrange(1, 5_000), 0))
        # Now and then written with a third decimal, a zero: money is whole fen (decision 0102).
        total = f"{cents / 100:.2f}" if rng.random() < 0.9 else f"{cents / 100:.2f}0"
        day = f"2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        at = f"{day}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00+08:00"
        events.append(
            sale(
                f"e{n}",
                at,
                total,
                kind=kind,
                store=rng.choice(("S001", "S002", "WEB")),
                channel=rng.choice(CHANNELS),
                skus=rng.sample(SKUS, rng.randrange(0, 4)),
                **ids,
            )
        )
    return events


def _deliver(url: str, events: list[dict[str, Any]], rng: random.Random, max_batch: int) -> None:
    """Every event at least once, a fifth of them twice, shuffled, in transactions of random size.

    Each transaction goes through :func:`central.sources.events.store_rows`, the path
    ``central-server load-events`` stores its chunks by; the events are decoded once, up front.
    """
    rows, repeated, rejected = read_events(events, ANY_TIME)
    assert not repeated and not rejected, (repeated[:3], rejected[:3])
    copies = rows + rng.sample(rows, len(rows) // 5)
    rng.shuffle(copies)
    registry = default_registry()
    with engine_at(url) as engine, Session(engine) as db:
        start = 0
        while start < len(copies):
            size = rng.randrange(1, max_batch + 1)
            batch = list({r.event.event_id: r for r in copies[start : start + size]}.values())
            store_rows(db, "pos_backfill", batch, NOW, registry=registry)
            start += size


def _full(url: str) -> dict[str, list[Any]]:
    with engine_at(url) as engine:
        with engine.begin() as conn:
            rebuild.rebuild_all(conn, statistics.DEFAULT_OFFSET_MINUTES)
        return snapshot(engine)


def _chain_size(request: pytest.FixtureRequest) -> tuple[int, int]:
    """``--stats-chain-customers`` and ``--stats-chain-sales``: small by default, 100,000 and 1,000,000 on demand."""
    option = request.config.getoption
    return int(option("--stats-chain-customers")), int(option("--stats-chain-sales"))


def _differences(incremental: list[Any], full: list[Any], shown: int = 5) -> list[tuple[Any, Any]]:
    """The first few (incremental, full) row pairs that differ; a million-row diff would take pytest ages."""
    pairs = [(a, b) for a, b in zip(incremental, full, strict=False) if a != b][:shown]
    if not pairs and len(incremental) != len(full):
        pairs = [(len(incremental), len(full))]
    return pairs


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_statistics_equal_a_full_recompute(backend, request, seed):
    customers, sales = _chain_size(request)
    rng = random.Random(seed)
    with engine_at(backend.url) as engine, engine.begin() as conn:
        catalog.load(conn, PRODUCTS, NOW)
    _deliver(backend.url, _chain(rng, customers, sales), rng, max_batch=min(max(50, sales // 20), 2 * DEFAULT_CHUNK))
    with engine_at(backend.url) as engine:
        incremental = snapshot(engine)
        with Session(engine) as db:
            merged = db.scalar(select(func.count()).select_from(Customer).where(Customer.merged_into.is_not(None)))
    assert merged > 0, "the generated chain must exercise merges"
    assert sum(len(rows) for rows in incremental.values()) > 0
    full = _full(backend.url)
    for name in full:
        assert not _differences(incremental[name], full[name]), (name, _differences(incremental[name], full[name]))


def test_a_split_recomputes_both_sides(backend):
    with engine_at(backend.url) as engine:
        store(
            engine,
            [
                sale("p1", "2026-11-01T10:00:00+08:00", "10.00", phone=phone(1)),
                sale("p2", "2026-11-02T10:00:00+08:00", "20.00", phone=phone(1)),
                sale("c1", "2026-11-03T10:00:00+08:00", "30.00", card=card(1)),
            ],
        )
        store(engine, [sale("both", "2026-11-04T10:00:00+08:00", "40.00", phone=phone(1), card=card(1))])
        merged = snapshot(engine)["customer_stats"]
        assert [(r[1], r[2]) for r in merged] == [(4, 10000)]
        with Session(engine) as db:
            survivor = merged[0][0]
            merge = db.scalar(select(LedgerEntry.id).where(LedgerEntry.action == "merge"))
            split(db, survivor, merge, now=NOW, operator="test", registry=default_registry())
            db.commit()
        # Both sides are complete when the split commits: segments, triggers and the API read them
        # at once, and no ingest transaction may come for hours.
        assert _marks(engine) == 0
        after = snapshot(engine)
        assert sorted((r[1], r[2]) for r in after["customer_stats"]) == [(2, 3000), (2, 7000)]
    assert _full(backend.url) == after


def _marks(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM recompute_marks")).scalar_one())


def test_removing_an_identifier_leaves_its_customer_complete(backend):
    with engine_at(backend.url) as engine:
        store(engine, [sale("b", "2026-11-04T10:00:00+08:00", "40.00", phone=phone(1), card=card(1))])
        with Session(engine) as db:
            remove_identifier(db, "member_card", card(1), now=NOW, operator="test")
            db.commit()
        assert _marks(engine) == 0
        after = snapshot(engine)
        assert [(r[1], r[2]) for r in after["customer_stats"]] == [(1, 4000)]
    assert _full(backend.url) == after


def test_accepting_a_review_merge_recomputes_a_survivor_left_waiting(backend):
    with engine_at(backend.url) as engine:
        # Three cards with one phone, then a fourth card's customer meets that phone: over the limit, to review.
        store(
            engine,
            [sale(f"a{n}", f"2026-11-0{n}T10:00:00+08:00", "10.00", phone=phone(1), card=card(n)) for n in (1, 2, 3)],
        )
        store(engine, [sale("b1", "2026-11-04T10:00:00+08:00", "20.00", card=card(4))])
        store(engine, [sale("ab", "2026-11-05T10:00:00+08:00", "30.00", phone=phone(1), card=card(4))])
        with Session(engine) as db:
            item = db.scalar(select(ReviewItem).where(ReviewItem.reason == "limit_exceeded"))
            assert item is not None
            item_id, other = item.id, int(item.other_customer_id or 0)
            # The card's customer waits for a recompute (as one a split in a large batch left marked),
            # its statistics not to be trusted until then.
            mark_recompute(db.connection(), [other], NOW, "split")
            db.execute(text("DELETE FROM customer_stats WHERE customer_id = :c"), {"c": other})
            db.commit()
        with Session(engine) as db:
            accept(db, default_registry(), item_id, operator="test", now=NOW)
            db.commit()
        assert _marks(engine) == 0
        after = snapshot(engine)
        assert [(r[1], r[2]) for r in after["customer_stats"]] == [(5, 8000)]
    assert _full(backend.url) == after


def test_an_instant_counts_the_same_whatever_zone_it_comes_in(backend):
    """The step reads local day and time, and stores first and last purchase, from the instant itself."""
    at = datetime(2026, 11, 21, 17, 30, 0, 250, tzinfo=UTC)  # 01:30 on Sunday 22 November in UTC+8
    elsewhere = at.astimezone(timezone(timedelta(hours=-5)))
    payload = {"total": "12.50", "items": [{"sku": "F900"}, {"sku": "X-UNKNOWN"}]}
    with engine_at(backend.url) as engine:
        with engine.begin() as conn:
            catalog.load(conn, PRODUCTS, NOW)
            bulk.insert(
                conn, table(EventCustomer), ("event_pk", "customer_id", "identifier_id"), [(1, 1, 1), (2, 2, 1)]
            )
            statistics.record_sales(
                conn, [(1, "pos.sale", "S001", at, payload), (2, "pos.sale", "S001", elsewhere, payload)]
            )
        rows = snapshot(engine)
    for name in ("customer_stats", "customer_days", "customer_stores", "customer_categories"):
        first, second = ([r[1:] for r in rows[name] if r[0] == c] for c in (1, 2))
        assert first == second and first, name
    with engine_at(backend.url) as engine, Session(engine) as db:
        stats = db.get(CustomerStats, 2)
        assert stats is not None
        assert (stats.first_purchase_at, stats.last_purchase_at, stats.sun_purchases, stats.night_purchases) == (
            at,
            at,
            1,
            1,
        )
        assert db.scalar(select(CustomerDay.day).where(CustomerDay.customer_id == 2)) == date(2026, 11, 22)


def test_store_ids_categories_and_skus_are_stored_as_they_came(backend):
    """Text that means something inside an array literal or JSON (quotes, backslashes, commas, braces, NULL)."""
    odd = 'Odd "quoted", {braced} \\ back\\nslash'  # a catalogue refuses control characters
    products = ["sku,name,category\n", f'NULL,Odd product,"{odd.replace(chr(34), chr(34) * 2)}"\n']
    store_id = 'S"1,{x}\\'
    payload = {"total": "3.00", "items": [{"sku": "NULL"}, {"sku": 'U"{,}\\\nline'}, {"sku": ""}]}
    at = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    with engine_at(backend.url) as engine:
        with engine.begin() as conn:
            catalog.load(conn, products, NOW)
            bulk.insert(conn, table(EventCustomer), ("event_pk", "customer_id", "identifier_id"), [(1, 1, 1)])
            statistics.record_sales(conn, [(1, "pos.sale", store_id, at, payload)])
        rows = snapshot(engine)
    assert [r[:2] for r in rows["customer_stores"]] == [(1, store_id)]
    assert [r[:2] for r in rows["customer_categories"]] == [(1, odd)]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT sku, lines FROM unknown_skus")).all() == [('U"{,}\\\nline', 1)]


@pytest.mark.parametrize("keys", [(1, 3), (1, 900)])
def test_only_the_sales_given_count_whatever_lies_between_their_keys(backend, keys):
    """Owners are read by a range of event keys when the sales' keys are close, by each key otherwise."""
    first, last = keys
    payload = {"total": "5.00", "items": [{"sku": "M1"}]}
    at = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    owners = [(first, 1, 1), (2, 2, 1), (last, 3, 1)]
    with engine_at(backend.url) as engine:
        with engine.begin() as conn:
            catalog.load(conn, PRODUCTS, NOW)
            bulk.insert(conn, table(EventCustomer), ("event_pk", "customer_id", "identifier_id"), owners)
            statistics.record_sales(
                conn, [(first, "pos.sale", "S001", at, payload), (last, "pos.sale", "S002", at, payload)]
            )
        rows = snapshot(engine)
    assert [(r[0], r[1], r[2]) for r in rows["customer_stats"]] == [(1, 1, 500), (3, 1, 500)]
    assert [r[:2] for r in rows["customer_stores"]] == [(1, "S001"), (3, "S002")]
