"""Consent: events from every sender decide the gate's verdict, latest first, through merges and splits."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import orjson
from sqlalchemy import func, select

from central import db as central_db
from central.customers import consent_gate
from central.customers.consent_models import ConsentDecision
from central.identity import merges, split
from central.identity.models import MERGE, Customer, LedgerEntry
from central.identity.registry import load_registry
from central.segments.evaluation import count
from central.sources.backfill import load_events
from shared import wire
from tests.central.consent_support import consent_event, customer_of, load, signup
from tests.central.sources_support import new_key, post_events
from tests.central.support import START, create_user, login

TODAY = START.date()


def _verdict(app, customer_id, channel="sms", purpose="marketing"):
    with central_db.session_factory(app)() as db:
        return consent_gate.verdict(db, customer_id, purpose, channel, TODAY)


def _consented(app, purpose="marketing", channel="sms", today=TODAY):
    with central_db.session_factory(app)() as db:
        return set(db.scalars(consent_gate.consented(purpose, channel, today)))


def _decisions(app):
    with central_db.session_factory(app)() as db:
        return db.scalar(select(func.count()).select_from(ConsentDecision)) or 0


def test_latest_decision_wins_whatever_the_arrival_order_and_duplicates(app):
    t = START - timedelta(days=10)
    load(app, [signup("s1", "13905710000", at=t)])
    customer = customer_of(app, "13905710000")
    assert _verdict(app, customer).reason == "no_consent"

    load(app, [consent_event("c1", "13905710000", granted=True, at=t + timedelta(days=1), notice_version="v1")])
    assert _verdict(app, customer).allowed
    assert _verdict(app, customer, "email").reason == "no_consent"  # consent is per channel
    assert customer in _consented(app) and customer not in _consented(app, channel="email")

    load(app, [consent_event("c2", "13905710000", granted=False, at=t + timedelta(days=3))])
    # An older grant arriving late, and the withdrawal sent again: neither changes the verdict.
    staged = load(
        app,
        [
            consent_event("c0", "13905710000", granted=True, at=t + timedelta(days=2)),
            consent_event("c2", "13905710000", granted=False, at=t + timedelta(days=3)),
        ],
    )
    assert staged.duplicate == ["c2"]
    verdict = _verdict(app, customer)
    assert (verdict.allowed, verdict.reason) == (False, "withdrawn")
    assert customer not in _consented(app)
    assert _decisions(app) == 3

    # A decision for every channel: a later withdrawal without a channel covers sms too.
    load(app, [consent_event("c3", "13905710000", granted=True, at=t + timedelta(days=4))])
    assert _verdict(app, customer).allowed
    load(app, [consent_event("c4", "13905710000", granted=False, at=t + timedelta(days=5), channel=None)])
    assert _verdict(app, customer).reason == "withdrawn"
    assert _verdict(app, customer, "wechat").reason == "withdrawn"


def test_a_withdrawal_at_the_same_instant_as_a_grant_wins(app):
    load(app, [signup("s1", "13905710001", at=START)])
    customer = customer_of(app, "13905710001")
    at = START - timedelta(hours=1)
    load(app, [consent_event("z-grant", "13905710001", granted=True, at=at)])
    load(app, [consent_event("a-withdraw", "13905710001", granted=False, at=at)])
    assert _verdict(app, customer).reason == "withdrawn"
    assert customer not in _consented(app)


def test_an_agents_consent_event_is_recorded_in_the_ingest_transaction(app, client, agent):
    event = wire.Event(
        event_id=agent.new_id(),
        seq=1,
        kind="consent.given",
        observed_at=wire.format_time(START - timedelta(minutes=5)),
        store_id="S001",
        payload={"purpose": "marketing", "channel": "wechat", "notice_version": "2026-01"},
        identifiers={"phone": "13905710002"},
    )
    reply = agent.send(client, [event])
    assert reply["accepted"] == [event.event_id]
    assert agent.send(client, [event])["duplicate"] == [event.event_id]
    customer = customer_of(app, "13905710002")
    with central_db.session_factory(app)() as db:
        (row,) = consent_gate.decisions_of(db, customer)
    assert (row.source, row.origin, row.origin_id, row.notice_version) == (
        "till",
        agent.device_id,
        event.event_id,
        "2026-01",
    )
    assert _verdict(app, customer, "wechat").allowed


def test_a_backfill_applies_consent_like_any_source(app, tmp_path: Path):
    lines = [
        signup("b1", "13905710004", at=START - timedelta(days=400)),
        consent_event("b2", "13905710004", granted=True, at=START - timedelta(days=300), source="import"),
    ]
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    with central_db.session_factory(app)() as db:
        summary = load_events(db, path, "legacy", registry=load_registry(app.config["CENTRAL"]), clock=lambda: START)
    assert summary.accepted == 2
    customer = customer_of(app, "13905710004")
    with central_db.session_factory(app)() as db:
        (row,) = consent_gate.decisions_of(db, customer)
    assert (row.source, row.origin) == ("import", "source:legacy")
    assert _verdict(app, customer).allowed


def test_a_consent_event_that_names_no_one_is_refused_not_lost(app, client, tmp_path: Path):
    """A withdrawal with no identifier, an unusable phone or a test number was answered "accepted" and
    recorded nowhere: the source believed it had landed. It is refused with a reason now, by the API
    and by a backfill alike, and nothing of it is stored."""
    at = START - timedelta(days=1)
    nameless = {k: v for k, v in consent_event("c1", "13905710010", granted=False, at=at).items() if k != "identifiers"}
    events = [
        nameless,
        consent_event("c2", "12345", granted=False, at=at),
        consent_event("c3", "13800138000", granted=False, at=at),  # a built-in test number
        consent_event("c4", "13905710011", granted=False, at=at),
    ]
    reply = post_events(client, new_key(app), events).get_json()
    assert reply["accepted"] == ["c4"]
    assert reply["rejected"] == [{"event_id": e, "reason": "consent_without_identifier"} for e in ("c1", "c2", "c3")]
    assert _decisions(app) == 1  # c4's
    path = tmp_path / "consents.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps({**e, "event_id": "b" + e["event_id"]}) for e in events) + b"\n")
    with central_db.session_factory(app)() as db:
        summary = load_events(db, path, "legacy", registry=load_registry(app.config["CENTRAL"]), clock=lambda: START)
    assert (summary.accepted, dict(summary.rejected)) == (1, {"consent_without_identifier": 3})


def test_an_accepted_event_says_which_identifiers_were_left_out(app, client):
    """The order is kept (a sale is a sale), but the source learns that 12345 identifies no one."""
    order = {
        "event_id": "o1",
        "kind": "order.online",
        "observed_at": wire.format_time(START - timedelta(hours=1)),
        "identifiers": {"phone": "12345", "email": "bad", "member_id": "M-77"},
        "payload": {"order_no": "W1", "total": "9.90"},
    }
    reply = post_events(client, new_key(app), [order]).get_json()
    assert reply["accepted"] == ["o1"]
    assert reply["warnings"] == [
        {"event_id": "o1", "reason": "unusable_identifier:phone:invalid"},
        {"event_id": "o1", "reason": "unusable_identifier:email:invalid"},
    ]
    clean = {**order, "event_id": "o2", "identifiers": {"member_id": "M-78"}}
    assert "warnings" not in post_events(client, new_key(app), [clean]).get_json()


def test_after_a_merge_the_latest_decision_of_either_side_holds_and_a_split_gives_each_its_own(app, clock):
    t = START - timedelta(days=30)
    load(app, [signup("a", "13905710005", at=t), signup("b", "13905710006", at=t)])
    a, b = customer_of(app, "13905710005"), customer_of(app, "13905710006")
    load(
        app,
        [
            consent_event("a-withdraw", "13905710005", granted=False, at=t + timedelta(days=2)),
            consent_event("b-grant", "13905710006", granted=True, at=t + timedelta(days=1)),
        ],
    )
    assert _verdict(app, b).allowed and not _verdict(app, a).allowed
    with central_db.session_factory(app)() as db:
        kept = merges.merge_customers(
            db, load_registry(app.config["CENTRAL"]), a, b, rule="review", now=START, operator="test"
        )
        db.commit()
    gone = b if kept == a else a
    # The older grant does not override the withdrawal; asking for the merged-away id answers for the survivor.
    assert _verdict(app, kept).reason == "withdrawn"
    assert _verdict(app, gone).reason == "withdrawn"
    assert _consented(app) == set()

    with central_db.session_factory(app)() as db:
        ledger_row = db.scalar(select(LedgerEntry.id).where(LedgerEntry.action == MERGE))
        split.split(db, kept, ledger_row, now=START, operator="test", registry=load_registry(app.config["CENTRAL"]))
        db.commit()
    assert _verdict(app, a).reason == "withdrawn"
    assert _verdict(app, b).allowed
    assert _consented(app) == {b}


def test_a_newer_grant_on_the_other_side_of_a_merge_holds(app):
    t = START - timedelta(days=30)
    load(app, [signup("a", "13905710007", at=t), signup("b", "13905710008", at=t)])
    a, b = customer_of(app, "13905710007"), customer_of(app, "13905710008")
    load(
        app,
        [
            consent_event("a-withdraw", "13905710007", granted=False, at=t + timedelta(days=1)),
            consent_event("b-grant", "13905710008", granted=True, at=t + timedelta(days=2)),
        ],
    )
    with central_db.session_factory(app)() as db:
        kept = merges.merge_customers(
            db, load_registry(app.config["CENTRAL"]), a, b, rule="review", now=START, operator="t"
        )
        db.commit()
    assert _verdict(app, kept).allowed
    assert _consented(app) == {kept}


def test_a_minor_needs_a_guardians_consent(app):
    birthday = date(TODAY.year - 10, 6, 1)
    load(app, [signup("m", "13905710009", birthday=birthday, at=START - timedelta(days=5))])
    child = customer_of(app, "13905710009")
    load(app, [consent_event("c1", "13905710009", granted=True, at=START - timedelta(days=4))])
    assert _verdict(app, child).reason == "minor_without_guardian_consent"
    assert child not in _consented(app)
    load(app, [consent_event("c2", "13905710009", granted=True, at=START - timedelta(days=3), scope="guardian")])
    assert _verdict(app, child).allowed
    assert child in _consented(app)
    # A minor until the end of the year of the fourteenth birthday (decision 0082).
    assert consent_gate.minor_cutoff(date(TODAY.year + 5, 1, 1)) == date(TODAY.year - 10, 12, 31).isoformat()


def _minor_everywhere(app, customers, born_in, day):
    """Whether each customer is a minor on ``day`` by every form of the gate, which must all agree."""
    walk = select(Customer.id).where(
        Customer.id.in_(customers), consent_gate.consent_holds("marketing", "sms", day, Customer.id)
    )
    with central_db.session_factory(app)() as db:
        consented = set(db.scalars(consent_gate.consented("marketing", "sms", day, among=list(customers))))
        refused = set(db.scalars(consent_gate.refused("marketing", day)))
        held = set(db.scalars(walk))
        answers = {}
        for customer in customers:
            verdict = consent_gate.may_market(db, customer, "sms", day)
            forms = {
                consent_gate.is_minor(db, customer, day),
                consent_gate.summary(db, customer, day)["minor"],
                verdict.reason == "minor_without_guardian_consent",
                customer not in consented,
                customer in refused,
                customer not in held,
            }
            assert len(forms) == 1, (customer, day, verdict)
            answers[customer] = forms.pop()
        # A segment of the customers' birth year, as a role shown birthdays by their year writes it.
        reachable = count(db, f"birth_year = {born_in}", "sms", day, 480).reachable
        assert reachable == sum(not minor for minor in answers.values()), day
    return answers


def test_the_minor_flag_changes_on_new_years_day_so_it_never_tells_the_birthday(app, clock):
    """Roles shown a birthday as its year only (decision 0058) see the minor flag, the consent verdicts,
    segments and exports: a flag turning on the fourteenth birthday, watched day by day, gave the date away."""
    year = TODAY.year - 14
    born = [date(year, 1, 1), date(year, 6, 15), date(year, 12, 31)]
    for n, birthday in enumerate(born):
        phone = f"1390571010{n}"
        load(app, [signup(f"k{n}", phone, birthday=birthday, at=START - timedelta(days=5))])
        load(app, [consent_event(f"k{n}-grant", phone, granted=True, at=START - timedelta(days=4))])
    customers = [customer_of(app, f"1390571010{n}") for n in range(len(born))]
    days = [date(year + 14, 1, 1) - timedelta(days=1)]
    for birthday in born:
        fourteenth = birthday.replace(year=year + 14)
        days += [fourteenth - timedelta(days=1), fourteenth, fourteenth + timedelta(days=1)]
    days += [date(year + 14, 12, 31), date(year + 15, 1, 1), date(year + 15, 6, 15)]
    for day in sorted(set(days)):
        minor = day < date(year + 15, 1, 1)  # never an adult before the fourteenth birthday
        assert _minor_everywhere(app, customers, year, day) == dict.fromkeys(customers, minor), day

    # Member beacons and card profiles, which do not know the chain's time zone, judge on the earliest
    # date anywhere: not yet New Year's Day until it is New Year's Day everywhere.
    for at, minor in [
        (datetime(year + 15, 1, 1, 11, 59, tzinfo=UTC), True),
        (datetime(year + 15, 1, 1, 12, tzinfo=UTC), False),
    ]:
        assert consent_gate.earliest_today(at) == date(year + 14, 12, 31) + timedelta(days=not minor)
        assert _minor_everywhere(app, customers, year, consent_gate.earliest_today(at)) == dict.fromkeys(
            customers, minor
        )

    # The API shows the same flag and the same verdicts.
    create_user(app)
    for day, minor in [(date(year + 14, 6, 15), True), (date(year + 14, 12, 31), True), (date(year + 15, 1, 1), False)]:
        clock.now = datetime.combine(day, time(4), tzinfo=UTC)  # midday in the chain's time zone
        viewer = app.test_client()
        assert login(viewer).status_code == 302
        for customer in customers:
            got = viewer.get(f"/api/v1/customers/{customer}/consents")
            assert got.status_code == 200, got.get_data(as_text=True)
            shown = got.get_json()["verdicts"]
            assert shown["minor"] is minor, (day, customer)
            assert shown["marketing"]["sms"]["allowed"] is not minor


def test_profiling_and_location_cover_every_channel(app):
    load(app, [signup("p", "13905710010", at=START - timedelta(days=5))])
    customer = customer_of(app, "13905710010")
    load(
        app,
        [
            consent_event("p1", "13905710010", granted=True, at=START - timedelta(days=4), purpose="profiling"),
            consent_event("l1", "13905710010", granted=False, at=START - timedelta(days=4), purpose="location"),
        ],
    )
    with central_db.session_factory(app)() as db:
        assert consent_gate.may_profile(db, customer, TODAY).allowed
        assert consent_gate.may_locate(db, customer, TODAY).reason == "withdrawn"
        assert consent_gate.may_market(db, customer, "sms", TODAY).reason == "no_consent"
    assert _consented(app, "profiling", None) == {customer}


def test_the_api_records_and_shows_consent(app, user_client):
    load(app, [signup("s", "13905710011", at=START - timedelta(days=5))])
    customer = customer_of(app, "13905710011")
    url = f"/api/v1/customers/{customer}/consents"
    body = {
        "decisions": [
            {"purpose": "marketing", "channel": "email", "granted": True, "notice_version": "2026-02", "id": "d-1"},
            {
                "purpose": "profiling",
                "granted": True,
                "notice_version": "2026-02",
                "id": "d-2",
                "observed_at": "2026-11-22T10:00:00+08:00",
            },
        ]
    }
    response = user_client.post(url, json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json() == {"recorded": 2, "duplicate": 0}
    assert user_client.post(url, json=body).get_json() == {"recorded": 0, "duplicate": 2}  # a retried call

    shown = user_client.get(url).get_json()
    assert shown["verdicts"]["marketing"]["email"]["allowed"] is True
    assert shown["verdicts"]["marketing"]["sms"] == {"allowed": False, "reason": "no_consent", "decided_at": None}
    assert shown["verdicts"]["profiling"]["allowed"] is True
    assert shown["verdicts"]["minor"] is False
    assert [(d["purpose"], d["source"], d["origin"]) for d in shown["decisions"]] == [
        ("marketing", "api", "api"),
        ("profiling", "api", "api"),
    ]

    bad = user_client.post(url, json={"purpose": "marketing", "channel": "fax", "granted": True})
    assert bad.status_code == 400
    assert "channel" in bad.get_json()["error"]["message"]
    assert user_client.get("/api/v1/customers/999999/consents").status_code == 404
