"""The production migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import json

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from central.db import make_engine
from central.migrate import alembic_config, current_revision, head_revision, upgrade
from central.schema import Base
from tests.central.support import START


def _differences(engine):
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def test_migrated_schema_matches_the_models(backend):
    engine = make_engine(backend.url)
    try:
        assert current_revision(engine) == head_revision()
        assert _differences(engine) == []
        assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
    finally:
        engine.dispose()


def test_the_comparison_notices_a_drift(backend):
    engine = make_engine(backend.url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_events_device_id_seq"))
    try:
        assert [d[0] for d in _differences(engine)] == ["add_index"]
    finally:
        # PostgreSQL's database is shared by the whole session: put the index back.
        with engine.begin() as conn:
            conn.execute(text("CREATE INDEX ix_events_device_id_seq ON events (device_id, seq)"))
        engine.dispose()


def _index_columns(engine, name):
    """(index name, columns) of every whole-table index of a table: indexes, unique constraints, primary key."""
    found = inspect(engine)
    out = [
        (ix["name"], tuple(ix["column_names"]))
        for ix in found.get_indexes(name)
        if not any(key.endswith("_where") for key in ix.get("dialect_options", {}))
    ]
    out += [(uq["name"], tuple(uq["column_names"])) for uq in found.get_unique_constraints(name)]
    primary = found.get_pk_constraint(name)
    if primary["constrained_columns"]:
        out.append((primary["name"] or "primary key", tuple(primary["constrained_columns"])))
    return out


def test_no_index_repeats_the_start_of_another(backend):
    """Each index costs an entry per row written; one whose columns begin another serves no read the other does not."""
    engine = make_engine(backend.url)
    try:
        redundant = [
            (name, ix, columns, other)
            for name in inspect(engine).get_table_names()
            for ix, columns in _index_columns(engine, name)
            for other, longer in _index_columns(engine, name)
            if other != ix and len(longer) > len(columns) and longer[: len(columns)] == columns
        ]
    finally:
        engine.dispose()
    assert redundant == []


def test_upgrade_is_idempotent(backend):
    upgrade(backend.url)
    engine = make_engine(backend.url)
    try:
        assert current_revision(engine) == head_revision() == "0039_revoked_codes_index"
    finally:
        engine.dispose()


def test_sqlite_connection_settings(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x' / 'central.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            # a checkpoint per 20,000 WAL pages, not per 1,000: ingest's commits each dirty thousands
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 20000
            assert conn.exec_driver_sql("PRAGMA journal_size_limit").scalar() == 64 * 1024 * 1024
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1  # asked for, whatever the build
    finally:
        engine.dispose()


def _at_revision(engine, revision, rows_sql):
    """Move ``engine``'s database to ``revision`` (up from nothing, or down from the head) and run ``rows_sql``."""
    empty = current_revision(engine) is None
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        if empty:
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)
        conn.execute(rows_sql)


def test_the_store_rows_of_online_sales_that_named_no_store_are_deleted(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'central.db'}")
    try:
        _at_revision(
            engine,
            "0022_unknown_sku_log",
            text(
                "INSERT INTO customer_stores (customer_id, store_id, purchases, spent)"
                " VALUES (1, '', 2, 11800), (1, 'S001', 1, 1250)"
            ),
        )
        upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT store_id FROM customer_stores")).scalars().all() == ["S001"]
    finally:
        engine.dispose()


def test_stored_names_get_their_search_key_and_the_index_moves_to_it(backend):
    engine = make_engine(backend.url)
    try:
        _at_revision(
            engine,
            "0023_no_store_rows",
            text(
                "INSERT INTO golden_attributes (customer_id, attribute, value, source, verified, observed_at)"
                " VALUES (1, 'name', '丁 佳', 'till', false, '2026-12-01 10:00:00'),"
                " (2, 'name', '張學友', 'import', false, '2026-12-01 10:00:00'),"
                " (2, 'city', '上海', 'import', false, '2026-12-01 10:00:00')"
            ),
        )
        upgrade(engine)
        with engine.connect() as conn:
            keys = conn.execute(text("SELECT value, search_key FROM golden_attributes ORDER BY id")).all()
        assert [tuple(k) for k in keys] == [("丁 佳", "丁佳"), ("張學友", "张学友"), ("上海", None)]
        names = {i["name"] for i in inspect(engine).get_indexes("golden_attributes")}
        assert "ix_golden_attributes_name_key" in names and "ix_golden_attributes_name_c" not in names
        assert not _differences(engine)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM golden_attributes"))
        engine.dispose()


