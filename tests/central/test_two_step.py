"""Two-step sign-in: enrolment, the code after the password, throttling, replay, recovery codes, confinement, reset.

Codes are computed with pyotp from the secret the enrolment page shows, as an authenticator app would.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from central import db as central_db
from central.models import AuditLog
from tests.central.cli_runner import InProcessCli, write_config
from tests.central.support import PASSWORD, USERNAME, FakeClock, create_user, csrf_from, login, table_rows

PAGE = "/console/account/two-step"


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(console__two_step_roles="admin")  # the product's default


def _post(client: FlaskClient, path: str, form: dict[str, Any], page: str = PAGE) -> Any:
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(path, data={**form, "csrf_token": token})


def _secret(html: str) -> str:
    match = re.search(r'<pre id="secret">([A-Z2-7 ]+)</pre>', html)
    assert match, html
    return match.group(1).replace(" ", "")


def _code(secret: str, clock: FakeClock, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now.timestamp() + 30 * steps)


def _enrol(client: FlaskClient, clock: FakeClock) -> tuple[str, list[str]]:
    """Set up two-step sign-in in a logged-in client; returns the secret and the recovery codes shown."""
    started = _post(client, f"{PAGE}/start", {})
    assert started.status_code == 200
    secret = _secret(started.get_data(as_text=True))
    confirmed = _post(client, f"{PAGE}/confirm", {"code": _code(secret, clock)})
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
    html = confirmed.get_data(as_text=True)
    codes = re.search(r'<pre id="recovery-codes">([^<]+)</pre>', html)
    assert codes
    return secret, codes.group(1).split()


def _second_step(client: FlaskClient, code: str) -> Any:
    return _post(client, "/console/login/code", {"code": code}, page="/console/login/code")


def test_an_admin_without_two_step_is_confined_to_setting_it_up_then_signs_in_with_a_code(app, clock, backend):
    create_user(app)
    client = app.test_client()
    first = login(client)
    assert first.status_code == 302 and first.headers["Location"].endswith(PAGE)
    # Nothing else until it is set up: pages lead back to the set-up page, the API says why.
    for path in ("/console/", "/console/customers", "/console/fleet"):
        answer = client.get(path)
        assert answer.status_code == 302 and answer.headers["Location"].endswith(PAGE), path
    assert client.get("/api/v1/segments").status_code == 403
    page = client.get(PAGE).get_data(as_text=True)
    assert 'id="required"' in page and "<nav>" in page and 'data-page="overview"' not in page
    # A wrong code does not switch it on.
    started = _post(client, f"{PAGE}/start", {})
    secret = _secret(started.get_data(as_text=True))
    assert 'src="data:image/svg+xml' in started.get_data(as_text=True)  # the QR code, inline
    assert _post(client, f"{PAGE}/confirm", {"code": "000000"}).status_code == 400
    confirmed = _post(client, f"{PAGE}/confirm", {"code": _code(secret, clock)})
    assert confirmed.status_code == 200 and 'id="recovery-codes"' in confirmed.get_data(as_text=True)
    assert client.get("/console/").status_code == 200  # this session passed it by setting it up
    assert _post(client, "/console/logout", {}, page="/console/").status_code == 302

    # The next login: the password alone opens no session.
    clock.advance(seconds=60)
    second = app.test_client()
    answer = login(second)
    assert answer.status_code == 302 and "/console/login/code" in answer.headers["Location"]
    assert second.get("/console/").status_code == 302  # to the login page: not logged in
    assert "/console/login" in second.get("/console/").headers["Location"]
    assert _second_step(second, _code(secret, clock)).status_code == 302
    assert second.get("/console/").status_code == 200
    logins = [r.detail for r in table_rows(app, AuditLog) if r.action == "login"]
    assert logins[-1] == {"remote_addr": "127.0.0.1", "two_step": "code"}
    assert [r.action for r in table_rows(app, AuditLog) if r.action.startswith("two_step")] == ["two_step.enable"]


def test_a_code_is_accepted_once_and_wrong_codes_are_throttled_and_audited(app, clock, backend):
    create_user(app)
    client = app.test_client()
    login(client)
    secret, _codes = _enrol(client, clock)
    clock.advance(seconds=30)
    code = _code(secret, clock)

    first = app.test_client()
    login(first)
    assert _second_step(first, code).status_code == 302
    replay = app.test_client()
    login(replay)
    assert _second_step(replay, code).status_code == 401  # the same code again, within its window
    assert _second_step(replay, _code(secret, clock, steps=-1)).status_code == 401  # an older one too

    # Wrong codes count against the account like wrong passwords (two so far); a right password in between
    # does not clear the count, or a known password would buy endless guesses at the code.
    wrong = "123456" if code != "123456" else "654321"
    assert _second_step(replay, wrong).status_code == 401
    assert login(replay).status_code == 302
    assert _second_step(replay, wrong).status_code == 401
    assert _second_step(replay, wrong).status_code == 401  # the fifth failure: the account's limit
    assert _second_step(replay, _code(secret, clock, steps=1)).status_code == 429  # refused, even the right one
    failed = [r for r in table_rows(app, AuditLog) if r.action == "login_failed"]
    assert [r.detail.get("step") for r in failed] == ["two_step"] * 5
    assert all(r.actor == USERNAME for r in failed)
    assert not any(code in str(r.detail) for r in failed)  # the code typed is never stored
    assert [r.detail["by"] for r in table_rows(app, AuditLog) if r.action == "login_throttled"] == ["account"]


def test_a_recovery_code_signs_in_once(app, clock, backend):
    create_user(app)
    client = app.test_client()
    login(client)
    _, codes = _enrol(client, clock)
    assert len(codes) == 10 and len(set(codes)) == 10
    first = app.test_client()
    login(first)
    answer = _second_step(first, codes[0].upper().replace("-", " "))  # as typed off paper
    assert answer.status_code == 302 and answer.headers["Location"].endswith(PAGE)
    assert 'id="recovery-left">9<' in first.get(PAGE).get_data(as_text=True)
    second = app.test_client()
    login(second)
    assert _second_step(second, codes[0]).status_code == 401
    assert _second_step(second, codes[1]).status_code == 302


def test_the_secret_and_recovery_codes_are_not_stored_in_clear(app, clock, backend):
    create_user(app)
    client = app.test_client()
    login(client)
    secret, codes = _enrol(client, clock)
    engine = central_db.engine_for(app)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT * FROM user_two_step")).one()
        hashes = conn.execute(text("SELECT code_hash FROM user_recovery_codes")).scalars().all()
    row = repr(tuple(stored)).encode() + bytes(stored.secret_sealed)
    assert secret.encode() not in row and secret.lower().encode() not in row
    assert base64.b32decode(secret) not in bytes(stored.secret_sealed)
    assert len(hashes) == 10 and not {c.replace("-", "") for c in codes} & set(hashes)


def test_the_code_step_expires(app, clock, backend):
    create_user(app)
    client = app.test_client()
    login(client)
    secret, _codes = _enrol(client, clock)
    late = app.test_client()
    login(late)
    clock.advance(minutes=6)
    assert _second_step(late, _code(secret, clock)).status_code == 401
    assert late.get("/console/").status_code == 302


def test_a_role_not_required_logs_in_with_the_password_and_may_turn_two_step_on_and_off(app, clock, backend):
    create_user(app, "mona", role="marketing")
    client = app.test_client()
    assert login(client, "mona").headers["Location"].endswith("/console/")
    assert client.get("/console/customers").status_code == 200
    _enrol(client, clock)
    assert _post(client, f"{PAGE}/disable", {"password": "wrong"}).status_code == 401
    assert _post(client, f"{PAGE}/disable", {"password": PASSWORD}).status_code == 200
    assert 'id="start"' in client.get(PAGE).get_data(as_text=True)
    engine = central_db.engine_for(app)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM user_two_step")).scalar() == 0


def test_an_admin_cannot_turn_it_off_and_reset_two_step_leads_to_setting_it_up_again(app, clock, backend, tmp_path):
    create_user(app)
    create_user(app, "mona", role="marketing")
    client = app.test_client()
    login(client)
    secret, _codes = _enrol(client, clock)
    assert _post(client, f"{PAGE}/disable", {"code": _code(secret, clock, 1)}).status_code == 403
    cli = InProcessCli(write_config(tmp_path / "central.toml", tmp_path / "data", backend.url))
    listed = cli.run("user", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{USERNAME}\tadmin\t-\tactive\ttwo-step" in listed.stdout.splitlines()
    assert "mona\tmarketing\t-\tactive\tpassword-only" in listed.stdout.splitlines()
    reset = cli.run("user", "reset-two-step", USERNAME)
    assert reset.returncode == 0, reset.stderr
    assert "two-step sign-in of admin user 'alice' is off; 1 session(s) ended" in reset.stderr
    assert client.get("/console/").status_code == 302  # its session ended
    rows = [r for r in table_rows(app, AuditLog) if r.action == "user.two_step_reset"]
    assert [(r.actor.startswith("cli:"), r.subject, r.detail) for r in rows] == [
        (True, USERNAME, {"was_on": True, "sessions_ended": 1})
    ]
    assert "password-only" in cli.run("user", "list").stdout.splitlines()[0]
    again = app.test_client()
    assert login(again).headers["Location"].endswith(PAGE)  # the password, then set it up again
    assert cli.run("user", "reset-two-step", "nobody").returncode == 1


def test_the_default_requires_it_of_admins_only():
    from central.config import CentralConfig
    from central.config_loader import load_config

    assert CentralConfig().console_two_step_roles == "admin"
    with pytest.raises(Exception, match="unknown role 'root'"):
        load_config(None, environ={}, overrides={"console.two_step_roles": "admin, root"})
