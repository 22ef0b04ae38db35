"""Birthday triggers: exactly once per customer and year, only with marketing consent, with a control group."""

from __future__ import annotations

import itertools
import os
import stat
import threading
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from central import db as central_db
from central import scheduler
from central.campaigns import triggers
from central.campaigns.models import CONTROL, ExportEntry, TriggerOccasion
from central.cli import main
from central.jobs import OK
from central.models import AuditLog
from tests.central.cli_runner import write_config
from tests.central.consent_support import consent_event, customer_of, load, signup
from tests.central.support import create_user, login, post_form, table_rows

TZ = "Asia/Shanghai"
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
_phones = itertools.count(1)


def _phone() -> str:
    return f"1390572{next(_phones):04d}"


def _declare(app, name="birthday-coupon", *, days=3, control=0.0, action="export", action_params=None) -> int:
    declared = triggers.check(
        name, "birthday", {"days_before": days, "channel": "sms"}, action, action_params or {}, control
    )
    with central_db.session_factory(app)() as db:
        trigger_id = triggers.declare(db, declared, actor="test", now=NOW)
        db.commit()
    return trigger_id


def _customer(app, birthday: date, *, consent: bool | None = True, at: datetime = NOW - timedelta(days=30)) -> int:
    phone = _phone()
    events = [signup(f"s-{phone}", phone, birthday=birthday, at=at)]
    if consent is not None:
        events.append(consent_event(f"c-{phone}", phone, granted=consent, at=at + timedelta(minutes=1)))
    load(app, events)
    return customer_of(app, phone)


def _evaluate(app, now=NOW, instance="test") -> dict[str, int]:
    with central_db.session_factory(app)() as db:
        return triggers.evaluate_all(db, now, TZ, instance)


def _fired(app, trigger_id=None) -> list[tuple[int, str, str]]:
    occasions = TriggerOccasion.__table__
    query = select(occasions.c.customer_id, occasions.c.occasion, occasions.c.grp).order_by(occasions.c.id)
    if trigger_id is not None:
        query = query.where(occasions.c.trigger_id == trigger_id)
    with central_db.session_factory(app)() as db:
        return [tuple(r) for r in db.execute(query)]


def _exports(app) -> int:
    with central_db.session_factory(app)() as db:
        return db.scalar(select(func.count()).select_from(ExportEntry)) or 0


def _in(days: int, years_ago: int = 30) -> date:
    day = date(2026, 11, 23) + timedelta(days=days)  # NOW in Shanghai
    return day.replace(year=day.year - years_ago)


def test_fires_once_per_customer_and_year_across_runs_restarts_and_years(app, make_app):
    trigger = _declare(app)
    due = _customer(app, _in(2))
    today = _customer(app, _in(0))
    _customer(app, _in(4))  # outside the window
    _customer(app, _in(-1))  # yesterday: this year's occasion has passed
    counts = _evaluate(app)
    assert counts["fired"] == 2 and counts["queued"] == 2
    assert sorted(_fired(app, trigger)) == sorted([(due, "2026", "action"), (today, "2026", "action")])
    assert _evaluate(app)["fired"] == 0  # a second run
    restarted = make_app()  # a restart: a new app on the same database
    assert _evaluate(restarted, NOW + timedelta(hours=5))["fired"] == 0
    assert _exports(app) == 2
    # A year later the next birthday is a new occasion.
    later = NOW + timedelta(days=365)
    assert _evaluate(restarted, later)["fired"] == 2
    assert {occasion for _, occasion, _ in _fired(app)} == {"2026", "2027"}


def test_a_birthday_across_new_year_and_on_29_february():
    assert triggers.birthday_window(date(2026, 12, 30), 3) == {
        "12-30": "2026",
        "12-31": "2026",
        "01-01": "2027",
        "01-02": "2027",
    }
    assert triggers.birthday_window(date(2027, 2, 27), 1) == {"02-27": "2027", "02-28": "2027", "02-29": "2027"}
    assert "02-29" not in triggers.birthday_window(date(2028, 2, 27), 1)


