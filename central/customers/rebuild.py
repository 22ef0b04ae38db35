"""Set-based recomputation of the purchase statistics from the stored events, on SQLite and PostgreSQL.

The same rules as :mod:`central.customers.sales`, written as SQL: every sale event that counts
(:func:`counted`: an online order once, see :mod:`central.customers.orders`) owned by a customer
(``event_customers``, which merges and splits keep current) is one row of a derived table,
and each statistics table is one ``INSERT ... SELECT ... GROUP BY`` over it. ``rebuild_all`` does
the whole chain (``central-server recompute-tags``); ``rebuild_customers`` the customers a merge or
split marked, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import Connection

from central.customers.sales import APP_NAMES, CHANNELS, DAYPARTS, MINI_PROGRAM_NAMES, ONLINE_KIND, SALE_KINDS, WEEKDAYS

STAT_TABLES = ("customer_stats", "customer_days", "customer_stores", "customer_categories")
_KINDS = ", ".join(f"'{k}'" for k in SALE_KINDS)


def counted(postgres: bool, alias: str = "e") -> str:
    """SQL true for a sale event ``alias`` (a row of ``events``) that counts: any but an online order's
    event that is not its order's counted sale (``online_orders``, see central.customers.orders)."""
    order_no = f"{alias}.payload->>'order_no'" if postgres else f"json_extract({alias}.payload, '$.order_no')"
    return (
        f"({alias}.kind <> '{ONLINE_KIND}' OR {order_no} IS NULL"  # noqa: S608 - our own names
        f" OR EXISTS (SELECT 1 FROM online_orders oo WHERE oo.event_pk = {alias}.id AND oo.counted))"
    )


def _names(values: Collection[str]) -> str:
    return ", ".join(f"'{v}'" for v in sorted(values))


def _channel_name(field: str) -> str:
    """An order's channel folded as :func:`central.customers.sales.channel_of` folds it."""
    return f"replace(replace(lower(trim({field})), '-', '_'), ' ', '_')"


def _sqlite_sales(offset: int, where: str) -> str:
    shift = f"'{offset:+d} minutes'"
    channel = _channel_name("json_extract(e.payload, '$.channel')")
    inner = (
        "SELECT ec.customer_id AS customer_id, e.id AS event_pk, e.store_id AS store_id, e.observed_at AS at,"  # noqa: S608
        f" CASE WHEN e.kind <> '{ONLINE_KIND}' THEN 'store' WHEN {channel} IN ({_names(APP_NAMES)}) THEN 'app'"
        f" WHEN {channel} IN ({_names(MINI_PROGRAM_NAMES)}) THEN 'mini_program' ELSE 'online' END AS channel,"
        f" CAST(strftime('%H', e.observed_at, {shift}) AS INTEGER) AS hour,"
        f" (CAST(strftime('%w', e.observed_at, {shift}) AS INTEGER) + 6) % 7 AS dow,"
        f" date(e.observed_at, {shift}) AS day,"
        " json_extract(e.payload, '$.total') AS total"
        # CROSS JOIN: SQLite then reads the customers' rows first. Left to itself, for more than a
        # few customers it chose to scan every sale by the kind index: a cost that grew with history.
        " FROM event_customers ec CROSS JOIN events e ON e.id = ec.event_pk"
        f" WHERE e.kind IN ({_KINDS}) AND {counted(False)}{where}"
    )
    # The total as an exact integer of 1/10000ths (the money text padded to four decimals), then
    # cents rounded half away from zero: no float on the way. MATERIALIZED: flattened into the
    # expressions below, each reference to the total would extract it from the JSON again (more
    # than twice the time).
    exact = (
        "SELECT *, CAST(replace(total || CASE WHEN instr(total, '.') = 0 THEN '.0000'"
        " ELSE substr('0000', 1, 4 - length(total) + instr(total, '.')) END, '.', '') AS INTEGER) AS v FROM i"
    )
    return (
        f"WITH i AS MATERIALIZED ({inner}) SELECT customer_id, event_pk, store_id, at, channel, hour, dow, day,"  # noqa: S608
        f" CASE WHEN v < 0 THEN -((50 - v) / 100) ELSE (v + 50) / 100 END AS cents FROM ({exact}) AS x"
    )


