"""The console in a real browser: Debian's chromium (headless, via Playwright) walks every page as each role.

Screenshots go to ``$CDP_TEST_ARTIFACTS/console`` (default ``test-artifacts/console`` in the repository).
Without chromium the test skips on a developer machine and fails under CI (``./dev`` installs it).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from central import db as central_db
from central.accounts.roles import ROLES
from tests.central.live import serving
from tests.central.privacy_support import NAME, NEEDLES, make_person, traces
from tests.central.support import PASSWORD, create_user
from tests.central.test_console_roles import MOBILE, PAGES, XSS
from tests.central.test_segments import _api as segment_client
from tests.central.test_segments import _evaluate as evaluate_segment
from tests.central.test_segments import _save as save_segment
from tests.central.test_segments import chain
from tests.conftest import REPO, unavailable

CHROMIUM = Path("/usr/bin/chromium")
__all__ = ["chain"]  # the segments' fixture: four customers, two of them on the loyal SMS segment
ARTIFACTS = Path(os.environ.get("CDP_TEST_ARTIFACTS", REPO / "test-artifacts")) / "console"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (./dev installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_each_role_logs_in_and_walks_every_page(app, client, agent, browser):
    agent.send(client, [agent.receipt("R1", "12.50", phone="13812345678", card="VIP00421234")])
    agent.send(client, [agent.receipt(XSS[:60], "1.00", phone="13912345679")])
    for role in ROLES:
        create_user(app, role, role=role, stores=("S001",) if role == "store_manager" else ())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    broken: list[str] = []  # failed requests and the browser's console errors (a missing icon, a refused script)
    with serving(app) as base:
        host = base.replace("127.0.0.1", "localhost")  # a secure context, so the __Host- cookie is kept
        for role in ROLES:
            context = browser.new_context()  # type: ignore[attr-defined]
            page = context.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("response", lambda r: broken.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.on("console", lambda m: broken.append(f"console: {m.text}") if m.type == "error" else None)
            page.goto(f"{host}/console/")
            page.fill("input[name=username]", role)
            page.fill("input[name=password]", PASSWORD)
            page.click("form:not(.lang) button[type=submit]")
            page.wait_for_url(re.compile(r".*/console/$"))
            if role == "admin":  # the overview's vendored ECharts draws on a canvas, no inline script needed
                assert page.wait_for_selector("#chart-rfm[data-rendered=true] canvas", timeout=10_000)
            links = sorted({a.get_attribute("data-page") for a in page.query_selector_all("nav a")})
            allowed = sorted(
                p.rstrip("/").rsplit("/", 1)[-1].replace("console", "overview")
                for p, roles in PAGES.items()
                # the pages the navigation links to: the top-level ones and the review queue
                if role in roles and (p.count("/") <= 2 or p == "/console/customers/review")
            )
            assert links == allowed, role
            for link in links:
                page.click(f"nav a[data-page={link}]")
                page.wait_for_load_state()
                html = page.content()
                if role != "admin":
                    assert not MOBILE.search(html), (role, link)
                if role == "technician":
                    assert "5678" not in html and "12.50" not in html
                page.screenshot(path=str(ARTIFACTS / f"{role}-{link}.png"))
            if role in ("admin", "marketing"):  # the campaign forms, reached from the campaigns page
                page.click("nav a[data-page=campaigns]")
                page.click("#new-trigger")
                page.wait_for_selector("#trigger-form")
                page.screenshot(path=str(ARTIFACTS / f"{role}-trigger-form.png"))
                # The browser checks what it can before sending, in its own language.
                page.fill("#trigger-form input[name=name]", "Birthday!")
                page.fill("#trigger-form input[name=control_percent]", "150")
                assert page.eval_on_selector("#trigger-form", "f => f.checkValidity()") is False
                invalid = page.eval_on_selector_all("#trigger-form :invalid", "els => els.map(e => e.name)")
                assert set(invalid) == {"name", "control_percent"}, invalid
                page.goto(f"{host}/console/campaigns/coupons/new")
                page.fill("input[name=value]", "0")
                page.fill("input[name=stores]", "S001 S#1")
                invalid = page.eval_on_selector_all("#coupon-form :invalid", "els => els.map(e => e.name)")
                assert set(invalid) == {"name", "value", "stores"}, invalid  # name: required, still empty
                page.fill("input[name=value]", "10.00")
                page.fill("input[name=stores]", "")
                page.fill("input[name=name]", f"browser-{role}")
                page.screenshot(path=str(ARTIFACTS / f"{role}-coupon-form.png"))
                page.click("#coupon-form button[type=submit]")
                page.wait_for_url(re.compile(r".*/console/campaigns/coupons/\d+$"))
                assert page.query_selector("#end") is not None
            if "customers" in links:
                page.click("nav a[data-page=customers]")
                page.fill("input[name=q]", "13812345678")
                page.click("form.search button")
                page.click("#results a")
                page.wait_for_load_state()
                html = page.content()
                assert "138****5678" in html
                if role != "admin":
                    assert not MOBILE.search(html)
                page.screenshot(path=str(ARTIFACTS / f"{role}-customer.png"))
            context.close()
    assert dialogs == []  # no stored script ran
    assert broken == []


def _log_in(browser, host, role):
    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    page.goto(f"{host}/console/")
    page.fill("input[name=username]", role)
    page.fill("input[name=password]", PASSWORD)
    page.click("form:not(.lang) button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/$"))
    return page


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_language_switch_on_a_new_token_opens_a_tab_and_keeps_the_token(app, browser):
    create_user(app, "technician", role="technician")
    with serving(app) as base:
        host = base.replace("127.0.0.1", "localhost")  # a secure context, so the __Host- cookie is kept
        page = _log_in(browser, host, "technician")
        page.goto(f"{host}/console/fleet")
        page.fill("#new-token input[name=store]", "S009")
        page.click("#new-token button[type=submit]")
        secret = page.inner_text("#secret")
        assert "--token cdpet_" in secret
        with page.context.expect_page() as opened:
            page.click("form.lang button")
        english = opened.value
        english.wait_for_load_state()
        assert english.url.endswith("/console/fleet") and "Enrollment tokens" in english.content()
        assert page.inner_text("#secret") == secret  # still there to copy
        page.context.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_an_admin_downloads_and_then_erases_a_customer_in_the_browser(app, client, agent, browser):
    person = make_person(app, client, agent)
    create_user(app, "admin", role="admin")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serving(app) as base:
        host = base.replace("127.0.0.1", "localhost")  # a secure context, so the __Host- cookie is kept
        page = _log_in(browser, host, "admin")
        page.goto(f"{host}/console/customers/{person}")
        assert NAME in page.content()
        with page.expect_download() as downloading:
            page.click("#download")
        document = json.loads(Path(downloading.value.path()).read_text(encoding="utf-8"))
        assert document["customer_id"] == person and document["golden_record"]
        page.click("#erase-start button")
        page.wait_for_selector("#erase-form")
        page.screenshot(path=str(ARTIFACTS / "admin-erase.png"))
        page.fill("#erase-form input[name=reason]", "ticket 4411")
        page.fill("#erase-form input[name=typed_id]", str(person + 1))
        page.click("#erase-form button[type=submit]")
        assert page.inner_text("#problem")  # a wrong number erases nothing
        page.fill("#erase-form input[name=typed_id]", str(person))
        page.click("#erase-form button[type=submit]")
        page.wait_for_url(re.compile(rf".*/console/customers/{person}\?done=erased$"))
        assert page.query_selector("#erased time") is not None and page.query_selector("#download") is None
        assert NAME not in page.content()
        page.screenshot(path=str(ARTIFACTS / "admin-erased.png"))
        page.context.close()
    assert traces(central_db.engine_for(app), NEEDLES) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_the_service_desk_withdraws_sms_marketing_in_the_browser_and_the_export_leaves_the_customer_out(
    app, chain, browser
):
    """ "Stop sending me SMS", taken on the phone: the desk records it on the customer's page, and the
    marketing SMS segment's export leaves the customer out at once."""
    save_segment(app)
    evaluate_segment(app)
    marketing = segment_client(app, "marketing")

    def exported() -> set[int]:
        text = marketing.get("/api/v1/segments/loyal/export").get_data(as_text=True)
        return {int(r["customer_id"]) for r in csv.DictReader(io.StringIO(text))}

    assert exported() == {chain["ann"], chain["bob"]}
    create_user(app, "customer_service", role="customer_service")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serving(app) as base:
        host = base.replace("127.0.0.1", "localhost")  # a secure context, so the __Host- cookie is kept
        page = _log_in(browser, host, "customer_service")
        page.goto(f"{host}/console/customers/{chain['bob']}")
        assert page.inner_text("#consent-state tr[data-purpose=marketing] td:nth-child(2)") == "已同意"
        page.select_option("#consent-withdraw select[name=purpose]", "marketing")
        page.select_option("#consent-withdraw select[name=channel]", "sms")
        page.select_option("#consent-withdraw select[name=asked]", "phone")
        page.click("#consent-withdraw button[type=submit]")
        page.wait_for_url(re.compile(rf".*/console/customers/{chain['bob']}\?done=consent$"))
        assert page.inner_text("#consent-state tr[data-purpose=marketing] td:nth-child(2)") == "已撤回"
        assert "撤回已记录" in page.inner_text("p.done")
        page.screenshot(path=str(ARTIFACTS / "service-desk-withdraws-sms.png"))
        page.context.close()
    assert exported() == {chain["ann"]}
