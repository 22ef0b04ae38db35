"""A consent grant names the notice the customer was shown, on every path that records one (decision 0107)."""

from __future__ import annotations

import dataclasses
import io
from datetime import timedelta

import orjson

from central import db as central_db
from central.cli import main
from central.privacy import access
from tests.central.consent_support import backfill, consent_event, customer_of, decision_rows, load, signup
from tests.central.sources_support import new_key, post_events
from tests.central.support import START
from tests.central.test_backfill import config_path

AT = START - timedelta(days=1)

__all__ = ["config_path"]  # the fixture, shared with the backfill's tests


def _unnoticed(event_id, phone, **fields):
    """A ``consent.given`` event naming no notice version at all."""
    event = consent_event(event_id, phone, granted=True, at=AT, **fields)
    event["payload"].pop("notice_version", None)
    return event


def test_an_online_sources_grant_without_a_notice_version_is_refused_and_its_decisions_say_app(app, client):
    events = [
        _unnoticed("g-none", "13905720001"),
        consent_event("g-empty", "13905720001", granted=True, at=AT, notice_version=" "),
        consent_event("g-ok", "13905720001", granted=True, at=AT, notice_version="2026-01"),
        consent_event("g-old", "13905720001", granted=True, at=AT, channel="email", policy_version="2025-07"),
        consent_event("w", "13905720001", granted=False, at=AT + timedelta(hours=1), channel="wechat"),
        consent_event("g-till", "13905720001", granted=True, at=AT, channel=None, notice_version="v3", source="till"),
        consent_event("g-parent", "13905720001", granted=True, at=AT, scope="parent"),
    ]
    reply = post_events(client, new_key(app), events).get_json()
    assert reply["rejected"] == [
        {"event_id": "g-none", "reason": "invalid_payload:notice_version"},
        {"event_id": "g-empty", "reason": "invalid_payload:notice_version"},
        {"event_id": "g-parent", "reason": "invalid_payload:scope"},  # a guardian's grant is scope "guardian"
    ]
    assert reply["accepted"] == ["g-ok", "g-old", "w", "g-till"]
    # The online source's decisions were taken in its app, unless the event says where.
    assert decision_rows(app) == [
        ("g-ok", True, "app", "2026-01"),
        ("g-old", True, "app", "2025-07"),
        ("g-till", True, "till", "v3"),
        ("w", False, "app", ""),
    ]


def test_an_agents_grant_without_a_notice_version_is_refused(app, client, agent):
    def given(payload):
        event = agent.event("consent.given", {"purpose": "marketing", "channel": "sms", **payload}, observed_at=AT)
        return dataclasses.replace(event, identifiers={"phone": "13905720002"})

    bare, noticed = given({}), given({"notice_version": "2026-01"})
    reply = agent.send(client, [bare, noticed])
    assert reply["accepted"] == [noticed.event_id]
    assert reply["rejected"] == [{"event_id": bare.event_id, "reason": "invalid_payload:notice_version"}]
    assert [(g, s, n) for _, g, s, n in decision_rows(app)] == [(True, "till", "2026-01")]


def test_a_backfill_refuses_a_grant_without_a_notice_unless_told_which_and_records_it_as_an_import(app, tmp_path):
    lines = [
        signup("s", "13905720003", at=AT - timedelta(days=400)),
        _unnoticed("b-legacy", "13905720003", channel="sms"),
        consent_event("b-noticed", "13905720003", granted=True, at=AT, channel="email", notice_version="2019-03"),
        consent_event("b-app", "13905720003", granted=True, at=AT, channel="wechat", source="app"),
        consent_event("b-w", "13905720003", granted=False, at=AT, channel="app_push"),
    ]
    summary, bad = backfill(app, tmp_path, lines)
    assert bad == [("b-legacy", "invalid_payload:notice_version")]
    assert summary.accepted == 4
    # Told which notice a legacy grant stands for: recorded under that marker, and the stored event says it too.
    summary, bad = backfill(app, tmp_path, lines, consent_notice="legacy")
    assert (bad, summary.accepted, summary.duplicate) == ([], 1, 4)
    assert decision_rows(app) == [
        ("b-app", True, "app", "2026-01"),
        ("b-legacy", True, "import", "legacy"),
        ("b-noticed", True, "import", "2019-03"),
        ("b-w", False, "import", ""),
    ]
    with central_db.session_factory(app)() as db:
        customer = customer_of(app, "13905720003")
        out = io.StringIO()
        access.write(db, customer, out, now=START)
    document = orjson.loads(out.getvalue())
    assert sorted((d["source"], d["notice_version"]) for d in document["consents"]) == [
        ("app", "2026-01"),
        ("import", ""),
        ("import", "2019-03"),
        ("import", "legacy"),
    ]
    stored = {e["payload"].get("notice_version") for e in document["events"] if e["kind"] == "consent.given"}
    assert "legacy" in stored


