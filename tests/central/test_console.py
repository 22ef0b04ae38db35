"""The HQ console's sessions: cookie, login, logout, timeouts, throttling, CSRF, headers, language."""

from __future__ import annotations

import re

import pytest

from central.accounts.models import ConsoleSession
from central.models import AuditLog, User
from tests.central.support import PASSWORD, create_user, csrf_from, login, post_form, table_rows

WRONG = "Wrong username or password."
WRONG_ZH = "用户名或密码错误。"


def _sessions(app):
    from sqlalchemy import select

    from central import db as central_db

    with central_db.session_factory(app)() as db:
        return list(db.scalars(select(ConsoleSession)))


def without_csrf(response):
    return re.sub(r'name="csrf_token" value="[^"]+"', "", response.get_data(as_text=True))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_pages_need_a_login(client):
    response = client.get("/console/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login?next=/console/")
    assert client.get("/").headers["Location"] == "/console/"


def test_login_sets_a_host_only_strict_secure_cookie_and_a_session_row(app, client, clock):
    create_user(app)
    response = login(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/console/"
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("__Host-cdp-session=")]
    for part in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert part in cookie
    assert "Domain" not in cookie
    token = cookie.split("=", 1)[1].split(";")[0]
    (row,) = _sessions(app)
    assert row.token_hash != token and len(row.token_hash) == 64  # only the hash is stored
    (user,) = table_rows(app, User)
    assert user.last_login_at == clock.now
    assert user.password_hash.startswith("$argon2id$")
    assert [(a.actor, a.action) for a in table_rows(app, AuditLog)] == [("alice", "login")]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_plain_http_demo_setting_drops_the_host_prefix_and_secure(make_app):
    app = make_app(console__secure_cookie=False)
    create_user(app)
    response = login(app.test_client())
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if "cdp-session=" in c]
    assert cookie.startswith("cdp-session=") and "Secure" not in cookie and "SameSite=Strict" in cookie


def test_cookie_replay_after_logout_and_after_a_password_reset_is_refused(app, user_client):
    from central import db as central_db
    from central.accounts import users

    page = user_client.get("/console/").get_data(as_text=True)
    captured = user_client.get_cookie("__Host-cdp-session").value
    assert user_client.post("/console/logout", data={"csrf_token": csrf_from(page)}).status_code == 302
    attacker = app.test_client()
    attacker.set_cookie("__Host-cdp-session", captured)
    assert attacker.get("/console/").status_code == 302
    assert _sessions(app) == []

    assert login(user_client).status_code == 302
    captured = user_client.get_cookie("__Host-cdp-session").value
    with central_db.session_factory(app)() as db:
        users.reset_password(db, "alice", "another secret 1", now=app.config["CLOCK"](), actor="test")
        db.commit()
    attacker.set_cookie("__Host-cdp-session", captured)
    assert attacker.get("/console/").status_code == 302
    assert user_client.get("/console/").status_code == 302


def test_disabling_a_user_ends_their_sessions_and_their_logins(app, user_client):
    from central import db as central_db
    from central.accounts import users

    with central_db.session_factory(app)() as db:
        assert users.disable(db, "alice", now=app.config["CLOCK"](), actor="test") == 1
        db.commit()
    assert user_client.get("/console/").status_code == 302
    assert login(app.test_client()).status_code == 401


def test_idle_and_absolute_timeouts(app, user_client, clock):
    clock.advance(minutes=29)
    assert user_client.get("/console/").status_code == 200
    clock.advance(minutes=29)
    assert user_client.get("/console/").status_code == 200  # activity keeps it alive
    clock.advance(minutes=31)
    assert user_client.get("/console/").status_code == 302  # idle too long
    assert login(user_client).status_code == 302
    for _ in range(25):  # busy all day: the absolute limit still ends it at 12 h
        clock.advance(minutes=29)
        user_client.get("/console/")
    assert user_client.get("/console/").status_code == 302


