"""Two-step sign-in in a real browser (Debian's chromium, headless): an admin is led to set it up, then signs in
with a code computed from the secret the page showed, as an authenticator app would."""

from __future__ import annotations

import re
from collections.abc import Callable

import pyotp
import pytest
from flask import Flask

from tests.central.live import serving
from tests.central.support import PASSWORD, USERNAME, FakeClock, create_user
from tests.central.test_console_browser import ARTIFACTS, browser  # noqa: F401  (the fixture)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(console__two_step_roles="admin")


def _password(page, host: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{host}/console/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("form:not(.lang) button[type=submit]")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_admin_sets_up_two_step_sign_in_then_logs_in_with_a_code(app, clock: FakeClock, browser):  # noqa: F811
    create_user(app)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serving(app) as base:
        host = base.replace("127.0.0.1", "localhost")  # a secure context, so the __Host- cookies are kept
        context = browser.new_context()
        page = context.new_page()
        _password(page, host)
        page.wait_for_url(re.compile(r".*/console/account/two-step$"))
        assert page.query_selector("#required") is not None and page.query_selector("nav a") is None
        page.goto(f"{host}/console/customers")  # nothing else until it is set up
        assert page.url.endswith("/console/account/two-step")
        page.click("#start button[type=submit]")
        secret = page.inner_text("#secret").replace(" ", "")
        assert page.eval_on_selector("#qr", "img => img.complete && img.naturalWidth > 0")  # the QR code drew
        page.screenshot(path=str(ARTIFACTS / "two-step-setup.png"))
        page.fill("#confirm input[name=code]", pyotp.TOTP(secret).at(clock.now.timestamp()))
        page.click("#confirm button[type=submit]")
        codes = page.inner_text("#recovery-codes").split()
        assert len(codes) == 10
        page.click("text=继续")
        page.wait_for_url(re.compile(r".*/console/$"))
        assert page.query_selector("nav a[data-page=customers]") is not None
        page.click("form.logout button[type=submit]")
        page.wait_for_url(re.compile(r".*/console/login$"))
        context.close()

        clock.advance(seconds=30)  # the next step's code: the one used to set it up is spent
        context = browser.new_context()
        page = context.new_page()
        _password(page, host)
        page.wait_for_url(re.compile(r".*/console/login/code.*"))
        page.fill("input[name=code]", "000000" if pyotp.TOTP(secret).at(clock.now.timestamp()) != "000000" else "1")
        page.click("form:not(.lang) button[type=submit]")
        assert page.query_selector("p.error") is not None
        page.fill("input[name=code]", pyotp.TOTP(secret).at(clock.now.timestamp()))
        page.screenshot(path=str(ARTIFACTS / "two-step-code.png"))
        page.click("form:not(.lang) button[type=submit]")
        page.wait_for_url(re.compile(r".*/console/$"))
        assert page.query_selector("nav a[data-page=customers]") is not None
        context.close()
