"""Daily sales (``/console/sales``): per store and local day, the till's sales, refunds and net, the copies
set aside, members' share and online orders, with a totals row and a CSV download.

Admin and finance see every store, a store manager their own stores. The figures are aggregates
(no customer is named or linked), so opening the page writes no audit row, as the overview writes
none; the CSV download is an export and writes ``sales.export`` with the range and stores.
"""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any

from flask import Response, render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from central import clock
from central.accounts import web
from central.accounts.roles import ADMIN, FINANCE, STORE_MANAGER
from central.console import bp, offset_minutes
from central.console.auditing import record_audit
from central.console.dates import days_asked
from central.console.segments import EXCEL_BOM
from central.csvfiles import SpreadsheetWriter
from central.customers import daily_sales
from central.customers.dashboard import local_today
from central.db import get_session

SALES_ROLES = (ADMIN, FINANCE, STORE_MANAGER)
DEFAULT_DAYS = 7


def _stores() -> tuple[str, ...] | None:
    active = web.current()
    if active is not None and web.current_policy().store_scoped:
        return tuple(sorted(active.stores))
    return None


def _range() -> tuple[date, date, str | None]:
    """The form's dates (the last ``DEFAULT_DAYS`` local days by default) and what is wrong with them, if anything."""
    today = local_today(clock.now(), offset_minutes())
    first, last, problem = days_asked((today - timedelta(days=DEFAULT_DAYS - 1), today))
    if problem:
        return first, last, problem
    try:
        daily_sales.check_range(first, last)
    except daily_sales.RangeError:
        message = _("结束日期不能早于开始日期，范围最多 %(days)s 天。", days=daily_sales.MAX_DAYS)
        return today - timedelta(days=DEFAULT_DAYS - 1), today, message
    return first, last, None


@bp.get("/sales")
@web.roles(*SALES_ROLES)
def sales() -> ResponseReturnValue:
    """The daily sales table for the chosen local days, with its totals."""
    first, last, problem = _range()
    # A range refused shows only why, not the default week's figures as though they answered it.
    rows = [] if problem else daily_sales.daily_sales(get_session(), first, last, offset_minutes(), _stores())
    context: dict[str, Any] = {
        "page": "sales",
        "first": first,
        "last": last,
        "problem": problem,
        "rows": rows,
        "total": daily_sales.totals(rows),
        "scoped": _stores(),
    }
    return render_template("sales.html", **context), 400 if problem else 200


@bp.get("/sales/daily.csv")
@web.roles(*SALES_ROLES)
def sales_csv() -> ResponseReturnValue:
    """The same rows as CSV (one per store and day, amounts in yuan as numbers), audited as an export."""
    first, last, problem = _range()
    if problem:
        page = render_template(
            "sales.html", page="sales", first=first, last=last, problem=problem, rows=[], scoped=_stores()
        )
        return page, 400
    stores = _stores()
    db = get_session()
    rows = daily_sales.daily_sales(db, first, last, offset_minutes(), stores)
    out = io.StringIO()
    out.write(EXCEL_BOM)
    writer = SpreadsheetWriter(out, lineterminator="\r\n")
    writer.writerow(daily_sales.CSV_HEADER)
    for row in rows:
        writer.writerow(daily_sales.csv_row(row))
    detail: dict[str, Any] = {"from": first.isoformat(), "to": last.isoformat(), "rows": len(rows)}
    if stores is not None:
        detail["stores"] = list(stores)
    record_audit("sales.export", "sales:daily", **detail)
    db.commit()
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="sales-{first}-{last}.csv"'
    return response