def test_failed_logins_look_alike_and_are_audited(app, client):
    create_user(app)
    wrong_password = login(client, password="nope-nope")
    unknown_user = login(client, username="mallory", password="nope-nope")
    for response in (wrong_password, unknown_user):
        assert response.status_code == 401
        assert WRONG_ZH in response.get_data(as_text=True)
    assert without_csrf(wrong_password) == without_csrf(unknown_user)
    alice, mallory = table_rows(app, AuditLog)
    assert (alice.actor, alice.action, alice.detail["account_exists"]) == ("alice", "login_failed", True)
    # A name no account has is not kept: only whether it exists and a keyed hash of it.
    assert (mallory.actor, mallory.action, mallory.detail["account_exists"]) == ("(unknown)", "login_failed", False)
    assert "mallory" not in str(mallory) and len(mallory.detail["name_hash"]) == 16
    assert client.get("/console/").status_code == 302


def test_refused_logins_are_counted_not_audited_and_unknown_names_are_never_stored(app, client):
    """IT's report: 6 wrong logins for a real account, then a stream of made-up names from the same
    address wrote an audit row per request (refused ones too) with every name typed, verbatim."""
    from sqlalchemy import select

    from central import db as central_db
    from central.accounts.models import LoginFailures

    create_user(app)
    assert [login(client, password="wrong-wrong").status_code for _ in range(6)] == [401] * 5 + [429]
    answers = [login(client, username=f"attacker-{n}-13812345678", password="x-x-x-x-x") for n in range(60)]
    assert [a.status_code for a in answers] == [401] * 25 + [429] * 35  # the address allows 30 failures
    rows = table_rows(app, AuditLog)
    assert [(r.actor, r.action) for r in rows] == (
        [("alice", "login_failed")] * 5
        + [("alice", "login_throttled")]
        + [("(unknown)", "login_failed")] * 25
        + [("(unknown)", "login_throttled")]
    )
    assert rows[5].detail["by"] == "account" and rows[-1].detail["by"] == "address"
    assert not any("attacker" in str(r) or "13812345678" in str(r) for r in rows)
    assert len({r.detail["name_hash"] for r in rows[6:-1]}) == 25
    with central_db.session_factory(app)() as db:
        counted = {key: n for key, n in db.execute(select(LoginFailures.key, LoginFailures.failures))}
    assert counted["account:alice"] == 6 and counted["address:127.0.0.1"] == 30 + 35  # refusals counted


def test_logins_are_throttled_per_account_across_instances_with_identical_messages(make_app, clock):
    first, second = make_app(console__login_failures_per_account=2), make_app(console__login_failures_per_account=2)
    create_user(first)
    # Failures spread over two central instances on one database count together.
    known, unknown = first.test_client(), second.test_client()
    assert login(known, password="wrong-wrong").status_code == 401
    assert login(second.test_client(), password="wrong-wrong").status_code == 401
    for _ in range(2):
        assert login(unknown, username="nobody", password="wrong-wrong").status_code == 401
    known_refused = login(known, password=PASSWORD)  # even the right password now
    unknown_refused = login(unknown, username="nobody", password=PASSWORD)
    assert known_refused.status_code == unknown_refused.status_code == 429
    assert without_csrf(known_refused) == without_csrf(unknown_refused)
    assert "15" in known_refused.get_data(as_text=True)
    clock.advance(minutes=16)
    assert login(known).status_code == 302


def test_a_stranger_guessing_an_account_cannot_lock_its_owner_out_of_the_browser_they_use(make_app, clock):
    """OWASP's device cookies: failures from browsers the account never logged in from lock those out,
    not the one its owner uses; failures in that browser count against that browser alone."""
    app = make_app(console__login_failures_per_account=3)
    create_user(app)
    owner = app.test_client()
    assert login(owner).status_code == 302
    assert owner.post("/console/logout", data={"csrf_token": csrf_from(owner.get("/console/").get_data(as_text=True))})
    strangers = [app.test_client() for _ in range(4)]
    for n, stranger in enumerate(strangers):
        stranger.environ_base["REMOTE_ADDR"] = f"10.0.0.{n}"
        assert login(stranger, password="wrong-wrong").status_code == (401 if n < 3 else 429)
    assert login(app.test_client()).status_code == 429  # any other new browser: still refused
    assert login(owner).status_code == 302  # the owner's own browser, after the lockout
    # Wrong passwords typed in the owner's browser count there, as for anyone.
    owner.post("/console/logout", data={"csrf_token": csrf_from(owner.get("/console/").get_data(as_text=True))})
    assert [login(owner, password="wrong-wrong").status_code for _ in range(4)] == [401, 401, 401, 429]
    clock.advance(minutes=16)
    assert login(owner).status_code == 302