def _pg_sales(offset: int, where: str) -> str:
    local = f"((e.observed_at AT TIME ZONE 'UTC') + make_interval(mins => {offset}))"
    channel = _channel_name("e.payload->>'channel'")
    return (
        "SELECT ec.customer_id AS customer_id, e.id AS event_pk, e.store_id AS store_id, e.observed_at AS at,"  # noqa: S608
        f" CASE WHEN e.kind <> '{ONLINE_KIND}' THEN 'store' WHEN {channel} IN ({_names(APP_NAMES)}) THEN 'app'"
        f" WHEN {channel} IN ({_names(MINI_PROGRAM_NAMES)}) THEN 'mini_program' ELSE 'online' END AS channel,"
        f" CAST(EXTRACT(HOUR FROM {local}) AS integer) AS hour,"
        f" CAST(EXTRACT(ISODOW FROM {local}) AS integer) - 1 AS dow,"
        f" CAST({local} AS date) AS day,"
        # numeric's round() goes half away from zero, like the Python side.
        " CAST(round(CAST(e.payload->>'total' AS numeric) * 100) AS bigint) AS cents"
        " FROM event_customers ec JOIN events e ON e.id = ec.event_pk"
        f" WHERE e.kind IN ({_KINDS}) AND {counted(True)}{where}"
    )


def sales_sql(conn: Connection, offset: int, where: str = "") -> str:
    """The derived table of sales: customer_id, event_pk, store_id, at, channel, hour, dow, day, cents."""
    return (_pg_sales if conn.dialect.name == "postgresql" else _sqlite_sales)(offset, where)


def _count(condition: str) -> str:
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


def _stats_select(sales: str) -> tuple[list[str], str]:
    """The customer_stats columns and the SELECT computing them from the table ``sales``."""
    columns = ["customer_id", "purchases", "spent", "first_purchase_at", "last_purchase_at"]
    values = [
        "customer_id",
        _count("cents > 0"),
        "SUM(cents)",
        "MIN(CASE WHEN cents > 0 THEN at END)",
        "MAX(CASE WHEN cents > 0 THEN at END)",
    ]
    for channel in CHANNELS:
        columns += [f"{channel}_purchases", f"{channel}_spent"]
        values += [
            _count(f"cents > 0 AND channel = '{channel}'"),
            f"SUM(CASE WHEN channel = '{channel}' THEN cents ELSE 0 END)",
        ]
    for i, part in enumerate(DAYPARTS):
        columns.append(f"{part}_purchases")
        values.append(_count(f"cents > 0 AND hour >= {6 * i} AND hour < {6 * (i + 1)}"))
    for i, day in enumerate(WEEKDAYS):
        columns.append(f"{day}_purchases")
        values.append(_count(f"cents > 0 AND dow = {i}"))
    return columns, f"SELECT {', '.join(values)} FROM {sales} s GROUP BY customer_id"  # noqa: S608


WORK = "customer_sales_work"
_WORK_COLUMNS = "customer_id, event_pk, store_id, at, channel, hour, dow, day, cents"


def _lines(conn: Connection) -> str:
    """Each purchase line that names a SKU the catalogue knows: customer_id, event_pk, at, category."""
    if conn.dialect.name == "postgresql":
        return (
            f"SELECT s.customer_id, s.event_pk, s.at, p.category FROM {WORK} s JOIN events e ON e.id = s.event_pk"  # noqa: S608
            " CROSS JOIN LATERAL json_array_elements(e.payload->'items') AS j(item)"
            " JOIN products p ON p.sku = j.item->>'sku' WHERE s.cents > 0"
        )
    return (
        f"SELECT s.customer_id, s.event_pk, s.at, p.category FROM {WORK} s JOIN events e ON e.id = s.event_pk,"  # noqa: S608
        " json_each(e.payload, '$.items') AS j JOIN products p ON p.sku = json_extract(j.value, '$.sku')"
        " WHERE s.cents > 0"
    )


