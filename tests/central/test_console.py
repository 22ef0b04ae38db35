"""The HQ console: CSRF-protected login, masked customers and the agents table, audited reads."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from central.models import AuditLog, User
from tests.central.support import PASSWORD, create_user, csrf_from, login, table_rows


def without_csrf(response):
    return re.sub(r'name="csrf_token" value="[^"]+"', "", response.get_data(as_text=True))


def test_pages_need_a_login(client):
    response = client.get("/console/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login?next=/console/")
    assert client.get("/").headers["Location"] == "/console/"


def test_login_sets_a_safe_session_cookie(app, client, clock):
    create_user(app)
    response = login(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/console/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie
    (user,) = table_rows(app, User)
    assert user.last_login_at == clock.now
    assert [(a.actor, a.action) for a in table_rows(app, AuditLog)] == [("alice", "login")]


def test_login_without_the_csrf_token_is_refused(app, client):
    create_user(app)
    client.get("/console/login")
    response = client.post("/console/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/console/").status_code == 302


def test_failed_logins_look_alike_and_are_audited(app, client):
    create_user(app)
    wrong_password = login(client, password="nope")
    unknown_user = login(client, username="mallory")
    for response in (wrong_password, unknown_user):
        assert response.status_code == 401
        assert "Wrong username or password." in response.get_data(as_text=True)
    assert without_csrf(wrong_password) == without_csrf(unknown_user)
    assert [(a.actor, a.action) for a in table_rows(app, AuditLog)] == [
        ("alice", "login_failed"),
        ("mallory", "login_failed"),
    ]
    assert client.get("/console/").status_code == 302


def test_next_parameter_cannot_leave_the_site(app, client):
    create_user(app)
    token = csrf_from(client.get("/console/login").get_data(as_text=True))
    form = {"username": "alice", "password": PASSWORD, "csrf_token": token}
    response = client.post("/console/login?next=//evil.example/", data=form)
    assert response.headers["Location"] == "/console/"


def test_dashboard_lists_masked_customers_and_agents(app, client, agent, user_client, clock):
    agent.send(client, [agent.receipt("R1", "12.50", phone="13812345678", card="VIP00421234")])
    agent.send(client, [agent.receipt("R2", "1.00", phone="<script>alert(1)</script>")])
    clock.advance(minutes=3)
    page = user_client.get("/console/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<title>Retail CDP — HQ console</title>" in html
    assert "138****5678" in html and "*******1234" in html
    assert "13812345678" not in html and "VIP00421234" not in html
    assert "<script>" not in html
    assert "12.50" in html and "1 in total" in html
    assert agent.device_id in html and "pos-1" in html and "0.1.0" in html
    assert "2026-11-23 02:00:00 UTC" in html and "3 min ago" in html
    listed = [a for a in table_rows(app, AuditLog) if a.action == "customers.list"]
    assert [(a.actor, a.detail["via"]) for a in listed] == [("alice", "console")]


def test_logout_needs_the_csrf_token_and_ends_the_session(user_client):
    page = user_client.get("/console/").get_data(as_text=True)
    assert user_client.post("/console/logout").status_code == 400
    assert user_client.get("/console/").status_code == 200
    response = user_client.post("/console/logout", data={"csrf_token": csrf_from(page)})
    assert response.headers["Location"] == "/console/login"
    assert user_client.get("/console/").status_code == 302


def test_session_lifetime_follows_the_setting(make_app):
    app = make_app(console__session_hours=2)
    create_user(app)
    client = app.test_client()
    response = login(client)
    assert app.permanent_session_lifetime == timedelta(hours=2)
    expires = parsedate_to_datetime(response.headers["Set-Cookie"].split("Expires=")[1].split(";")[0])
    assert timedelta(hours=1, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=2)


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