def test_logins_are_throttled_per_address(make_app):
    app = make_app(console__login_failures_per_address=2)
    create_user(app)
    client = app.test_client()
    for n in range(2):
        assert login(client, username=f"guess{n}", password="wrong-wrong").status_code == 401
    assert login(client).status_code == 429
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.9.9.9"
    assert login(other).status_code == 302


def test_csrf_missing_or_wrong_is_refused_on_login_logout_and_language(app, client, user_client):
    create_user(app, "bob")
    client.get("/console/login")
    assert client.post("/console/login", data={"username": "bob", "password": PASSWORD}).status_code == 400
    bad = {"username": "bob", "password": PASSWORD, "csrf_token": "x" * 64}
    assert client.post("/console/login", data=bad).status_code == 400
    assert user_client.post("/console/logout").status_code == 400
    assert user_client.post("/console/logout", data={"csrf_token": "forged"}).status_code == 400
    assert user_client.post("/console/language", data={"lang": "en"}).status_code == 400
    assert user_client.get("/console/").status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_cross_site_state_changes_are_refused_even_with_a_token(user_client):
    page = user_client.get("/console/").get_data(as_text=True)
    form = {"csrf_token": csrf_from(page)}
    evil = user_client.post("/console/logout", data=form, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    assert user_client.post("/console/logout", data=form, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    api = user_client.post("/api/v1/devices/dev_x/revoke", json={}, headers={"Sec-Fetch-Site": "cross-site"})
    assert api.status_code == 403 and api.get_json()["error"]["code"]
    assert user_client.get("/console/").status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_every_response_carries_the_security_headers(client, user_client):
    for response in (client.get("/console/login"), user_client.get("/console/fleet"), client.get("/api/v1/nothing")):
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_no_page_or_api_answer_is_kept_in_a_cache(user_client):
    """A browser's or a proxy's cache would keep a customer's profile or an export on disk after logout."""
    for url in ("/console/fleet", "/api/v1/devices", "/api/v1/customers/1", "/api/v1/nothing"):
        assert user_client.get(url).headers.get("Cache-Control") == "no-store", url


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_chinese_by_default_english_on_request(user_client):
    page = user_client.get("/console/")
    html = page.get_data(as_text=True)
    assert "概览" in html and 'lang="zh-CN"' in html
    switched = user_client.post(
        "/console/language", data={"lang": "en", "csrf_token": csrf_from(html), "next": "/console/fleet"}
    )
    assert switched.headers["Location"] == "/console/fleet"
    english = user_client.get("/console/fleet").get_data(as_text=True)
    assert "Overview" in english and "Enrollment tokens" in english and 'lang="en"' in english


def _language_form(html):
    form = re.search(r'<form class="lang"[^>]*>.*?</form>', html, re.S)
    assert form, "no language switch on the page"
    return form.group(0), re.search(r'name="next" value="([^"]*)"', form.group(0)).group(1)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_the_language_switch_on_a_forms_answer_goes_to_its_sections_page_not_a_405(app):
    create_user(app, "tess", role="technician")
    technician = app.test_client()
    assert login(technician, "tess").status_code == 302
    shown = post_form(technician, "/console/fleet/tokens", {"store": "S009"}, "/console/fleet")
    html = shown.get_data(as_text=True)
    assert shown.status_code == 200 and 'id="secret"' in html
    form, back = _language_form(html)
    assert back == "/console/fleet/tokens"  # the page's own address, which takes POST only
    # The token is shown once: switching opens a new tab, so this one keeps it.
    assert 'target="_blank"' in form
    switched = technician.post("/console/language", data={"lang": "en", "csrf_token": csrf_from(html), "next": back})
    assert switched.status_code == 302 and switched.headers["Location"] == "/console/fleet"
    landed = technician.get(switched.headers["Location"])
    assert landed.status_code == 200 and "Enrollment tokens" in landed.get_data(as_text=True)
    assert 'target="_blank"' not in _language_form(landed.get_data(as_text=True))[0]  # an ordinary page
    token = csrf_from(html)
    for asked, answered in (
        ("/console/customers/7/identifiers/remove", "/console/customers/7"),
        ("/console/segments/all-sms/evaluate?x=1", "/console/segments"),
        ("/console/fleet/source-keys/3/revoke", "/console/fleet/source-keys"),
        ("/console/customers/review/12", "/console/customers/review"),
        ("/console/language", "/console/"),
        ("/console/fleet?after=S001,d1", "/console/fleet?after=S001,d1"),  # a page that answers GET stays
        ("/console/no-such-page", "/console/no-such-page"),  # its 404, in the new language
    ):
        switched = technician.post("/console/language", data={"lang": "zh", "csrf_token": token, "next": asked})
        assert switched.headers["Location"] == answered, asked


def test_the_message_catalogue_is_complete_and_compiled():
    from tools.translations import problems

    assert problems() == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_next_parameter_cannot_leave_the_site(app, client):
    create_user(app)
    token = csrf_from(client.get("/console/login").get_data(as_text=True))
    form = {"username": "alice", "password": PASSWORD, "csrf_token": token}
    response = client.post("/console/login?next=//evil.example/", data=form)
    assert response.headers["Location"] == "/console/"


def test_healthz(client):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok", "database": "ok"})


def test_healthz_reports_an_unreachable_database(make_app, tmp_path, backend):
    if backend.name == "sqlite":
        (tmp_path / "not-a-file").mkdir()  # SQLite cannot open a directory as its database
        broken = f"sqlite:///{tmp_path / 'not-a-file'}"
    else:
        broken = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    response = make_app(database__url=broken).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "unreachable"}


def test_console_404_is_html_but_api_404_is_json(client):
    assert client.get("/console/nothing").content_type.startswith("text/html")
    assert client.get("/api/v1/nothing").get_json()["error"]["code"] == "not_found"


def test_the_data_directory_and_session_secret_are_private(make_app, tmp_path):
    data_dir = tmp_path / "fresh" / "data"
    make_app(server__data_dir=str(data_dir))
    assert data_dir.stat().st_mode & 0o777 == 0o700
    assert (data_dir / "secret.key").stat().st_mode & 0o777 == 0o600
    assert len((data_dir / "secret.key").read_bytes()) == 32


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_session_check_waits_for_no_writer_on_sqlite(app, user_client):
    """A session not due its idle-time note is read without SQLite's write lock, which another writer holds."""
    from central import db as central_db
    from central.accounts import web

    name = web.cookie_names(app.config["CENTRAL"])[0]
    cookie = user_client.get_cookie(name)
    assert cookie is not None
    with central_db.engine_for(app).connect() as writer:
        writer.exec_driver_sql("SELECT 1")  # central's engine begins IMMEDIATE: the write lock is held
        with app.test_request_context("/api/v1/coupons/campaigns", headers={"Cookie": f"{name}={cookie.value}"}):
            active = web.current()
        writer.rollback()
    assert active is not None and active.role == "admin"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_console_errors_are_console_pages_in_the_pages_language(app, client):
    create_user(app, "alice", role="admin")
    create_user(app, "mia", role="marketing")
    anonymous = app.test_client()
    missing = anonymous.get("/console/no-such-page")
    page = missing.get_data(as_text=True)
    assert missing.status_code == 404 and 'data-status="404"' in page and "没有这个页面。" in page
    assert "console.css" in page and "Not Found" not in page
    expired = anonymous.post("/console/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "x"})
    assert expired.status_code == 400 and "表单已过期" in expired.get_data(as_text=True)
    marketing = app.test_client()
    assert login(marketing, "mia").status_code == 302
    refused = marketing.get("/console/customers/review")
    assert refused.status_code == 403 and "你的角色不能打开这个页面。" in refused.get_data(as_text=True)
    assert 'data-page="segments"' in refused.get_data(as_text=True)  # the navigation is there to go on from
    wrong_method = marketing.get("/console/customers/review/1")  # decisions are posted
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["Allow"]
    assert "这个页面不接受这种请求。" in wrong_method.get_data(as_text=True)
    # A path no view serves still gets the console's frame: the navigation, the user, the language.
    lost = marketing.get("/console/segments/no-such-segment/page").get_data(as_text=True)
    assert 'data-page="segments"' in lost and "mia" in lost and "退出登录" in lost
    assert '<html lang="zh-CN">' in lost and 'value="en">English</button>' in lost
    marketing.set_cookie("cdp-lang", "en")
    english = marketing.get("/console/no-such-page").get_data(as_text=True)
    assert "There is no such page." in english and '<html lang="en">' in english
    assert 'value="zh">中文</button>' in english and "Log out" in english
    api = anonymous.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.get_json()["error"]["code"] == "not_found"  # the API keeps JSON
