"""The campaign pages' figures at chain scale are counted from indexes, not from every row.

At a million customers (``python -m bench.console_pages``) a trigger keeps tens of thousands of
firings and a campaign a hundred thousand redemptions; the campaigns list and each trigger's page
count them on every view. SQLite's plan says whether an index alone answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from central import db as central_db
from central.campaigns import results

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _plans(app: Any, run: Callable[[Session], object]) -> str:
    """The query plans of every statement ``run`` executes, as one text."""
    engine = central_db.engine_for(app)
    seen: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with central_db.session_factory(app)() as db:
            run(db)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    with engine.connect() as conn:
        return " ".join(
            str(row[-1])
            for statement, params in seen
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
        )


@SQLITE
def test_triggers_firings_are_counted_from_an_index(app):
    plan = _plans(app, results.trigger_results)
    assert "COVERING INDEX ix_trigger_occasions_trigger_id_grp_fired_at" in plan, plan


@SQLITE
def test_campaigns_redemptions_are_counted_from_an_index(app):
    plan = _plans(app, results.coupon_results)
    assert "COVERING INDEX ix_coupon_redemptions_campaign_id_status" in plan, plan