def _insert_statistics(conn: Connection, sales: str, *, analyze: bool = False) -> None:
    """Fill the statistics tables from the sales query, read once into a temporary table.

    Every statistic refers to the amount and times many times over; SQLite would otherwise inline
    the JSON extraction into each reference.
    """
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {WORK} AS SELECT {_WORK_COLUMNS} FROM ({sales}) AS x")  # noqa: S608
    if analyze and conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {WORK}")
    columns, select = _stats_select(WORK)
    conn.exec_driver_sql(f"INSERT INTO customer_stats ({', '.join(columns)}) {select}")
    conn.exec_driver_sql(
        "INSERT INTO customer_days (customer_id, day, purchases, spent)"  # noqa: S608
        f" SELECT customer_id, day, {_count('cents > 0')}, SUM(cents) FROM {WORK} s GROUP BY customer_id, day"
    )
    conn.exec_driver_sql(
        "INSERT INTO customer_stores (customer_id, store_id, purchases, spent, last_purchase_at)"  # noqa: S608
        f" SELECT customer_id, store_id, {_count('cents > 0')}, SUM(cents), MAX(CASE WHEN cents > 0 THEN at END)"
        f" FROM {WORK} s WHERE store_id <> '' GROUP BY customer_id, store_id"
    )
    conn.exec_driver_sql(
        "INSERT INTO customer_categories (customer_id, category, purchases, first_purchase_at, last_purchase_at)"  # noqa: S608
        f" SELECT customer_id, category, COUNT(DISTINCT event_pk), MIN(at), MAX(at) FROM ({_lines(conn)}) l"
        " GROUP BY customer_id, category"
    )
    conn.exec_driver_sql(f"DROP TABLE {WORK}")


def _unknown_skus(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        lines = (
            "SELECT j.item->>'sku' AS sku FROM events e CROSS JOIN LATERAL json_array_elements(e.payload->'items')"  # noqa: S608
            f" AS j(item) WHERE e.kind IN ({_KINDS})"
        )
    else:
        lines = (
            "SELECT json_extract(j.value, '$.sku') AS sku FROM events e, json_each(e.payload, '$.items') AS j"  # noqa: S608
            f" WHERE e.kind IN ({_KINDS})"
        )
    conn.exec_driver_sql(
        f"INSERT INTO unknown_skus (sku, lines) SELECT l.sku, COUNT(*) FROM ({lines}) l"  # noqa: S608
        " WHERE l.sku IS NOT NULL AND l.sku <> '' AND NOT EXISTS (SELECT 1 FROM products p WHERE p.sku = l.sku)"
        " GROUP BY l.sku"
    )


def rebuild_all(conn: Connection, offset_minutes: int) -> None:
    """Recompute every customer's statistics and the unknown-SKU counts from the stored events."""
    for name in (*STAT_TABLES, "unknown_skus", "unknown_sku_sightings"):
        conn.exec_driver_sql(f"DELETE FROM {name}")  # noqa: S608 - our own names
    _insert_statistics(conn, sales_sql(conn, offset_minutes), analyze=True)
    _unknown_skus(conn)


def rebuild_customers(conn: Connection, customer_ids: Sequence[int], offset_minutes: int) -> None:
    """Recompute the statistics of ``customer_ids`` (merged-away ones end with none)."""
    ids = sorted({int(c) for c in customer_ids})
    if not ids:
        return
    listed = ", ".join(map(str, ids))
    for name in STAT_TABLES:
        conn.exec_driver_sql(f"DELETE FROM {name} WHERE customer_id IN ({listed})")  # noqa: S608 - integers only
    _insert_statistics(conn, sales_sql(conn, offset_minutes, f" AND ec.customer_id IN ({listed})"))
