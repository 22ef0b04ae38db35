"""What a customer-service desk does on a customer's page: tag times, consent withdrawals, receipts, complaints."""

from __future__ import annotations

import re

from central import db as central_db
from central.customers import tagging
from tests.central.sources_support import source_event
from tests.central.test_console_customers import PHONE, _accepted, _as, member

__all__ = ["member"]  # the fixture, shared with the customer pages' tests


def test_a_tags_time_inputs_read_in_the_chains_local_time_without_microseconds(app, client, member):
    profiling = {"purpose": "profiling", "source": "app"}
    _accepted(app, client, [source_event("p1", "consent.given", identifiers={"phone": PHONE}, payload=profiling)])
    with central_db.engine_for(app).begin() as conn:
        tagging.recompute(conn, app.config["CENTRAL"], app.config["CLOCK"]())
    page = _as(app, "customer_service").get(f"/console/customers/{member}").get_data(as_text=True)
    table = page.split('id="tags"', 1)[1].split("</table>", 1)[0]
    shown = re.findall(r'最近购买</span> <time datetime="([^"]+)">([^<]+)</time>', table)
    assert shown, table
    for instant, local in shown:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", instant)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\+08:00", local)
        assert local[11:13] == f"{(int(instant[11:13]) + 8) % 24:02d}"  # UTC shown eight hours on
    assert ".000000" not in table
