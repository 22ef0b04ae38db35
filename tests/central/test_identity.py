"""The identity step: phones and member cards on receipts become customers, merged deterministically."""

from __future__ import annotations

import threading
from datetime import timedelta

from central.customers.models import Receipt
from central.identity.models import Customer, Identifier, LedgerEntry
from central.ingest.models import Event
from tests.central.support import START, Agent, table_rows, token_for


def live_customers(app):
    return [c for c in table_rows(app, Customer) if c.merged_into is None]


def merges(app):
    return [e for e in table_rows(app, LedgerEntry) if e.action == "merge"]


def event_pk(app, event_id):
    return next(e.id for e in table_rows(app, Event) if e.event_id == event_id)


def identifiers(app):
    return {(i.kind, i.value): i.customer_id for i in table_rows(app, Identifier)}


def test_same_phone_across_events_and_batches_is_one_customer(app, client, agent):
    agent.send(
        client,
        [
            agent.receipt("R1", "10.00", phone="13812345678", observed_at=START),
            agent.receipt("R2", "2.50", phone="+86 138-1234-5678", observed_at=START + timedelta(minutes=5)),
        ],
    )
    agent.send(client, [agent.receipt("R3", "1.25", phone="0086 13812345678", observed_at=START - timedelta(days=1))])
    (customer,) = table_rows(app, Customer)
    assert (customer.receipts_count, str(customer.total_spent)) == (3, "13.75")
    assert customer.first_seen_at == START - timedelta(days=1)
    assert customer.last_seen_at == START + timedelta(minutes=5)
    assert identifiers(app) == {("phone", "+8613812345678"): customer.id}
    assert {r.customer_id for r in table_rows(app, Receipt)} == {customer.id}


def test_receipts_without_usable_identifiers_have_no_customer(app, client, agent):
    agent.send(client, [agent.receipt("R1"), agent.receipt("R2", phone="12345"), agent.receipt("R3", card="x!")])
    assert [r.customer_id for r in table_rows(app, Receipt)] == [None, None, None]
    assert table_rows(app, Customer) == []
    assert table_rows(app, Identifier) == []


def test_phone_and_card_on_one_receipt_link_later_receipts(app, client, agent):
    agent.send(client, [agent.receipt("R1", "5.00", phone="13900001111", card="vip 0042")])
    agent.send(client, [agent.receipt("R2", "6.00", card="VIP-0042"), agent.receipt("R3", "7.00", phone="13900001111")])
    (customer,) = table_rows(app, Customer)
    assert identifiers(app) == {("phone", "+8613900001111"): customer.id, ("member_card", "VIP0042"): customer.id}
    assert (customer.receipts_count, str(customer.total_spent)) == (3, "18.00")


def test_a_receipt_naming_two_customers_merges_them_into_the_oldest(app, client, agent, clock):
    agent.send(client, [agent.receipt("R1", "10.00", phone="13800000001")])  # customer A
    agent.send(client, [agent.receipt("R2", "20.00", card="CARD0002", observed_at=START - timedelta(hours=1))])
    a, b = table_rows(app, Customer)
    assert a.id < b.id
    clock.advance(minutes=1)
    bridge = agent.receipt("R3", "1.00", phone="13800000001", card="CARD0002", observed_at=START + timedelta(hours=1))
    reply = agent.send(client, [bridge])
    assert reply["accepted"] == [bridge.event_id]

    kept, merged = table_rows(app, Customer)
    assert (kept.id, merged.id) == (a.id, b.id)
    assert (kept.merged_into, merged.merged_into) == (None, a.id)
    assert (kept.receipts_count, str(kept.total_spent)) == (3, "31.00")
    assert (kept.first_seen_at, kept.last_seen_at) == (START - timedelta(hours=1), START + timedelta(hours=1))
    assert set(identifiers(app).values()) == {a.id}
    assert {r.customer_id for r in table_rows(app, Receipt)} == {a.id}
    (entry,) = merges(app)
    assert (entry.customer_id, entry.other_customer_id, entry.rule) == (a.id, b.id, "shared_identifier")
    assert entry.event_pk == event_pk(app, bridge.event_id)
    assert entry.at == clock.now


def test_within_one_batch_receipts_chain_into_one_customer(app, client, agent):
    agent.send(
        client,
        [
            agent.receipt("R1", phone="13800000001"),
            agent.receipt("R2", card="CARD0001"),
            agent.receipt("R3", phone="13800000001", card="CARD0001"),  # joins the two new ones
            agent.receipt("R4", card="CARD0001"),
        ],
    )
    (customer,) = live_customers(app)
    assert customer.receipts_count == 4
    # The card's customer was created and merged in the same batch: the ledger still says so.
    (entry,) = merges(app)
    assert (entry.customer_id, entry.other_customer_id) == (customer.id, customer.id + 1)