def test_names_that_start_with_a_surname_read_otherwise_are_spelled_again_and_reblocked(backend):
    engine = make_engine(backend.url)
    names = [
        (1, "曾刚", "曾刚", "c"),
        (2, "单于明", "单于明", "c"),
        (3, "單雄信", "单雄信", "d"),
        (4, "张伟", "张伟", "z"),
    ]
    try:
        _at_revision(engine, "0026_name_initials", text("SELECT 1"))
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO golden_attributes (customer_id, attribute, value, source, verified, observed_at,"
                    " search_key, pinyin_key, initials_key)"
                    " VALUES (:c, 'name', :v, 'till', false, '2026-12-01 10:00:00', :k, 'spelled', 'sp')"
                ),
                [{"c": c, "v": v, "k": k} for c, v, k, _ in names],
            )
            conn.execute(
                text("INSERT INTO match_keys (block, customer_id) VALUES (:b, :c)"),
                [{"b": f"1990-01-0{c}|{letter}", "c": c} for c, _, _, letter in names],
            )
        upgrade(engine)
        with engine.connect() as conn:
            spelled = conn.execute(text("SELECT value, pinyin_key, initials_key FROM golden_attributes ORDER BY id"))
            keys = conn.execute(text("SELECT customer_id, block FROM match_keys ORDER BY customer_id")).all()
        # 曾 and 單 (单 folded) read as surnames from now on: spelled again by the job, blocked by their letter;
        # the compound surname 单于 and everyday surnames keep what they had.
        assert [tuple(r) for r in spelled] == [
            ("曾刚", None, None),
            ("单于明", "spelled", "sp"),
            ("單雄信", None, None),
            ("张伟", "spelled", "sp"),
        ]
        assert [tuple(k) for k in keys] == [
            (1, "1990-01-01|z"),
            (2, "1990-01-02|c"),
            (3, "1990-01-03|s"),
            (4, "1990-01-04|z"),
        ]
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM golden_attributes"))
            conn.execute(text("DELETE FROM match_keys"))
        engine.dispose()


_CUSTOMER = (
    "INSERT INTO customers (id, created_at, first_seen_at, last_seen_at, receipts_count, total_spent, version)"
    " VALUES (:id, '2025-01-01 00:00:00', '2025-01-01 00:00:00', '2025-01-01 00:00:00', 0, 0, 1)"
)
_IDENTIFIER = (
    "INSERT INTO identifiers (id, kind, value, customer_id, state, created_at, last_seen_at, partners_total,"
    " partners_today, partners_day) VALUES (:id, :kind, :value, :customer, :state, '2025-01-01 00:00:00', :seen,"
    " 0, 0, '')"
)
# Stored before the normalizers folded full-width characters (central.identity.normalizers.fold).
_OLD_FORMS = [
    (1, "phone", "１３９００００１１１１", 1, "linked"),  # nobody holds +8613900001111: renamed
    (2, "member_card", "ＶＩＰ００４２", 2, "linked"),  # VIP0042 is customer 3's: review, never a merge
    (3, "member_card", "VIP0042", 3, "linked"),
    (4, "phone", "１３９００００２２２２", 4, "linked"),  # customer 4 holds both spellings: folded into one row
    (5, "phone", "+8613900002222", 4, "linked"),
    (6, "email", "ＡＮＮ＠example.com", 5, "linked"),  # ann@example.com was removed for good: removed too
    (7, "email", "ann@example.com", None, "removed"),
    (8, "member_id", "会员１２３", 6, "linked"),  # renamed, still not ASCII
    (9, "loyalty_no", "ＬＯＹ１", 6, "linked"),  # a type this registry does not know: left alone
    (10, "phone", "１２３", 6, "linked"),  # not a phone by today's rules: left alone
]


def _identity_tables(conn):
    return {
        name: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {name} ORDER BY 1")).all()]  # noqa: S608
        for name in ("identifiers", "identity_ledger", "review_items", "event_customers", "customers")
    }