def test_never_without_consent_and_a_withdrawal_keeps_the_customer_out_from_the_next_evaluation(app):
    trigger = _declare(app)
    _customer(app, _in(1), consent=None)
    _customer(app, _in(1), consent=False)
    phone = _phone()
    load(app, [signup("later", phone, birthday=_in(5), at=NOW - timedelta(days=9))])
    load(app, [consent_event("g", phone, granted=True, at=NOW - timedelta(days=8))])
    assert _evaluate(app)["fired"] == 0
    load(app, [consent_event("w", phone, granted=False, at=NOW + timedelta(days=1))], now=NOW + timedelta(days=1))
    assert _evaluate(app, NOW + timedelta(days=3))["fired"] == 0
    assert _fired(app, trigger) == []
    # Granting again lets the next evaluation fire.
    load(
        app,
        [consent_event("g2", phone, granted=True, at=NOW + timedelta(days=3, hours=1))],
        now=NOW + timedelta(days=4),
    )
    assert _evaluate(app, NOW + timedelta(days=3, hours=2))["fired"] == 1


def test_the_control_group_is_recorded_and_gets_no_action(app):
    trigger = _declare(app, control=50.0)
    customers = [_customer(app, _in(1)) for _ in range(12)]
    counts = _evaluate(app)
    fired = _fired(app, trigger)
    control = {cid for cid, _, grp in fired if grp == CONTROL}
    assert len(fired) == 12 and counts["control"] == len(control)
    assert control == {c for c in customers if triggers.in_control_group("birthday-coupon", c, 50.0)}
    assert 0 < len(control) < 12
    assert _exports(app) == 12 - len(control)


def test_two_instances_evaluating_at_once_fire_each_customer_once(app, make_app):
    trigger = _declare(app)
    for _ in range(30):
        _customer(app, _in(2))
    other = make_app()
    barrier = threading.Barrier(2)
    results: list[dict[str, int]] = []

    def run(instance_app, name):
        barrier.wait()
        results.append(_evaluate(instance_app, instance=name))

    threads = [threading.Thread(target=run, args=(a, n)) for a, n in ((app, "one"), (other, "two"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["fired"] for r in results) == 30
    assert len(_fired(app, trigger)) == 30 == _exports(app)


@st.composite
def _histories(draw):
    """Per customer: consent decisions (day offset, granted, channel or every channel), possibly none."""
    decision = st.tuples(st.integers(-60, 0), st.booleans(), st.sampled_from(["sms", "email", None]))
    return draw(st.lists(st.lists(decision, max_size=4), min_size=1, max_size=4))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories=_histories(), data=st.data())
def test_never_fires_for_a_customer_whose_latest_sms_decision_is_not_a_grant(app, histories, data):
    name = f"bday-{next(_phones)}"
    trigger = _declare(app, name)
    expected, mine = set(), set()
    for history in histories:
        phone = _phone()
        load(app, [signup(f"s-{phone}", phone, birthday=_in(1), at=NOW - timedelta(days=90))])
        customer = customer_of(app, phone)
        mine.add(customer)
        events = [
            consent_event(f"{phone}-{i}", phone, granted=g, at=NOW + timedelta(days=d, minutes=i), channel=ch)
            for i, (d, g, ch) in enumerate(history)
        ]
        # Delivered in any order, some twice.
        shuffled = data.draw(
            st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=2)) if events else [])
        )
        for event in shuffled:
            load(app, [event])
        relevant = [(d, i, g) for i, (d, g, ch) in enumerate(history) if ch in ("sms", None)]
        if relevant and max(relevant)[2]:
            expected.add(customer)
    _evaluate(app)
    assert {cid for cid, _, _ in _fired(app, trigger)} & mine == expected


class CouponRecorder:
    """A coupon action as the coupon issue will add one: it implements the Action protocol."""

    name = "test-coupon"

    def __init__(self) -> None:
        self.issued: list[tuple[str, int, str]] = []

    def check(self, params):
        return None if params.get("campaign") else "needs a campaign"

    def enqueue(self, conn, trigger, firings, now):
        self.issued.extend((trigger.action_params["campaign"], f.customer_id, f.occasion) for f in firings)
        return len(firings)


