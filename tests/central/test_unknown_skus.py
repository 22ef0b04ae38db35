"""Unknown SKUs: logged by ingest, folded into ``unknown_skus`` in bulk, counted exactly by the catalogue's load."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from alembic import command
from sqlalchemy import text

from central import bulk
from central.customers import catalog, rebuild, statistics
from central.identity.models import EventCustomer
from central.migrate import alembic_config, upgrade
from central.models import table
from tests.central.customer_support import NOW, PRODUCTS, engine_at

AT = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def _sale(pk: int, *skus: str) -> tuple[int, str, str, datetime, dict[str, Any]]:
    return (pk, "pos.sale", "S001", AT, {"total": "3.00", "items": [{"sku": s} for s in skus]})


def _record(engine: Any, first_pk: int, sales: list[tuple[str, ...]]) -> None:
    """One ingest transaction's sales, each owned by customer 1."""
    with engine.begin() as conn:
        pks = range(first_pk, first_pk + len(sales))
        bulk.insert(conn, table(EventCustomer), ("event_pk", "customer_id", "identifier_id"), [(k, 1, 1) for k in pks])
        statistics.record_sales(conn, [_sale(k, *skus) for k, skus in zip(pks, sales, strict=True)])


def _rows(engine: Any, name: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT sku, lines FROM {name} ORDER BY sku, lines"))]  # noqa: S608


def test_ingest_logs_unknown_skus_instead_of_writing_unknown_skus(backend):
    """A transaction appends one log row per unknown SKU; ``unknown_skus`` is left alone until a fold."""
    with engine_at(backend.url) as engine:
        with engine.begin() as conn:
            catalog.load(conn, PRODUCTS, NOW)
        _record(engine, 1, [("M1", "X1", "X1"), ("X2",)])
        _record(engine, 3, [("X1",)])
        assert _rows(engine, "unknown_skus") == []
        assert _rows(engine, "unknown_sku_sightings") == [("X1", 1), ("X1", 2), ("X2", 1)]
        with engine.begin() as conn:
            assert statistics.fold_unknown_skus(conn) is True
        assert _rows(engine, "unknown_skus") == [("X1", 3), ("X2", 1)]
        assert _rows(engine, "unknown_sku_sightings") == []
        _record(engine, 4, [("X2", "X3")])
        with engine.begin() as conn:
            statistics.fold_unknown_skus(conn)
        assert _rows(engine, "unknown_skus") == [("X1", 3), ("X2", 2), ("X3", 1)]


def test_the_catalogue_load_counts_logged_skus_and_takes_the_known_ones_off(backend):
    with engine_at(backend.url) as engine:
        _record(engine, 1, [("F900", "X1"), ("X1", "X2")])
        with engine.begin() as conn:
            report = catalog.load(conn, PRODUCTS, NOW)
        # F900 is in the catalogue now: off the list; X1 and X2 counted with their lines.
        assert (report.newly_known, report.unknown_skus, report.unknown_lines) == (1, 2, 3)
        assert _rows(engine, "unknown_skus") == [("X1", 2), ("X2", 1)]
        assert _rows(engine, "unknown_sku_sightings") == []


def test_ingest_folds_the_log_each_time_it_grows_by_fold_rows(backend, monkeypatch):
    """The log never holds much more than FOLD_ROWS rows; the log and the table together hold every line."""
    monkeypatch.setattr(statistics, "FOLD_ROWS", 5)
    lines: dict[str, int] = {}
    with engine_at(backend.url) as engine:
        for n in range(12):
            skus = tuple(f"X{(n * 3 + i) % 7}" for i in range(3))
            for sku in skus:
                lines[sku] = lines.get(sku, 0) + 1
            _record(engine, 1 + n, [skus])
            logged = _rows(engine, "unknown_sku_sightings")
            assert len(logged) < 5 + 3
            total: dict[str, int] = {}
            for sku, count in [*_rows(engine, "unknown_skus"), *logged]:
                total[sku] = total.get(sku, 0) + count
            assert total == lines
        assert _rows(engine, "unknown_skus") != []


def test_a_full_recompute_empties_the_log(backend):
    """Rebuilding the statistics recounts unknown SKUs from the events; what the log held is in that count."""
    with engine_at(backend.url) as engine:
        _record(engine, 1, [("X1",)])
        with engine.begin() as conn:
            statistics.fold_unknown_skus(conn)
        _record(engine, 2, [("X1",)])
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM unknown_skus")
            rebuild.rebuild_all(conn, 480)
        assert _rows(engine, "unknown_sku_sightings") == []


def test_ingest_does_not_wait_for_another_transactions_fold(backend):
    """While one transaction folds, another's fold with wait=False returns at once and leaves its rows logged."""
    with engine_at(backend.url) as engine:
        _record(engine, 1, [("X1",)])
        if backend.name == "sqlite":  # one writer at a time: a transaction that folds is the only one
            with engine.begin() as conn:
                assert statistics.fold_unknown_skus(conn, wait=False) is True
            assert _rows(engine, "unknown_skus") == [("X1", 1)]
            return
        holding, release = threading.Event(), threading.Event()

        def fold_and_hold() -> None:
            with engine.begin() as conn:
                statistics.fold_unknown_skus(conn)
                holding.set()
                release.wait(10)

        folder = threading.Thread(target=fold_and_hold)
        folder.start()
        try:
            assert holding.wait(10)
            with engine.begin() as conn:
                conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                assert statistics.fold_unknown_skus(conn, wait=False) is False
        finally:
            release.set()
            folder.join()
        assert _rows(engine, "unknown_skus") == [("X1", 1)]


def test_downgrade_folds_the_log(tmp_path):
    """Going back to the schema without the log keeps the lines it held."""
    url = f"sqlite:///{tmp_path / 'central.db'}"
    upgrade(url)
    with engine_at(url) as engine:
        _record(engine, 1, [("X1", "X2")])
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0021_coupon_index")
        assert _rows(engine, "unknown_skus") == [("X1", 1), ("X2", 1)]