def test_identifiers_stored_in_full_width_are_spelt_as_today_without_merging_anyone(backend):
    """The same person arriving today with the ASCII form finds the customer; a clash goes to review."""
    import importlib

    from central.identity.registry import default_registry

    engine = make_engine(backend.url)
    registry = default_registry()
    try:
        _at_revision(engine, "0027_surname_readings", text("SELECT 1"))
        with engine.begin() as conn:
            conn.execute(text(_CUSTOMER), [{"id": c} for c in range(1, 7)])
            conn.execute(
                text(_IDENTIFIER),
                [
                    {
                        "id": i,
                        "kind": k,
                        "value": v,
                        "customer": c,
                        "state": s,
                        "seen": f"2025-0{9 - i % 9}-01 00:00:00",
                    }
                    for i, k, v, c, s in _OLD_FORMS
                ],
            )
            conn.execute(
                text("INSERT INTO event_customers (event_pk, customer_id, identifier_id) VALUES (:e, :c, :i)"),
                [{"e": 40, "c": 4, "i": 4}, {"e": 41, "c": 4, "i": 5}, {"e": 42, "c": 1, "i": 1}],
            )
        upgrade(engine)
        with engine.connect() as conn:
            values = dict(conn.execute(text("SELECT id, value FROM identifiers")).all())
            owners = dict(conn.execute(text("SELECT id, customer_id FROM identifiers")).all())
            states = dict(conn.execute(text("SELECT id, state FROM identifiers")).all())
            ledger = conn.execute(
                text("SELECT action, rule, identifier_id, customer_id FROM identity_ledger ORDER BY id")
            ).all()
            reviews = conn.execute(
                text("SELECT reason, status, customer_id, other_customer_id, identifier_id FROM review_items")
            ).all()
            events = dict(conn.execute(text("SELECT event_pk, identifier_id FROM event_customers")).all())
            versions = dict(conn.execute(text("SELECT id, version FROM customers")).all())
            merged = conn.execute(text("SELECT count(*) FROM customers WHERE merged_into IS NOT NULL")).scalar()
            last_seen = conn.execute(text("SELECT last_seen_at FROM identifiers WHERE id = 5")).scalar()
            before = _identity_tables(conn)

        assert values[1] == registry.normalize("phone", "13900001111") == "+8613900001111"
        assert (owners[1], states[1]) == (1, "linked")
        assert values[8] == registry.normalize("member_id", "会员123") == "会员123"
        # Two customers holding one card in two spellings: both kept as they were, and asked about.
        assert (values[2], owners[2], values[3], owners[3]) == ("ＶＩＰ００４２", 2, "VIP0042", 3)
        assert [tuple(r) for r in reviews] == [("respelled_value", "open", 2, 3, 2)]
        assert merged == 0
        # One customer, one phone in two spellings: the old row is unlinked, its events move to the other.
        assert (owners[4], owners[5], states[4]) == (None, 4, "linked")
        assert events == {40: 5, 41: 5, 42: 1}
        assert "2025-05-01" in str(last_seen)  # the later sighting of the two spellings
        # The removal of ann@example.com covers the old spelling too.
        assert (owners[6], states[6]) == (None, "removed")
        assert [tuple(r) for r in ledger] == [("unlink", "respelled", 4, 4), ("unlink", "removed", 6, 5)]
        assert (versions[4], versions[5], versions[1]) == (2, 2, 1)
        assert (values[9], values[10]) == ("ＬＯＹ１", "１２３")

        # Idempotent: run again, nothing changes.
        migration = importlib.import_module("central.migrations.versions.0028_respell_identifiers")
        with engine.begin() as conn:
            counts = migration.respell(conn, registry, START, batch=3)
            assert _identity_tables(conn) == before
        assert counts["renamed"] == 0
    finally:
        with engine.begin() as conn:
            for name in ("review_items", "identity_ledger", "event_customers", "recompute_marks", "identifiers"):
                conn.execute(text(f"DELETE FROM {name}"))  # noqa: S608
            conn.execute(text("DELETE FROM customers"))
        engine.dispose()


_ORDER_EVENT = (
    "INSERT INTO events (id, device_id, event_id, seq, kind, store_id, observed_at, received_at, payload, batch_id)"
    " VALUES (:id, :device, :event, 0, 'order.online', '', :at, :at, :payload, 'b')"
)