def test_load_events_takes_the_legacy_notice_on_the_command_line(app, config_path, tmp_path, capsys):
    path = tmp_path / "history.jsonl"
    path.write_bytes(orjson.dumps(_unnoticed("c-legacy", "13905720004")) + b"\n")
    args = ["load-events", str(path), "--source", "legacy", "--no-progress", "--config", config_path]
    assert main(args) == 1
    assert "rejected (event c-legacy): invalid_payload:notice_version" in capsys.readouterr().err
    assert main([*args, "--consent-notice", "legacy"]) == 0
    assert decision_rows(app) == [("c-legacy", True, "import", "legacy")]
    assert main([*args, "--consent-notice", "x" * 33]) == 2


def test_import_members_with_consent_columns_needs_the_notice_they_were_answered_under(
    app, config_path, tmp_path, capsys
):
    path = tmp_path / "members.csv"
    path.write_text("手机,短信营销\n13905720005,是\n", encoding="utf-8")
    args = ["import-members", str(path), "--map", "手机=phone", "--map", "短信营销=consent:marketing:sms"]
    assert main([*args, "--no-progress", "--config", config_path]) == 2
    assert "--consent-notice VERSION" in capsys.readouterr().err
    assert decision_rows(app) == []
    assert main([*args, "--consent-notice", "legacy", "--no-progress", "--config", config_path]) == 0
    assert [(g, s, n) for _, g, s, n in decision_rows(app)] == [(True, "import", "legacy")]


def test_the_import_api_with_consent_columns_needs_the_notice_too(app, user_client):
    query = "map=手机=phone&map=短信营销=consent:marketing:sms"
    refused = user_client.post(f"/api/v1/imports/members?{query}", data="手机,短信营销\n13905720008,是\n")
    error = refused.get_json()["error"]
    assert (refused.status_code, error["code"]) == (400, "invalid_mapping")
    assert "consent_notice=" in error["message"]
    assert decision_rows(app) == []


def test_the_api_refuses_a_grant_without_a_notice_version_and_records_api_as_the_source(app, user_client):
    load(app, [signup("s", "13905720006", at=AT)])
    url = f"/api/v1/customers/{customer_of(app, '13905720006')}/consents"
    for notice in ({}, {"notice_version": ""}, {"notice_version": "  "}):
        refused = user_client.post(url, json={"decisions": [{"purpose": "location", "granted": True, **notice}]})
        assert refused.status_code == 400
        error = refused.get_json()["error"]
        assert (error["code"], error["reason"], error["field"]) == (
            "invalid_consent",
            "invalid_payload:notice_version",
            "decisions[0].notice_version",
        )
    bad = user_client.post(url, json={"purpose": "location", "granted": True, "notice_version": "v\x01"})
    assert bad.get_json()["error"]["field"] == "body.notice_version"
    grant = {"purpose": "location", "granted": True, "notice_version": "paper-2026", "id": "g"}
    withdrawal = {"purpose": "marketing", "channel": "sms", "granted": False, "id": "w"}
    assert user_client.post(url, json={"decisions": [grant, withdrawal]}).status_code == 201
    assert decision_rows(app) == [("g", True, "api", "paper-2026"), ("w", False, "api", "")]