def test_a_registered_coupon_action_is_given_each_customer_once_and_merges_do_not_fire_again(app, make_app):
    from central.campaigns.actions import register_action
    from central.identity import merges
    from central.identity.registry import load_registry

    coupons = CouponRecorder()
    register_action(coupons)
    _declare(app, "birthday-coupon-2", action="test-coupon", action_params={"campaign": "BDAY26"})
    older = _customer(app, _in(1), consent=None)  # no consent: gets nothing on its own
    younger = _customer(app, _in(1))
    _evaluate(app)
    _evaluate(make_app())
    assert coupons.issued == [("BDAY26", younger, "2026")]
    # The two turn out to be one person: the survivor (the older id) must not get a second coupon.
    with central_db.session_factory(app)() as db:
        kept = merges.merge_customers(
            db, load_registry(app.config["CENTRAL"]), older, younger, rule="review", now=NOW, operator="t"
        )
        db.commit()
    assert kept == older
    _evaluate(app, NOW + timedelta(hours=1))
    assert coupons.issued == [("BDAY26", younger, "2026")]


def test_triggers_are_declared_and_listed_over_the_api_without_their_secret(app, user_client):
    body = {
        "name": "bday-hook",
        "kind": "birthday",
        "params": {"days_before": 3, "channel": "wechat"},
        "action": "webhook",
        "action_params": {"url": "http://127.0.0.1:9/hook", "secret": "a-secret-of-16-chars"},
    }
    assert user_client.post("/api/v1/triggers", json=body).status_code == 201
    again = user_client.post("/api/v1/triggers", json=body)
    assert again.status_code == 400 and "exists already" in again.get_json()["error"]["message"]
    assert (again.get_json()["error"]["reason"], again.get_json()["error"]["field"]) == ("exists", "name")
    bad = user_client.post("/api/v1/triggers", json={**body, "name": "x", "params": {"channel": "fax"}})
    assert bad.status_code == 400 and bad.get_json()["error"]["message"].startswith("channel:")
    assert (bad.get_json()["error"]["reason"], bad.get_json()["error"]["field"]) == ("bad_channel", "channel")
    short = user_client.post("/api/v1/triggers", json={**body, "name": "y", "action_params": {"url": "ftp://x"}})
    assert short.status_code == 400
    (listed,) = user_client.get("/api/v1/triggers").get_json()["triggers"]
    assert listed["action_params"] == {"url": "http://127.0.0.1:9/hook"}
    assert (listed["control_percent"], listed["fired"], listed["control"]) == (10.0, 0, 0)


def test_a_name_with_a_trailing_line_break_is_refused(app, user_client):
    """A second 'bday-hook' beside the first, whose export's Content-Disposition could not be sent."""
    params = {"days_before": 3, "channel": "sms"}
    body = {"name": "bday-hook\n", "kind": "birthday", "params": params, "action": "export"}
    refused = user_client.post("/api/v1/triggers", json=body)
    assert refused.status_code == 400, refused.get_json()
    assert refused.get_json()["error"]["reason"] == "bad_name", refused.get_json()


def _export_ids(client, name: str) -> list[int]:
    reply = client.get(f"/api/v1/triggers/{name}/export.csv")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    header, *rows = reply.get_data(as_text=True).splitlines()
    assert header == "customer_id,occasion,added_at"
    return [int(row.split(",")[0]) for row in rows]


def test_the_export_list_leaves_out_customers_who_withdrew_since_the_trigger_fired(app, user_client):
    from central.identity import merges
    from central.identity.registry import load_registry

    _declare(app, "birthday-list")
    survivor = _customer(app, _in(200), consent=None)  # no birthday due, no decision of its own
    stays, withdraws, merged = (_customer(app, _in(1)) for _ in range(3))
    assert _evaluate(app)["fired"] == 3
    assert _export_ids(user_client, "birthday-list") == [stays, withdraws, merged]

    # A withdrawal after the firing: the next download leaves the customer out.
    withdrawal = {"decisions": [{"purpose": "marketing", "granted": False, "id": "w1"}]}
    assert user_client.post(f"/api/v1/customers/{withdraws}/consents", json=withdrawal).status_code == 201
    assert _export_ids(user_client, "birthday-list") == [stays, merged]

    # Merged away since: judged as the customer it is now, whose decisions now include its grant ...
    with central_db.session_factory(app)() as db:
        kept = merges.merge_customers(
            db, load_registry(app.config["CENTRAL"]), survivor, merged, rule="review", now=NOW, operator="t"
        )
        db.commit()
    assert kept == survivor
    assert _export_ids(user_client, "birthday-list") == [stays, merged]
    # ... until the survivor withdraws.
    withdrawal = {"decisions": [{"purpose": "marketing", "channel": "sms", "granted": False, "id": "w2"}]}
    assert user_client.post(f"/api/v1/customers/{survivor}/consents", json=withdrawal).status_code == 201
    assert _export_ids(user_client, "birthday-list") == [stays]
    # The download is audited with the rows it held.
    with central_db.session_factory(app)() as db:
        detail = db.scalars(
            select(AuditLog.detail).where(AuditLog.action == "trigger.export").order_by(AuditLog.id.desc())
        ).first()
    assert detail == {"rows": 1}


