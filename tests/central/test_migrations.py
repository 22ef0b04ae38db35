"""The production migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from central.db import make_engine
from central.migrate import alembic_config, current_revision, head_revision, upgrade
from central.schema import Base


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
        assert current_revision(engine) == head_revision() == "0027_surname_readings"
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