def test_three_customers_merge_into_the_lowest_id(app, client, agent):
    agent.send(client, [agent.receipt("R1", phone="13800000003")])
    agent.send(client, [agent.receipt("R2", phone="13800000002")])
    agent.send(client, [agent.receipt("R3", card="CARD0001")])
    first, second, third = (c.id for c in table_rows(app, Customer))
    agent.send(
        client,
        [
            agent.receipt("R4", phone="13800000002", card="CARD0001"),
            agent.receipt("R5", phone="13800000003", card="CARD0001"),
        ],
    )
    (survivor,) = live_customers(app)
    assert survivor.id == first
    assert survivor.receipts_count == 5
    assert sorted((e.customer_id, e.other_customer_id) for e in merges(app)) == [
        (first, second),
        (second, third),
    ]
    assert {c.merged_into for c in table_rows(app, Customer) if c.id != first} == {first}


def test_replaying_a_merge_changes_nothing(app, client, agent):
    agent.send(client, [agent.receipt("R1", phone="13800000001")])
    agent.send(client, [agent.receipt("R2", card="CARD0002")])
    bridge = [agent.receipt("R3", phone="13800000001", card="CARD0002")]
    agent.send(client, bridge)
    before = (table_rows(app, Customer), table_rows(app, LedgerEntry), table_rows(app, Identifier))
    assert agent.send(client, bridge)["duplicate"] == [bridge[0].event_id]
    assert (table_rows(app, Customer), table_rows(app, LedgerEntry), table_rows(app, Identifier)) == before


def test_two_stores_racing_on_a_new_phone_make_one_customer(app):
    agents = []
    for store in ("S001", "S002", "S003", "S004"):
        agent = Agent(store_id=store)
        assert agent.enroll(app.test_client(), token_for(app, store)).status_code == 201
        agents.append(agent)
    start = threading.Barrier(len(agents))
    replies: list[dict] = []

    def send(agent: Agent) -> None:
        events = [agent.receipt(f"{agent.store_id}-{i}", "1.00", phone="13700001234") for i in range(20)]
        client = app.test_client()
        start.wait()
        replies.append(agent.send(client, events))

    threads = [threading.Thread(target=send, args=(a,)) for a in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(r["accepted"]) for r in replies) == [20, 20, 20, 20]
    (customer,) = table_rows(app, Customer)
    assert (customer.receipts_count, str(customer.total_spent)) == (80, "80.00")


def _send_after(app, start: threading.Barrier, agent: Agent, events: list) -> None:
    client = app.test_client()
    start.wait()
    agent.send(client, events)


def test_a_merge_racing_with_new_receipts_leaves_nothing_behind(app):
    agents = []
    for store in ("S001", "S002", "S003"):
        agent = Agent(store_id=store)
        assert agent.enroll(app.test_client(), token_for(app, store)).status_code == 201
        agents.append(agent)
    bridge, phone_side, card_side = agents
    for round_no in range(3):
        phone, card = f"137000{round_no}1234", f"CARD000{round_no}"
        phone_side.send(app.test_client(), [phone_side.receipt(f"P{round_no}", "1.00", phone=phone)])
        card_side.send(app.test_client(), [card_side.receipt(f"C{round_no}", "1.00", card=card)])
        batches = [
            (bridge, [bridge.receipt(f"B{round_no}", "1.00", phone=phone, card=card)]),
            (phone_side, [phone_side.receipt(f"P{round_no}-{i}", "1.00", phone=phone) for i in range(30)]),
            (card_side, [card_side.receipt(f"C{round_no}-{i}", "1.00", card=card) for i in range(30)]),
        ]
        start = threading.Barrier(len(batches))
        threads = [threading.Thread(target=_send_after, args=(app, start, *batch)) for batch in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    live = {c.id: c for c in live_customers(app)}
    assert len(live) == 3
    receipts = table_rows(app, Receipt)
    assert {r.customer_id for r in receipts} == set(live)
    for customer in live.values():
        mine = [r for r in receipts if r.customer_id == customer.id]
        assert customer.receipts_count == len(mine) == 63
        assert customer.total_spent == sum(r.total for r in mine)
    assert set(identifiers(app).values()) == set(live)
