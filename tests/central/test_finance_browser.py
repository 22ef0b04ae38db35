"""Finance's monthly close in a real browser: the daily sales and the coupon liability, read and downloaded.

Debian's chromium (headless, via Playwright), as in :mod:`tests.central.test_console_browser`: a finance
user signs in, picks a range on the daily sales page, checks the totals row against a hand count,
downloads the CSV through the browser and reads its rows; then picks a redemption period on the
campaigns page and downloads the liability CSV.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from tests.central.live import serving
from tests.central.support import PASSWORD, create_user
from tests.central.test_console_browser import browser  # noqa: F401 - the fixture
from tests.central.test_coupon_liability import _chain
from tests.central.test_daily_sales import make_chain


def _cells(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(f"{selector} td", "cells => cells.map(c => c.textContent.trim())")


def _download(page, link: str, into: Path) -> list[list[str]]:
    """Click ``link``, save what the browser downloads, and read it as CSV (its byte order mark dropped)."""
    with page.expect_download() as started:
        page.click(link)
    download = started.value
    path = into / download.suggested_filename
    download.save_as(path)
    return list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_finance_reads_and_downloads_the_daily_sales_and_the_coupon_liability(
    app,
    client,
    agent,
    browser,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    make_chain(app, client)  # sales on 31 October and 1 November 2026, local time
    _chain(app, client, agent)  # double-11: 5 codes, 1 redeemed on 23 November, 1 revoked, 3 outstanding
    create_user(app, "finance", role="finance")
    with serving(app) as base:
        host = base.replace("127.0.0.1", "localhost")  # a secure context, so the __Host- cookie is kept
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.goto(f"{host}/console/")
        page.fill("input[name=username]", "finance")
        page.fill("input[name=password]", PASSWORD)
        page.click("form:not(.lang) button[type=submit]")
        page.wait_for_url(re.compile(r".*/console/$"))

        page.click("nav a[data-page=sales]")
        page.fill("#sales-range input[name=from]", "2026-10-31")
        page.fill("#sales-range input[name=to]", "2026-11-01")
        page.click("#sales-range button[type=submit]")
        page.wait_for_url(re.compile(r".*from=2026-10-31&to=2026-11-01$"))
        # By hand: S001 sold 35.50 and 12.00 and refunded 5.00; S002 sold 8.00 and a backfilled 15.00
        # (its second copy set aside, as is S001's reprint of 53.50); members bought 35.50 and 8.00 of
        # the 70.50; one online order of 59.90 counted, the cancelled one not.
        assert _cells(page, "#sales-total") == [
            "4", "70.50", "1", "5.00", "65.50", "2", "68.50", "2", "61.7 %", "1", "59.90",
        ]  # fmt: skip
        rows = _download(page, "#sales-csv", tmp_path)
        assert rows[0][:7] == ["date", "store_id", "sales", "gross", "refunds", "refunded", "net"]
        assert [",".join(r) for r in rows[1:]] == [
            "2026-10-31,S001,1,35.50,1,5.00,30.50,1,53.50,1,35.50,100.0,1,59.90",
            "2026-10-31,S002,2,23.00,0,0.00,23.00,1,15.00,1,8.00,34.8,0,0.00",
            "2026-11-01,S001,1,12.00,0,0.00,12.00,0,0.00,0,0.00,0.0,0,0.00",
        ]
        # The file's rows add up to the page's totals row.
        assert sum(int(r[2]) for r in rows[1:]) == 4 and f"{sum(float(r[6]) for r in rows[1:]):.2f}" == "65.50"

        page.click("nav a[data-page=campaigns]")
        page.fill("#coupons-period input[name=from]", "2026-11-01")
        page.fill("#coupons-period input[name=to]", "2026-11-30")
        page.click("#coupons-period button[type=submit]")
        page.wait_for_url(re.compile(r".*from=2026-11-01&to=2026-11-30$"))
        # issued, redeemed, revoked, outstanding, owed, expired, redeemed in November and its value
        assert _cells(page, "#liability-total") == ["5", "1", "1", "3", "30.00", "0", "1", "10.00"]
        rows = _download(page, "#coupons-csv", tmp_path)
        named = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
        assert [(r["campaign"], r["outstanding"], r["outstanding_value"], r["redeemed_in_period"]) for r in named] == [
            ("double-11", "3", "30.00", "1"),
            ("spring", "0", "0.00", "0"),
        ]
        assert {(r["period_from"], r["period_to"]) for r in named} == {("2026-11-01", "2026-11-30")}
        context.close()
