"""Every consent decision names where it was taken: the app, an import, the console or the API (decision 0107)."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path

import orjson

from central import db as central_db
from central.privacy import access
from tests.central.consent_support import backfill, consent_event, customer_of, decision_rows, load, signup
from tests.central.sources_support import new_key, post_events
from tests.central.support import START, csrf_from

AT = START - timedelta(days=1)
PHONE = "13905730001"


def _grant(event_id, channel, **payload):
    return consent_event(event_id, PHONE, granted=True, at=AT, channel=channel, notice_version="2026-01", **payload)


def test_online_and_backfilled_decisions_name_the_app_and_the_import_not_the_api(app, client, tmp_path: Path):
    events = [_grant("o-app", "sms"), _grant("o-till", "email", source="till")]
    assert post_events(client, new_key(app), events).get_json()["accepted"] == ["o-app", "o-till"]
    lines = [
        _grant("b-import", "wechat"),
        _grant("b-app", "app_push", source="app"),
        consent_event("b-w", PHONE, granted=False, at=AT + timedelta(hours=1), channel="sms"),
    ]
    summary, _ = backfill(app, tmp_path, lines)
    assert summary.accepted == 3
    assert [(o, s) for o, _, s, _ in decision_rows(app)] == [
        ("b-app", "app"),  # a line that names where it was taken keeps it
        ("b-import", "import"),
        ("b-w", "import"),
        ("o-app", "app"),
        ("o-till", "till"),
    ]
    # The customer's copy of their data says the same.
    out = io.StringIO()
    with central_db.session_factory(app)() as db:
        access.write(db, customer_of(app, PHONE), out, now=START)
    document = orjson.loads(out.getvalue())
    assert sorted(d["source"] for d in document["consents"]) == ["app", "app", "import", "import", "till"]


def test_an_event_may_not_claim_a_decision_taken_in_the_console_or_through_the_api(app, client, tmp_path: Path):
    """A source's or a file's event that said source console was recorded as the desk's decision."""
    claims = [_grant("o-console", "sms", source="console"), _grant("o-api", "email", source="api")]
    reply = post_events(client, new_key(app), claims).get_json()
    assert reply["accepted"] == []
    assert sorted((r["event_id"], r["reason"]) for r in reply["rejected"]) == [
        ("o-api", "invalid_payload:source"),
        ("o-console", "invalid_payload:source"),
    ]
    summary, _ = backfill(app, tmp_path, [_grant("b-console", "wechat", source="console")])
    assert (summary.accepted, dict(summary.rejected)) == (0, {"invalid_payload:source": 1})
    assert decision_rows(app) == []


def test_the_desks_withdrawal_is_recorded_and_shown_as_the_consoles(app, user_client):
    load(app, [signup("s", "13905730002", at=AT)])
    load(app, [consent_event("c", "13905730002", granted=True, at=AT, notice_version="2026-01")])
    customer = customer_of(app, "13905730002")
    page = user_client.get(f"/console/customers/{customer}").get_data(as_text=True)
    request_id = re.search(r'name="request_id" value="([0-9a-f]+)"', page).group(1)
    form = {"purpose": "marketing", "channel": "sms", "asked": "phone", "request_id": request_id}
    answer = user_client.post(
        f"/console/customers/{customer}/consents/withdraw", data={**form, "csrf_token": csrf_from(page)}
    )
    assert answer.status_code == 302
    assert [(g, s) for _, g, s, _ in decision_rows(app)] == [(True, "app"), (False, "console")]
    shown = user_client.get(f"/console/customers/{customer}").get_data(as_text=True)
    history = shown.split('id="consent-history"', 1)[1].split("</table>", 1)[0]
    assert "控制台" in history and "App" in history and "API" not in history