def test_online_orders_already_stored_are_kept_once_and_their_customers_marked(backend):
    engine = make_engine(backend.url)
    try:
        _at_revision(engine, "0029_receipt_reprints", text("SELECT 1"))
        orders = [
            (1, "source:shop", "A", "paid", "2026-11-01 08:00:00", "30.00"),
            (2, "source:shop", "A", "completed", "2026-11-03 08:00:00", "30.00"),
            (3, "source:shop", "B", "paid", "2026-11-02 08:00:00", "45.00"),
            (4, "source:shop", "B", "refunded", "2026-11-04 08:00:00", "45.00"),
            (5, "source:app", "A", "paid", "2026-11-02 09:00:00", "12.50"),
        ]
        with engine.begin() as conn:
            conn.execute(
                text(_ORDER_EVENT),
                [
                    {
                        "id": pk,
                        "device": device,
                        "event": f"e{pk}",
                        "at": at,
                        "payload": json.dumps({"order_no": number, "status": status, "total": total}),
                    }
                    for pk, device, number, status, at, total in orders
                ],
            )
            conn.execute(
                text("INSERT INTO event_customers (event_pk, customer_id, identifier_id) VALUES (:e, :c, 1)"),
                [{"e": pk, "c": 7 if pk < 5 else 8} for pk in range(1, 6)],
            )
        upgrade(engine)
        with engine.connect() as conn:
            kept = conn.execute(
                text(
                    "SELECT device_id, order_no, event_pk, status, status_pk, counted, events, total FROM online_orders"
                    " ORDER BY device_id, order_no"
                )
            ).all()
            marks = conn.execute(text("SELECT customer_id, reason FROM recompute_marks")).all()
        assert [(*r[:5], bool(r[5]), r[6], f"{float(r[7]):.2f}") for r in kept] == [
            ("source:app", "A", 5, "paid", 5, True, 1, "12.50"),
            ("source:shop", "A", 1, "completed", 2, True, 2, "30.00"),
            ("source:shop", "B", 3, "refunded", 4, False, 2, "45.00"),
        ]
        # Customer 7 held status updates and a refunded order: recounted by the next ingest.
        assert [tuple(m) for m in marks] == [(7, "online_orders")]
    finally:
        engine.dispose()


_RECEIPT_EVENT = (
    "INSERT INTO events (id, device_id, event_id, seq, kind, store_id, observed_at, received_at, payload, batch_id)"
    " VALUES (:id, :device, :event, 0, 'pos.receipt', :store, '2026-11-01 08:00:00', '2026-11-01 08:00:00', '{}', 'b')"
)
_RECEIPT = (
    "INSERT INTO receipts (id, event_pk, device_id, store_id, receipt_no, total, observed_at, customer_id, register,"
    " reprint_of, flag) VALUES (:id, :id, :device, :store, :no, :total, '2026-11-01 08:00:00', :cid, '', :of, :flag)"
)


def test_store_receipts_from_sources_already_stored_become_till_receipts(backend):
    engine = make_engine(backend.url)
    try:
        _at_revision(engine, "0034_two_step", text("SELECT 1"))
        receipts = [  # id, sender, store, total, customer (agents' only), reprint_of, flag
            (1, "agent-1", "S001", "10.00", 7, None, None),
            (2, "source:pos-backfill", "S001", "20.00", None, None, None),
            (3, "source:pos-backfill", "S001", "99.99", None, 2, "reprint_total_differs"),
            (4, "source:shop", "", "5.00", None, None, None),
            (5, "source:pos-backfill", "S002", "30.00", None, None, None),
        ]
        with engine.begin() as conn:
            conn.execute(
                text(_CUSTOMER),
                [{"id": 7}, {"id": 8}],
            )
            conn.execute(
                text(_RECEIPT_EVENT),
                [{"id": r[0], "device": r[1], "event": f"e{r[0]}", "store": r[2]} for r in receipts],
            )
            conn.execute(
                text(_RECEIPT),
                [
                    {"id": i, "device": d, "store": s, "no": f"R{i}", "total": t, "cid": c, "of": of, "flag": f}
                    for i, d, s, t, c, of, f in receipts
                ],
            )
            conn.execute(
                text("INSERT INTO event_customers (event_pk, customer_id, identifier_id) VALUES (:e, :c, 1)"),
                [{"e": e, "c": c} for e, c in ((1, 7), (2, 7), (3, 7), (4, 7), (5, 8))],
            )
        upgrade(engine)
        with engine.connect() as conn:
            linked = conn.execute(text("SELECT id, customer_id FROM receipts ORDER BY id")).all()
            figures = conn.execute(text("SELECT id, receipts_count, total_spent FROM customers ORDER BY id")).all()
        # The copy and the receipt naming no store stay without a customer.
        assert [tuple(r) for r in linked] == [(1, 7), (2, 7), (3, None), (4, None), (5, 8)]
        assert [(i, n, f"{float(s):.2f}") for i, n, s in figures] == [(7, 2, "30.00"), (8, 1, "30.00")]
    finally:
        engine.dispose()