def test_the_command_line_export_is_owner_only_in_a_directory_others_may_read(app, tmp_path, capsys):
    _declare(app, "birthday-list")
    customer = _customer(app, _in(1))
    assert _evaluate(app)["fired"] == 1
    config = app.config["CENTRAL"]
    path = write_config(tmp_path / "central.toml", config.server_data_dir, config.database_url)
    folder = tmp_path / "lists"
    folder.mkdir(mode=0o755)
    out = folder / "birthdays.csv"
    old = os.umask(0o022)
    try:
        assert main(["trigger-export", "birthday-list", "--out", str(out), "--config", str(path)]) == 0
    finally:
        os.umask(old)
    assert out.read_text(encoding="utf-8").splitlines()[1].startswith(f"{customer},")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_marketing_runs_birthday_triggers_but_may_not_read_whom_they_fired_for(app, user_client):
    """Marketing sees birthdays as their year: the list of customers a birthday trigger fired for, with the day
    each was added, would give the rest away (days_before 0, 1, 2 ... diffed recover every birthday)."""
    create_user(app, "mia", role="marketing")
    marketing = app.test_client()
    assert login(marketing, "mia").status_code == 302
    form = {"kind": "birthday", "channel": "sms", "purpose": "marketing", "action": "export", "control_percent": "0"}
    for days in (0, 1):
        created = post_form(
            marketing,
            "/console/campaigns/triggers/new",
            {**form, "name": f"bday-{days}", "param_days_before": str(days)},
        )
        assert created.status_code == 302, created.get_data(as_text=True)
    today, tomorrow = _customer(app, _in(0)), _customer(app, _in(1))
    assert _evaluate(app)["fired"] == 3
    for name in ("bday-0", "bday-1"):
        refused = marketing.get(f"/api/v1/triggers/{name}/export.csv")
        assert refused.status_code == 403, refused.get_data(as_text=True)
        error = refused.get_json()["error"]
        assert (error["code"], error["reason"], error["field"]) == ("forbidden", "withheld_field", "birthday")
        assert "birthday" in error["message"]
    # Each refusal is audited, as a page or API the role may not call at all is.
    refusals = [(a.actor, a.subject, a.detail) for a in table_rows(app, AuditLog) if a.action == "access.refused"]
    assert refusals == [
        ("mia", f"GET /api/v1/triggers/{name}/export.csv", {"role": "marketing", "reason": "withheld_field"})
        for name in ("bday-0", "bday-1")
    ]
    # Administrators see birthdays in full, and the lists with them.
    assert _export_ids(user_client, "bday-0") == [today]
    assert sorted(_export_ids(user_client, "bday-1")) == sorted([today, tomorrow])
    # Other kinds' occasions are purchases, tags and complaints marketing reads anyway: their lists stay open.
    declared = triggers.check("second", "second_item", {"channel": "sms"}, "export", {}, 0.0)
    with central_db.session_factory(app)() as db:
        triggers.declare(db, declared, actor="test", now=NOW)
        db.commit()
    assert marketing.get("/api/v1/triggers/second/export.csv").status_code == 200


def test_a_placeholder_birthday_gets_no_birthday_coupon(app, clock):
    """Legacy member systems fill in 1970-01-01 for members who gave no birthday: all of them used to
    get a birthday coupon on New Year's Day."""
    trigger = _declare(app)
    placeholder = _customer(app, date(1970, 1, 1))
    born = _customer(app, date(1988, 1, 1))
    clock.now = datetime(2026, 12, 30, 2, 0, tzinfo=UTC)  # 10:00 on 30 December in Shanghai
    assert scheduler.run_now(central_db.session_factory(app), app.config["CENTRAL"], "triggers", clock) == OK
    assert _fired(app, trigger) == [(born, "2027", "action")]
    assert placeholder != born
