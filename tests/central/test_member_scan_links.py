"""A member scan links only the sale that plausibly follows it at the register; anything doubtful links nothing."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from central import db as central_db
from central.customers.models import Receipt
from central.ingest.models import Event
from central.members.models import MemberScan
from tests.central.live import serving
from tests.central.support import START, create_user, login
from tests.central.test_member_codes import T0, Store, _code


def test_a_scan_links_the_next_sale_only_never_a_refund_a_later_customer_or_another_members_sale(app, tmp_path):
    with serving(app) as url:
        till = Store(app, url, "S001", tmp_path / "till")
        codes = {m: _code(app, m, T0 + at) for m, at in (("M-1", 0), ("M-2", 600), ("M-3", 1200), ("M-4", 1230))}
        codes |= {m: _code(app, m, T0 + at) for m, at in (("M-5", 1808), ("M-6", 2400))}
        till.fetch(url, 1)

        # A coupon check: no sale follows; the next customer pays anonymously four minutes later.
        assert till.scan(codes["M-1"], T0) == "accepted"
        till.receipt("CJ-2", "12.00", T0 + 237)
        # A scan before a refund: the refund is nobody's purchase, the sale after it is the member's.
        assert till.scan(codes["M-2"], T0 + 600) == "accepted"
        till.receipt("RF-2", "-7.00", T0 + 660)
        till.receipt("S-2", "20.00", T0 + 690)
        # A member's code, then the next member's before any receipt: the sale is the second's.
        assert till.scan(codes["M-3"], T0 + 1200) == "accepted"
        assert till.scan(codes["M-4"], T0 + 1230) == "accepted"
        till.receipt("S-4", "30.00", T0 + 1260)
        # An anonymous sale, then a code shown eight seconds later (that customer's, or the next
        # one's?), then the next sale: doubtful, nobody gets it.
        till.receipt("S-5a", "40.00", T0 + 1800)
        assert till.scan(codes["M-5"], T0 + 1808) == "accepted"
        till.receipt("S-5b", "50.00", T0 + 1850)
        # The first sale after the scan names another customer by phone: the scan does not skip to
        # the sale after it.
        assert till.scan(codes["M-6"], T0 + 2400) == "accepted"
        till.events.append(
            till.agent.receipt("S-6a", "60.00", phone="13900000006", observed_at=START + timedelta(seconds=2430))
        )
        till.receipt("S-6b", "70.00", T0 + 2460)
        assert till.sync(url)["rejected"] == []

    with Session(central_db.engine_for(app)) as db:
        receipts = {r.id: r.receipt_no for r in db.scalars(select(Receipt))}
        links = {s.member_id: (receipts.get(s.receipt_id or 0), s.flag) for s in db.scalars(select(MemberScan))}
    assert links == {
        "M-1": (None, None),
        "M-2": ("S-2", None),
        "M-3": (None, None),
        "M-4": ("S-4", None),
        "M-5": (None, "doubtful"),
        "M-6": (None, None),
    }


def test_a_code_scanned_before_the_store_had_keys_is_checked_by_central_and_links_the_sale(app, tmp_path):
    with serving(app) as url:
        till = Store(app, url, "S001", tmp_path / "till")  # enrolled, member_codes not fetched yet
        code = _code(app, "M-7", T0)
        other = _code(app, "M-8", T0)
        assert till.scan(code, T0) == "unverified"
        till.receipt("NK-1", "45.00", T0 + 40)
        # A store PC that names one code by digest and sends another as the code: refused by central.
        assert till.scan(other, T0 + 300) == "unverified"
        swapped = till.events[-1]
        till.events[-1] = till.agent.event(
            "scan.member", {**swapped.payload, "proof": code}, observed_at=START + timedelta(seconds=300)
        )
        till.receipt("NK-2", "15.00", T0 + 320)
        assert till.sync(url)["rejected"] == []

    engine = central_db.engine_for(app)
    with Session(engine) as db:
        receipts = {r.id: r.receipt_no for r in db.scalars(select(Receipt))}
        links = {s.member_id: (receipts.get(s.receipt_id or 0), s.flag) for s in db.scalars(select(MemberScan))}
        stored = [e.payload for e in db.scalars(select(Event).where(Event.kind == "scan.member"))]
    assert links == {"M-7": ("NK-1", None)}
    assert [p["result"] for p in stored] == ["accepted", "forged"]
    assert all("proof" not in p for p in stored)  # central keeps the digest, never the code
    assert code not in str(stored) and other not in str(stored)


def test_the_device_page_counts_its_tills_set_aside_receipts_and_scans_that_linked_nothing(app, tmp_path):
    with serving(app) as url:
        till = Store(app, url, "S001", tmp_path / "till")
        codes = {m: _code(app, m, T0 + at) for m, at in (("M-1", 0), ("M-2", 608), ("M-3", 1200))}
        till.fetch(url, 1)
        assert till.scan(codes["M-1"], T0) == "accepted"
        till.receipt("S-1", "20.00", T0 + 30)  # the member's sale
        till.receipt("S-1", "20.00", T0 + 90)  # printed again for an invoice
        till.receipt("S-2", "15.00", T0 + 600)
        assert till.scan(codes["M-2"], T0 + 608) == "accepted"  # shown after an anonymous sale: doubtful
        assert till.scan(codes["M-3"], T0 + 1200) == "accepted"  # a coupon check, no sale follows
        assert till.sync(url)["rejected"] == []
    create_user(app, "ops", role="technician")
    ops = app.test_client()
    assert login(ops, "ops").status_code == 302

    page = ops.get(f"/console/fleet/devices/{till.agent.device_id}").get_data(as_text=True)
    till_table = page.split('id="till"', 1)[1].split("</table>", 1)[0]
    rows = dict(re.findall(r'<tr data-key="([^"]+)"><th>(?:[^<]|<[^/])*?</th><td>(\d+)</td>', till_table))
    assert rows == {"counted": "2", "reprint": "1", "scan-linked": "1", "scan-doubtful": "1", "scan-unlinked": "1"}
    assert "收银数据（近 30 天）" in page and "重打印（与原单相同，不计）" in page and "存疑" in page
    ops.set_cookie("cdp-lang", "en")
    english = ops.get(f"/console/fleet/devices/{till.agent.device_id}").get_data(as_text=True)
    assert "Till data, last 30 days" in english and "Member scans: linked to a sale" in english
