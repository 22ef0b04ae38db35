"""resolve() against a real database: conflicts, over-merge guards, timing, tombstones, splits, rebuild."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.identity import ledger, split
from central.identity.models import Customer, Identifier, LedgerEntry, ReviewItem
from central.identity.registry import default_registry, parse_registry
from central.identity.resolve import resolve
from tests.central.identity_support import (
    engine_for,
    event_owner,
    facts,
    live_customers,
    open_reviews,
    owner_of,
    partition,
)
from tests.central.support import START, collector_passes

NOW = START + timedelta(days=400)


@pytest.fixture
def db(backend) -> Iterator[Session]:
    with engine_for(backend.url) as engine, Session(engine) as session:
        yield session


def run(db, fs, **kwargs):
    result = resolve(db, fs, NOW, **kwargs)
    db.commit()
    return result


def assert_rebuild_matches(db):
    found = ledger.rebuild(db)
    db.rollback()
    assert (found.identifier_mismatches, found.customer_mismatches) == (0, 0)


def test_a_member_signup_then_receipts_by_phone_and_card(db):
    first = run(db, facts(db, {"member_id": "M1", "phone": "13812345678", "member_card": "vip-0042"}))
    later = run(db, facts(db, {"phone": "+86 138 1234 5678"}, {"member_card": "VIP0042"}))
    (customer,) = live_customers(db)
    assert first.customer_ids == [customer] and later.customer_ids == [customer, customer]
    assert partition(db) == {frozenset({("member_id", "M1"), ("phone", "+8613812345678"), ("member_card", "VIP0042")})}
    assert_rebuild_matches(db)


def test_two_member_ids_never_merge_and_go_to_review(db):
    run(db, facts(db, {"member_id": "M1", "phone": "13812345678"}))
    run(db, facts(db, {"member_id": "M2", "member_card": "CARD2222"}))
    result = run(db, facts(db, {"member_card": "CARD2222", "phone": "13812345678"}))
    assert len(live_customers(db)) == 2
    (item,) = open_reviews(db)
    assert item.ReviewItem.reason == "unique_conflict"
    assert result.reviewed == 1
    # The card (higher priority than the phone) decided which customer the event belongs to.
    assert result.customer_ids == [owner_of(db, "member_card", "CARD2222")]
    assert_rebuild_matches(db)


def test_a_staff_phone_typed_for_500_customers_links_none_of_them(db):
    staff = "13912340000"
    batch = [{"member_card": f"C{n:05d}", "phone": staff} for n in range(500)]
    result = run(db, facts(db, *batch[:250]))
    run(db, facts(db, *batch[250:]))
    assert len(live_customers(db)) == 500
    assert all(len(group) == 1 for group in partition(db))
    assert owner_of(db, "phone", "+86" + staff) is None
    state = db.scalar(select(Identifier.state).where(Identifier.value == "+86" + staff))
    assert state == "suspicious"
    reviews = [r.ReviewItem for r in open_reviews(db)]
    assert [r.reason for r in reviews if r.reason == "suspicious_value"] == ["suspicious_value"]
    assert len(set(result.customer_ids)) == 250
    assert_rebuild_matches(db)


def test_a_counter_tablet_device_hash_joins_nobody(db):
    tablet = "ab12cd34ef56ab78"
    batch = [{"phone": f"1391234{n:04d}", "device_hash": tablet} for n in range(500)]
    run(db, facts(db, *batch))
    assert len(live_customers(db)) == 500
    assert owner_of(db, "device_hash", tablet) is None
    assert any(r.ReviewItem.reason == "suspicious_value" for r in open_reviews(db))
    assert_rebuild_matches(db)


def test_a_device_hash_attaches_but_never_joins_two(db):
    run(db, facts(db, {"phone": "13912341111", "device_hash": "feedbeef0001"}))
    run(db, facts(db, {"phone": "13912342222", "device_hash": "feedbeef0001"}))
    assert len(live_customers(db)) == 2
    assert owner_of(db, "device_hash", "feedbeef0001") == owner_of(db, "phone", "+8613912341111")
    # A device alone decides nothing.
    assert run(db, facts(db, {"device_hash": "feedbeef0001"})).customer_ids == [None]


def test_blocked_and_placeholder_values_link_nothing(db):
    result = run(
        db,
        facts(db, {"phone": "13800138000"}, {"phone": "13888888888"}, {"member_card": "0"}, {"email": "null"}),
    )
    assert result.customer_ids == [None, None, None, None]
    assert result.unusable == {"blocked": 1, "same_digits": 1, "placeholder": 2}
    assert live_customers(db) == []


def test_staff_phones_from_the_registry_are_blocked(db):
    registry = parse_registry('[blocked]\nstaff_phones = ["139-1234-9999"]\n')
    result = run(db, facts(db, {"phone": "13912349999"}), registry=registry)
    assert result.customer_ids == [None] and result.unusable == {"staff_phone": 1}


def test_a_recycled_phone_moves_to_the_newer_unique_owner(db):
    old = facts(db, {"member_id": "OLD", "phone": "13912345670"}, at=START)
    run(db, old)
    new = facts(db, {"member_id": "NEW", "phone": "13912345670"}, at=START + timedelta(days=200))
    result = run(db, new)
    old_owner = db.scalar(select(Identifier.customer_id).where(Identifier.value == "OLD"))
    assert result.customer_ids[0] != old_owner
    assert owner_of(db, "phone", "+8613912345670") == result.customer_ids[0]
    # Past purchases stay with the old owner; the next receipt by phone goes to the new one.
    assert event_owner(db, old[0].event_pk) == old_owner
    receipt = run(db, facts(db, {"phone": "13912345670"}, at=START + timedelta(days=201)))
    assert receipt.customer_ids == result.customer_ids
    assert [r.ReviewItem.reason for r in open_reviews(db)] == ["reassigned"]
    assert_rebuild_matches(db)


def test_a_recycled_phone_moves_the_same_when_both_owners_come_in_one_batch(db):
    """A backfill chunk may hold the old owner's last use and the new owner's signup together."""
    both = facts(
        db,
        {"member_id": "OLD", "phone": "13912345670"},
        {"member_id": "NEW", "phone": "13912345670"},
        {"phone": "13912345670"},
        at=START,
        step=timedelta(days=200),
    )
    result = run(db, both)
    old_owner, new_owner, receipt = result.customer_ids
    assert old_owner != new_owner == receipt == owner_of(db, "phone", "+8613912345670")
    assert [r.ReviewItem.reason for r in open_reviews(db)] == ["reassigned"]
    assert_rebuild_matches(db)


def test_a_phone_in_recent_use_is_not_taken_by_another_member(db):
    run(db, facts(db, {"member_id": "OLD", "phone": "13912345670"}, at=START))
    result = run(db, facts(db, {"member_id": "NEW", "phone": "13912345670"}, at=START + timedelta(days=10)))
    assert owner_of(db, "phone", "+8613912345670") != result.customer_ids[0]
    assert [r.ReviewItem.reason for r in open_reviews(db)] == ["unique_conflict"]


def test_a_limit_stops_the_fourth_card(db):
    run(db, facts(db, {"member_id": "M1", "member_card": "CARD0001"}))
    run(db, facts(db, {"member_id": "M1", "member_card": "CARD0002"}, {"member_id": "M1", "member_card": "CARD0003"}))
    run(db, facts(db, {"member_id": "M1", "member_card": "CARD0004"}))
    (customer,) = live_customers(db)
    assert owner_of(db, "member_card", "CARD0004") is None
    assert [r.ReviewItem.reason for r in open_reviews(db)] == ["limit_exceeded"]
    assert {owner_of(db, "member_card", f"CARD000{n}") for n in (1, 2, 3)} == {customer}


def test_wechat_openids_are_scoped_per_app(db):
    run(db, facts(db, {"wechat_openid": "oAbCdEfGhIjKlMnOp123"}, app_id="wxmini"))
    run(db, facts(db, {"wechat_openid": "oAbCdEfGhIjKlMnOp123"}, app_id="wxoffice"))
    assert len(live_customers(db)) == 2
    assert owner_of(db, "wechat_openid", "wxmini:oAbCdEfGhIjKlMnOp123") is not None
    missing = run(db, facts(db, {"wechat_openid": "oAbCdEfGhIjKlMnOp123"}))
    assert missing.unusable == {"missing_app_id": 1}


def test_a_removed_identifier_is_not_reattached_by_a_late_upload(db):
    signup = facts(db, {"member_id": "M1", "phone": "13912345601"}, at=START)
    run(db, signup)
    customer = owner_of(db, "member_id", "M1")
    assert split.remove_identifier(db, "phone", "+8613912345601", now=NOW, operator="alice") == customer
    db.commit()
    # An agent offline for a week sends receipts naming the phone, with and without the member id.
    late = facts(db, {"member_id": "M1", "phone": "13912345601"}, {"phone": "13912345601"}, at=NOW - timedelta(days=7))
    result = run(db, late)
    assert result.customer_ids == [customer, None]
    assert owner_of(db, "phone", "+8613912345601") is None
    assert result.unusable == {}
    assert_rebuild_matches(db)


def test_split_undoes_a_merge_and_the_same_evidence_merges_again(db):
    run(db, facts(db, {"member_card": "CARDAAAA", "phone": "13912345611"}))
    a_receipt = facts(db, {"member_card": "CARDAAAA"})
    run(db, a_receipt)
    run(db, facts(db, {"member_card": "CARDBBBB", "email": "b@example.com"}))
    b_receipt = facts(db, {"email": "b@example.com"})
    run(db, b_receipt)
    before = partition(db)
    bridge = {"phone": "13912345611", "email": "b@example.com"}
    run(db, facts(db, bridge))
    merged = partition(db)
    assert len(merged) == 1
    (survivor,) = live_customers(db)
    merge_row = db.scalar(select(LedgerEntry.id).where(LedgerEntry.action == "merge"))
    result = split.split(db, survivor, merge_row, now=NOW, operator="alice")
    db.commit()
    assert partition(db) == before
    assert len(result.customers) == 2
    assert event_owner(db, a_receipt[0].event_pk) != event_owner(db, b_receipt[0].event_pk)
    assert db.scalar(select(Customer.merged_into).where(Customer.id == result.customers[1])) is None
    assert_rebuild_matches(db)
    ledger = db.scalar(select(func.count()).select_from(LedgerEntry))
    for customer in result.customers:  # undoing it again changes nothing and says so
        with pytest.raises(split.SplitError, match=f"ledger row {merge_row} was already undone by ledger row"):
            split.split(db, customer, merge_row, now=NOW, operator="alice")
    assert db.scalar(select(func.count()).select_from(LedgerEntry)) == ledger
    run(db, facts(db, bridge))
    assert partition(db) == merged
    assert_rebuild_matches(db)


def test_split_refuses_what_it_cannot_undo(db):
    run(db, facts(db, {"member_card": "CARDAAAA"}))
    (customer,) = live_customers(db)
    founding = db.scalar(select(LedgerEntry.id))
    with pytest.raises(split.SplitError, match=r"first identifier and joined no one; only a merge, or a link"):
        split.split(db, customer, founding, now=NOW, operator="alice")
    with pytest.raises(split.SplitError, match="no customer"):
        split.split(db, 999, founding, now=NOW, operator="alice")


def test_review_items_are_not_duplicated(db):
    run(db, facts(db, {"member_id": "M1", "phone": "13812345678"}))
    run(db, facts(db, {"member_id": "M2", "member_card": "CARD2222"}))
    for _ in range(3):
        run(db, facts(db, {"member_card": "CARD2222", "phone": "13812345678"}))
    assert len(list(db.execute(select(ReviewItem)))) == 1


def test_the_default_registry_normalizes_for_import_and_export():
    registry = default_registry()
    assert registry.normalize("phone", "0086 138-1234-5678") == "+8613812345678"
    assert registry.normalize("phone", "+852 9123 4567") == "+85291234567"
    assert registry.normalize("email", " Zhang.San@Example.COM ") == "zhang.san@example.com"
    assert registry.normalize("wechat_openid", "oAbCdEfGhIjKlMnOp123", "wxapp") == "wxapp:oAbCdEfGhIjKlMnOp123"
    assert registry.check("phone", "12345678901") == (None, "invalid")
    assert registry.check("member_card", "123456") == (None, "sequential")
    assert registry.check("fax", "1") == (None, "unknown_type")


def _resolve_with_retry(engine, sets, ex: int) -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    from central.errors import ConcurrentChange
    from central.ingest.batches import MAX_ATTEMPTS, _is_retryable

    with Session(engine) as db:
        for attempt in range(1, MAX_ATTEMPTS * 4 + 1):
            try:
                resolve(db, facts(db, *sets), NOW)
                db.commit()
                return
            except (IntegrityError, OperationalError, ConcurrentChange) as exc:
                db.rollback()
                if not _is_retryable(exc) or attempt == MAX_ATTEMPTS * 4:
                    raise


def test_concurrent_batches_naming_the_same_people_lose_nothing(backend):
    import threading

    people = 12
    shapes = [("member_card", "phone"), ("phone", "email"), ("email",), ("member_card",), ("email", "member_card")]

    def ids(person: int, kinds: tuple[str, ...]) -> dict[str, str]:
        values = {"member_card": f"CC{person:04d}", "phone": f"1391000{person:04d}", "email": f"p{person}@example.com"}
        return {k: values[k] for k in kinds}

    devices = 4
    plans = [
        [[ids(p, shapes[(p + d + b) % len(shapes)]) for p in range(people)] for b in range(5)] for d in range(devices)
    ]
    start = threading.Barrier(devices)
    errors: list[BaseException] = []
    with engine_for(backend.url) as engine:

        def device(d: int) -> None:
            try:
                start.wait()
                for sets in plans[d]:
                    _resolve_with_retry(engine, sets, d)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=device, args=(d,)) for d in range(devices)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
        assert not any(t.is_alive() for t in threads), "a batch never finished"
        assert errors == []
        with Session(engine) as db:
            groups = partition(db)
            assert len(groups) == people
            assert all(len(g) == 3 for g in groups)
            from central.identity.models import EventCustomer

            owners = list(db.execute(select(EventCustomer.customer_id)))
            assert len(owners) == devices * 5 * people
            assert {o[0] for o in owners} == set(live_customers(db))
            assert_rebuild_matches(db)


def test_the_readme_registry_example_is_valid():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Identity") :]
    example = re.search(r"```toml\n(.*?)```", section, re.S)
    assert example
    registry = parse_registry(example.group(1), "README.md")
    assert registry.types["loyalty_no"].unique and registry.types["phone"].limit == 2
    assert registry.check("phone", "17055501234") == (None, "blocked")
    assert registry.check("phone", "021-62345678") == (None, "staff_phone")
    defaults = default_registry()  # the example's [matching] shows the defaults
    assert registry.placeholder_birthdays == defaults.placeholder_birthdays
    assert (registry.block_limit, registry.suggestions_per_customer) == (30, 3)
    assert (defaults.block_limit, defaults.suggestions_per_customer) == (30, 3)


def test_rebuild_repairs_tables_that_drifted_from_the_ledger(db):
    from sqlalchemy import update

    run(db, facts(db, {"member_card": "CARDAAAA", "phone": "13912345611"}, {"member_card": "CARDBBBB"}))
    run(db, facts(db, {"member_card": "CARDBBBB", "phone": "13912345611"}))
    first, second = db.scalars(select(Customer.id).order_by(Customer.id)).all()
    db.execute(update(Customer).where(Customer.id == second).values(merged_into=None))
    db.execute(update(Identifier).where(Identifier.value == "CARDAAAA").values(customer_id=second))
    db.commit()
    found = ledger.rebuild(db, apply=True)
    db.commit()
    assert (found.identifier_mismatches, found.customer_mismatches) == (1, 1)
    assert_rebuild_matches(db)
    assert owner_of(db, "member_card", "CARDAAAA") == first


def test_a_household_phone_meeting_the_same_other_member_again_is_not_suspicious(db):
    run(db, facts(db, {"member_id": "HUSBAND", "phone": "13912347001"}))
    run(db, facts(db, {"member_id": "WIFE", "member_card": "CARDWIFE"}))
    # The wife gives her husband's phone at the till, day after day.
    for day in range(60):
        run(db, facts(db, {"member_card": "CARDWIFE", "phone": "13912347001"}, at=START + timedelta(days=day)))
    husband = db.scalar(select(Identifier.customer_id).where(Identifier.value == "HUSBAND"))
    assert owner_of(db, "phone", "+8613912347001") == husband
    assert [r.ReviewItem.reason for r in open_reviews(db)] == ["unique_conflict"]
    assert len(live_customers(db)) == 2


def test_a_batch_is_resolved_without_cycle_collections(db):
    """A batch's short-lived objects do not set off the cycle collector while it is resolved (its
    passes walk every long-lived object of the process); the collector is back on afterwards."""
    batch = facts(db, *({"phone": f"1381234{n:04d}", "member_card": f"CARD{n:04d}"} for n in range(300)))
    # Which generation the pass after the batch examines depends on the passes before it (earlier
    # tests'); a full collection first makes it the youngest.
    gc.collect()
    with collector_passes() as passes:
        result = resolve(db, batch, NOW)
    db.commit()
    # At most the one pass the first allocation after the batch sets off, over what the batch kept.
    assert result.created == 300 and passes in ([], [0]) and gc.isenabled()
