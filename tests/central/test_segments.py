"""Segments: rules refused with position and reason, live counts, evaluation history, consent, merges, exports."""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import stat
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from markupsafe import escape
from sqlalchemy import select

from central import db as central_db
from central.audit import cli_actor
from central.campaigns import webhooks
from central.campaigns.models import DELIVERED, WebhookDelivery
from central.cli import main
from central.console import segments as console_segments
from central.identity import merges
from central.identity.registry import load_registry
from central.models import AuditLog
from central.segments import definitions, evaluation
from central.segments.definitions import Draft, SegmentError
from central.segments.models import SegmentMember, SegmentMembershipEvent
from shared import wire
from tests.central.consent_support import consent_event, customer_of, load, signup
from tests.central.customer_support import sale
from tests.central.support import START, create_user, csrf_from, login, post_form, table_rows
from tests.central.test_webhooks import receiving

OFFSET = 480
SECRET = "segment-secret-shared-with-crm"
LOYAL_RULE = "purchases >= 2 and spent >= 100 and days_since(last_purchase_on) <= 30d"
PHONES = {"ann": "13800000001", "bob": "13800000002", "cat": "13800000003", "dan": "13800000004"}
MOBILE = re.compile(r"1[3-9]\d{9}")


def _at(days_ago: float) -> str:
    return wire.format_time(START - timedelta(days=days_ago))


@pytest.fixture
def chain(app):
    """Four customers: ann and bob bought twice recently for 150 (both consent to SMS), cat bought once,
    dan bought like ann but never consented."""
    events = [signup(f"s-{who}", phone, at=START - timedelta(days=60)) for who, phone in PHONES.items()]
    events += [
        sale("r1", _at(10), "80.00", phone=PHONES["ann"]),
        sale("r2", _at(5), "70.00", phone=PHONES["ann"]),
        sale("r3", _at(12), "100.00", phone=PHONES["bob"]),
        sale("r4", _at(3), "50.00", phone=PHONES["bob"]),
        sale("r5", _at(4), "500.00", phone=PHONES["cat"]),
        sale("r6", _at(9), "90.00", phone=PHONES["dan"]),
        sale("r7", _at(8), "90.00", phone=PHONES["dan"]),
    ]
    events += [
        consent_event(f"c-{who}", PHONES[who], granted=True, at=START - timedelta(days=50))
        for who in ("ann", "bob", "cat")
    ]
    # Everyone agreed to profiling, so the built-in tags a rule reads exist for all four.
    events += [
        consent_event(f"p-{who}", phone, granted=True, purpose="profiling", channel=None, at=START - timedelta(days=50))
        for who, phone in PHONES.items()
    ]
    load(app, events)
    return {who: customer_of(app, phone) for who, phone in PHONES.items()}


def _session(app):
    return central_db.session_factory(app)()


def _save(app, name="loyal", rule=LOYAL_RULE, channel="sms", **extra):
    with _session(app) as db:
        definitions.create(db, Draft(name, rule, channel, **extra), actor="test", now=START)
        db.commit()


def _evaluate(app, name="loyal", at=START):
    with _session(app) as db:
        done = evaluation.evaluate(db, name, at, OFFSET)
        db.commit()
        return done


def _members(app):
    return {r.customer_id for r in table_rows_by(app, SegmentMember)}


def table_rows_by(app, model):
    with _session(app) as db:
        return list(db.execute(select(model.__table__)))


def _history(app):
    with _session(app) as db:
        rows = db.execute(select(SegmentMembershipEvent.__table__).order_by(SegmentMembershipEvent.id))
        return [(r.customer_id, r.change, r.at) for r in rows]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # parsing only
@pytest.mark.parametrize(
    ("rule", "reason", "line", "column"),
    [
        ("purchase >= 2", "rule_unknown_field", 1, 1),
        ("purchases >= 2 and\n  city > 'x'", "rule_not_comparable", 2, 8),
        ("spent >= ", "rule_syntax", 1, 10),
    ],
)
def test_a_bad_rule_is_refused_with_its_position_and_reason(app, rule, reason, line, column):
    with pytest.raises(SegmentError) as caught:
        _save(app, rule=rule)
    error = caught.value.to_json()
    assert error["reason"].startswith("rule_")
    assert error["position"]["line"] == line, error
    assert error["position"]["column"] == column, error
    response = _api(app, "admin").post("/api/v1/segments", json={"name": "x", "rule": rule, "channel": "sms"})
    assert response.status_code == 400
    assert response.get_json()["error"]["position"]["line"] == line


# Reasons a rule written in the console cannot meet: the caller's, not the text's.
NOT_FROM_THE_TEXT = {
    "bad_as_of",
    "bad_name",
    "bad_value",
    "definition_changed",
    "no_column",
    "no_tag_source",
    "not_text",
}


def test_every_reason_a_typed_rule_can_be_refused_for_reads_in_the_console():
    rules = Path(__file__).resolve().parents[2] / "central" / "customers" / "rules"
    codes = set()
    for module in rules.glob("*.py"):
        codes |= set(re.findall(r'(?:\.error|RuleError)\(\s*"([a-z_]+)"', module.read_text(encoding="utf-8")))
    assert "expected_operand" in codes and "unterminated_string" in codes  # the scan finds them
    missing = {f"rule_{code}" for code in codes - NOT_FROM_THE_TEXT} - set(console_segments.PROBLEM_TEXTS)
    assert not missing, missing


def test_live_count_of_saved_and_unsaved_rules(app, chain):
    today = evaluation.local_today(START, OFFSET)
    with _session(app) as db:
        counted = evaluation.count(db, LOYAL_RULE, "sms", today, OFFSET)
        assert counted.to_json() == {"matching": 3, "reachable": 2}  # ann, bob, dan; dan never consented
        assert evaluation.count(db, LOYAL_RULE, "email", today, OFFSET).reachable == 0
        assert evaluation.count(db, "spent_30d > 400 or purchases_90d = 2", "sms", today, OFFSET).matching == 4
        assert evaluation.count(db, "purchases = 0", "sms", today, OFFSET).matching == 0
    client = _api(app, "marketing")
    assert client.post("/api/v1/segments/preview", json={"rule": "purchases = 1", "channel": "sms"}).get_json() == {
        "matching": 1,
        "reachable": 1,
    }
    _save(app)
    assert client.get("/api/v1/segments/loyal/count").get_json()["reachable"] == 2


def test_rules_read_tags_and_golden_attributes(app, chain):
    from central.customers import tagging

    born = signup("born", PHONES["ann"], birthday="1990-05-01", at=START - timedelta(days=2)) | {"postcode": "200031"}
    load(app, [born])
    with central_db.engine_for(app).begin() as conn:
        tagging.recompute(conn, app.config["CENTRAL"], START)
    today = evaluation.local_today(START, OFFSET)
    expected = {
        'value_tier = "potential"': 3,  # two purchases in the last 30 days: ann, bob, dan
        'has_tag("value_tier:other")': 1,  # cat
        'has_tag("lifecycle") and lifecycle = "new"': 4,
        "birthday < 2000-01-01": 1,
        "birthday is null": 3,
        "birth_year = 1990": 1,
        "birth_year < 1990 or birth_year > 1990": 0,
        'postcode = "200031"': 1,
        'postcode_area = "200"': 1,
        'postcode_area = "201"': 0,
        "first_seen_on <= 2026-11-23 and rfm_r >= 1": 4,
    }
    with _session(app) as db:
        for rule, matching in expected.items():
            assert evaluation.count(db, rule, "sms", today, OFFSET).matching == matching, rule


def test_a_role_that_sees_birthdays_as_years_writes_rules_with_years(app, chain):
    """Marketing sees 1959-**-**. Were the whole date a field of its rules, nine saves of
    ``birthday >= A and birthday <= B`` with a look at the members (or at a live count of a rule that
    singles one customer out) would bisect the masked date; its rules read birth_year instead."""
    load(app, [signup("born", PHONES["ann"], birthday="1959-01-21", at=START - timedelta(days=2))])
    marketing, admin = _api(app, "marketing"), _api(app, "admin")
    whole = "purchases >= 1 and birthday >= 1959-01-01 and birthday <= 1959-06-30"
    for method, url, body in (
        ("post", "/api/v1/segments", {"name": "born", "rule": whole, "channel": "sms"}),
        ("post", "/api/v1/segments/preview", {"rule": whole, "channel": "sms"}),
        ("post", "/api/v1/segments", {"name": "area", "rule": 'postcode = "200031"', "channel": "sms"}),
    ):
        refused = getattr(marketing, method)(url, json=body)
        assert refused.status_code == 400, refused.get_json()
        error = refused.get_json()["error"]
        assert error["reason"] == "rule_withheld_field", error
        assert "use birth_year" in error["message"] or "use postcode_area" in error["message"], error
    assert admin.post("/api/v1/segments", json={"name": "born", "rule": whole, "channel": "sms"}).status_code == 201
    edit = marketing.put("/api/v1/segments/born", json={"rule": whole.replace("06-30", "03-31"), "channel": "sms"})
    assert edit.status_code == 400 and edit.get_json()["error"]["reason"] == "rule_withheld_field"
    by_year = {"rule": "birth_year = 1959", "channel": "sms"}
    assert marketing.post("/api/v1/segments/preview", json=by_year).get_json()["matching"] == 1
    assert marketing.put("/api/v1/segments/born", json=by_year).status_code == 200
    page = marketing.get("/console/segments?rule=birthday+%3E%3D+1959-01-01&channel=sms").get_data(as_text=True)
    assert "rule_withheld_field" in page and "birth_year" in page


def test_evaluation_records_who_entered_and_left(app, chain, clock):
    _save(app)
    first = _evaluate(app)
    assert (first.members, first.entered, first.left) == (2, 2, 0)
    assert _members(app) == {chain["ann"], chain["bob"]}
    assert _evaluate(app).to_json() == {"version": 1, "members": 2, "entered": 0, "left": 0}  # nothing changed

    # A month on, ann and bob last bought over 30 days ago, and cat has bought again.
    later = START + timedelta(days=30)
    load(app, [sale("r8", wire.format_time(later - timedelta(days=1)), "20.00", phone=PHONES["cat"])], now=later)
    done = _evaluate(app, at=later)
    assert (done.entered, done.left) == (1, 2)
    assert _members(app) == {chain["cat"]}
    history = _history(app)
    assert sorted((c, ch) for c, ch, _ in history) == sorted(
        [
            (chain["ann"], "entered"),
            (chain["bob"], "entered"),
            (chain["ann"], "left"),
            (chain["bob"], "left"),
            (chain["cat"], "entered"),
        ]
    )
    assert {at for _, _, at in history} == {START, later}
    api = _api(app, "marketing").get("/api/v1/segments/loyal/history?limit=2").get_json()
    newest = api["history"][0]
    assert (newest["customer_id"], newest["change"]) == (chain["cat"], "entered")
    assert api["history"][1]["change"] == "left"  # newest first, a page at a time
    rest = _api(app, "admin").get(f"/api/v1/segments/loyal/history?before={api['next_before']}").get_json()
    assert len(rest["history"]) == 3


def test_withdrawal_of_marketing_consent_removes_the_customer_at_the_next_evaluation(app, chain):
    _save(app)
    _evaluate(app)
    assert chain["bob"] in _members(app)
    load(app, [consent_event("w-bob", PHONES["bob"], granted=False, at=START + timedelta(hours=1))])
    assert chain["bob"] in _members(app)  # membership changes at evaluations, not in between
    _evaluate(app, at=START + timedelta(hours=2))
    assert _members(app) == {chain["ann"]}
    assert (chain["bob"], "left", START + timedelta(hours=2)) in _history(app)


def test_the_members_api_lists_no_one_who_withdrew_since_the_last_evaluation(app, chain):
    """The list of ids is what an integration markets to: it read the stored membership, so a customer
    who withdrew stayed on it until the next evaluation (the CSV and webhook exports already left them out)."""
    _save(app)
    _evaluate(app)
    client = _api(app, "marketing")
    listed = client.get("/api/v1/segments/loyal/members").get_json()["members"]
    assert sorted(m["customer_id"] for m in listed) == sorted([chain["ann"], chain["bob"]])
    load(app, [consent_event("w-bob", PHONES["bob"], granted=False, at=START + timedelta(minutes=5))])
    listed = client.get("/api/v1/segments/loyal/members").get_json()["members"]
    assert [m["customer_id"] for m in listed] == [chain["ann"]]
    assert chain["bob"] in _members(app)  # the stored membership still changes at the next evaluation only


def test_a_merged_away_customer_leaves(app, chain):
    _save(app)
    _evaluate(app)
    with _session(app) as db:
        kept = merges.merge_customers(
            db, load_registry(app.config["CENTRAL"]), chain["ann"], chain["bob"], rule="review", now=START, operator="t"
        )
        db.commit()
    gone = chain["bob"] if kept == chain["ann"] else chain["ann"]
    _evaluate(app, at=START + timedelta(hours=1))
    assert gone not in _members(app)
    assert (gone, "left", START + timedelta(hours=1)) in _history(app)


def test_a_new_version_only_when_the_meaning_changes(app, chain):
    _save(app)
    with _session(app) as db:
        respelt = LOYAL_RULE.replace(" and ", " AND ")
        assert definitions.revise(db, "loyal", Draft("loyal", respelt, "sms"), actor="t", now=START) == 1
        assert definitions.revise(db, "loyal", Draft("loyal", "purchases >= 3", "sms"), actor="t", now=START) == 2
        assert definitions.revise(db, "loyal", Draft("loyal", "purchases >= 3", "email"), actor="t", now=START) == 3
        db.commit()


def _api(app, role):
    create_user(app, role, role=role)
    client = app.test_client()
    assert login(client, role).status_code == 302
    return client


def _text(html):
    """What a reader sees of a fragment of a page: its text, blanks folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


def _audits(app, action):
    return [a for a in table_rows(app, AuditLog) if a.action == action]


def test_csv_export_is_masked_for_marketing_unmasked_for_admin_and_audited(app, chain, tmp_path):
    load(app, [signup("name-ann", PHONES["ann"], at=START - timedelta(days=1)) | {"name": "张三丰"}])
    _save(app)
    _evaluate(app)
    marketing = _api(app, "marketing").get("/api/v1/segments/loyal/export")
    assert marketing.status_code == 200 and marketing.mimetype == "text/csv"
    text = marketing.get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {int(r["customer_id"]) for r in rows} == {chain["ann"], chain["bob"]}
    assert not MOBILE.search(text) and "138****0001" in text and "张三丰" not in text
    download = _api(app, "admin").get("/console/segments/loyal/export.csv")
    admin = download.get_data().decode("utf-8-sig")
    assert PHONES["ann"] in admin and "张三丰" in admin
    # The console's download opens in Excel on a Chinese Windows (a BOM first); the API's does not need it.
    assert download.get_data().startswith(codecs.BOM_UTF8) and download.mimetype_params["charset"] == "utf-8"
    assert admin.startswith("customer_id,") and not text.startswith("\ufeff")
    exports = _audits(app, "segment.export")
    assert [(a.actor, a.detail["masked"]) for a in exports] == [("marketing", True), ("admin", False)]
    # The command line writes the same file atomically, and audits it.
    out = tmp_path / "loyal.csv"
    config = tmp_path / "central.toml"
    url = app.config["CENTRAL"].effective_database_url
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{url}"\n')
    assert main(["segment", "export", "loyal", "--out", str(out), "--masked", "--config", str(config)]) == 0
    assert not MOBILE.search(out.read_text()) and len(out.read_text().splitlines()) == 3
    assert not Path(f"{out}.partial").exists()
    assert len(_audits(app, "segment.export")) == 3


def test_the_command_line_export_is_owner_only_in_a_directory_others_may_read(app, chain, tmp_path):
    _save(app)
    _evaluate(app)
    folder = tmp_path / "exports"
    folder.mkdir(mode=0o755)
    config = tmp_path / "central.toml"
    url = app.config["CENTRAL"].effective_database_url
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{url}"\n')
    old = os.umask(0o022)
    try:
        assert main(["segment", "export", "loyal", "--out", str(folder / "loyal.csv"), "--config", str(config)]) == 0
    finally:
        os.umask(old)
    assert PHONES["ann"] in (folder / "loyal.csv").read_text(encoding="utf-8")
    assert stat.S_IMODE((folder / "loyal.csv").stat().st_mode) == 0o600


FORMULA = '=HYPERLINK("http://evil.example/","领取优惠")'


def test_a_name_that_would_run_as_a_formula_is_exported_as_text(app, chain, tmp_path):
    """A member may call themselves anything in the app; marketing opens the export in a spreadsheet."""
    load(app, [signup("name-ann", PHONES["ann"], at=START - timedelta(days=1)) | {"name": FORMULA}])
    _save(app)
    _evaluate(app)
    admin = _api(app, "admin")
    served = {
        "api": admin.get("/api/v1/segments/loyal/export").get_data(as_text=True),
        "console": admin.get("/console/segments/loyal/export.csv").get_data().decode("utf-8-sig"),
    }
    out = tmp_path / "loyal.csv"
    config = tmp_path / "central.toml"
    url = app.config["CENTRAL"].effective_database_url
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{url}"\n')
    assert main(["segment", "export", "loyal", "--out", str(out), "--config", str(config)]) == 0
    served["cli"] = out.read_text(encoding="utf-8")
    for where, text in served.items():
        names = {int(r["customer_id"]): r["name"] for r in csv.DictReader(io.StringIO(text))}
        assert names[chain["ann"]] == "'" + FORMULA, where
        assert PHONES["ann"] in text, where


def test_webhook_export_is_delivered_signed_in_chunks(app, chain):
    with receiving([500, 200, 200]) as (receiver, url):
        _save(app, webhook_url=url, webhook_secret=SECRET)
        _evaluate(app)
        client = _api(app, "admin")
        queued = client.post("/api/v1/segments/loyal/export", json={})
        assert queued.status_code == 202 and queued.get_json()["members"] == 2
        policy = webhooks.Policy(3, 60, 600, 5, allow_private=True)  # the receiver is on loopback
        with _session(app) as db:
            assert webhooks.deliver_due(db, lambda: START, policy)["retry"] == 1  # one call, answered 500
        with _session(app) as db:
            assert webhooks.deliver_due(db, lambda: START + timedelta(minutes=2), policy)["delivered"] == 1
    headers, body = receiver.calls[-1]
    assert webhooks.verify(SECRET, headers["X-CDP-Signature"], body, int((START + timedelta(minutes=2)).timestamp()))
    sent = orjson.loads(body)
    assert sent["segment"] == "loyal" and sent["last"] is True
    assert {m["customer_id"] for m in sent["members"]} == {chain["ann"], chain["bob"]}
    assert "+86" + PHONES["ann"] in {m["phone"] for m in sent["members"]}  # an administrator's export is unmasked
    assert [r.status for r in table_rows(app, WebhookDelivery)] == [DELIVERED]


def test_webhook_chunks_drop_members_who_withdrew_before_delivery(app, chain, make_app):
    app = make_app(segments__webhook_chunk=1)
    with receiving([]) as (receiver, url):
        _save(app, webhook_url=url, webhook_secret=SECRET)
        _evaluate(app)
        assert _api(app, "marketing").post("/api/v1/segments/loyal/export", json={}).get_json()["calls"] == 2
        load(app, [consent_event("w-ann", PHONES["ann"], granted=False, at=START + timedelta(hours=1))])
        with _session(app) as db:
            counts = webhooks.deliver_due(db, lambda: START + timedelta(hours=2), webhooks.Policy(allow_private=True))
    assert (counts["delivered"], counts["cancelled"]) == (1, 1)
    ((_, body),) = receiver.calls
    (member,) = orjson.loads(body)["members"]
    assert member["customer_id"] == chain["bob"] and member["phone"] == "138****0002"  # marketing: masked


def test_console_page_lists_previews_saves_and_refuses_without_csrf(app, chain):
    _save(app)
    client = _api(app, "marketing")
    page = client.get("/console/segments")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-segment="loyal"' in html
    assert "live-reachable" not in html  # the list shows stored members; live counts on request
    counted = client.get("/console/segments", query_string={"count": "loyal"}).get_data(as_text=True)
    assert re.search(r'live-reachable">2<', counted)
    preview = client.get("/console/segments", query_string={"rule": "purchases = 1", "channel": "sms"})
    assert re.search(r'preview-matching">1<', preview.get_data(as_text=True))
    refused = client.get("/console/segments", query_string={"rule": "purchases >", "channel": "sms"})
    problem = refused.get_data(as_text=True).split('id="problem">', 1)[1].split("</p>", 1)[0]
    # In the page's words with the position, and the reason code labelled, for support; no English.
    words = "规则无法使用 (第 1 行，第 12 列)：这里需要一个字段、函数或值。"
    assert _text(problem) == f"{words} 原因代码 rule_expected_operand"
    assert '<span class="reason">原因代码 <code>rule_expected_operand</code></span>' in problem, problem
    client.set_cookie("cdp-lang", "en")
    english = client.get("/console/segments", query_string={"rule": "purchases >", "channel": "sms"})
    problem = english.get_data(as_text=True).split('id="problem">', 1)[1].split("</p>", 1)[0]
    assert "A field, a function or a value is needed here." in problem  # then the parser's own English detail
    assert "found the end of the rule" in problem and problem.count("column 12") == 1 and "Reason code" in problem
    client.set_cookie("cdp-lang", "zh")
    form = {"name": "once", "rule": "purchases = 1", "channel": "sms", "description": ""}
    assert client.post("/console/segments", data=form).status_code == 400  # no CSRF token
    assert client.post("/console/segments/loyal/evaluate", data={}).status_code == 400
    token = csrf_from(html)
    saved = client.post("/console/segments", data={**form, "csrf_token": token})
    assert saved.status_code == 302
    assert client.post("/console/segments/once/evaluate", data={"csrf_token": token}).status_code == 302
    with _session(app) as db:
        assert definitions.find(db, "once").members == 1
    bad = client.post("/console/segments", data={**form, "name": "bad", "rule": "purchases >", "csrf_token": token})
    assert bad.status_code == 400 and 'id="problem"' in bad.get_data(as_text=True)
    taken = client.post("/console/segments", data={**form, "csrf_token": token}).get_data(as_text=True)
    assert "无法保存人群：已有同名人群" in taken and "规则无法使用" not in taken  # not the rule's fault
    finance = _api(app, "finance")
    assert finance.get("/console/segments").status_code == 403
    assert finance.get("/api/v1/segments").status_code == 403


def test_the_console_edits_a_segment_and_a_taken_name_leads_to_it(app, chain):
    _save(app, webhook_url="https://crm.example.cn/hooks/seg", webhook_secret=SECRET)
    client = _api(app, "marketing")
    html = client.get("/console/segments").get_data(as_text=True)
    edit = "/console/segments/loyal/edit"
    assert f'href="{edit}"' in html.split('data-segment="loyal"', 1)[1].split("</tr>", 1)[0]
    token = csrf_from(html)
    form = {"name": "loyal", "rule": "purchases >= 1", "channel": "sms", "description": "", "csrf_token": token}
    taken = client.post("/console/segments", data=form)
    problem = taken.get_data(as_text=True).split('id="problem">', 1)[1].split("</p>", 1)[0]
    assert taken.status_code == 400 and "已有同名人群" in problem and f'href="{edit}"' in problem, problem
    page = client.get(edit).get_data(as_text=True)  # the saved rule, counted, ready to change
    assert str(escape(LOYAL_RULE)) in page and re.search(r'preview-matching">3<', page)
    assert 'value="loyal"' not in page.split('id="save"', 1)[1]  # a segment keeps its name
    previewed = client.get(edit, query_string={"rule": "purchases >= 1", "channel": "sms"}).get_data(as_text=True)
    assert re.search(r'preview-matching">4<', previewed) and re.search(r'preview-reachable">3<', previewed)
    assert f'action="{edit}"' in previewed.split('id="save"', 1)[1].split(">", 1)[0]
    change = {"rule": "purchases >= 1", "channel": "sms", "description": "any buyer", "csrf_token": token}
    assert client.post(edit, data={**change, "csrf_token": ""}).status_code == 400  # CSRF as everywhere
    refused = client.post(edit, data={**change, "rule": "purchases >"})
    assert refused.status_code == 400 and "这里需要一个字段、函数或值。" in refused.get_data(as_text=True)
    saved = client.post(edit, data=change)
    assert saved.status_code == 302 and saved.headers["Location"] == "/console/segments?saved=loyal"
    with _session(app) as db:
        row = definitions.find(db, "loyal")
    assert (row.rule, row.description, row.version, row.updated_by) == ("purchases >= 1", "any buyer", 2, "marketing")
    assert row.webhook_url == "https://crm.example.cn/hooks/seg"  # set by an administrator, kept
    (audited,) = _audits(app, "segment.update")
    assert (audited.actor, audited.subject) == ("marketing", "segment:loyal")
    assert audited.detail == {"via": "console", "rule": "purchases >= 1", "channel": "sms", "version": 2}
    assert client.get("/console/segments/nothing/edit").status_code == 404
    assert client.post("/console/segments/nothing/edit", data=change).status_code == 404
    assert _api(app, "finance").get(edit).status_code == 403


def test_the_scheduled_job_and_the_command_line_evaluate(app, chain, tmp_path, capsys):
    from central import scheduler
    from tests.central.support import FakeClock

    _save(app)
    sessions = central_db.session_factory(app)
    assert scheduler.run_now(sessions, app.config["CENTRAL"], "segments", FakeClock(START)) == "ok"
    assert _members(app) == {chain["ann"], chain["bob"]}
    config = tmp_path / "central.toml"
    url = app.config["CENTRAL"].effective_database_url
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{url}"\n')
    assert main(["segment", "list", "--config", str(config)]) == 0
    assert "loyal\tv1\tsms\t2 members" in capsys.readouterr().out
    rule = ["--rule", "city = 'x' and", "--channel", "sms"]
    assert main(["segment", "add", "bad", *rule, "--config", str(config)]) == 2
    assert "rule_" in capsys.readouterr().err


def test_the_api_saves_edits_evaluates_and_pages_members(app, chain):
    admin, client = _api(app, "admin"), _api(app, "marketing")
    body = {"name": "recent", "rule": "purchases >= 1", "channel": "sms", "webhook_url": "http://127.0.0.1:9/h"}
    assert admin.post("/api/v1/segments", json=body).get_json()["error"]["reason"] == "bad_webhook"  # no secret
    created = admin.post("/api/v1/segments", json={**body, "webhook_secret": SECRET})
    assert created.status_code == 201 and created.get_json()["version"] == 1
    assert "webhook_secret" not in created.get_json()
    assert admin.post("/api/v1/segments", json={**body, "webhook_secret": SECRET}).status_code == 409
    edited = client.put("/api/v1/segments/recent", json={"rule": "purchases >= 2", "channel": "sms"}).get_json()
    assert (edited["version"], edited["webhook_url"]) == (2, body["webhook_url"])  # the webhook is kept
    assert client.post("/api/v1/segments/recent/evaluate").get_json() == {
        "segment": "recent",
        "version": 2,
        "members": 2,
        "entered": 2,
        "left": 0,
    }
    first = client.get("/api/v1/segments/recent/members?limit=1").get_json()
    second = client.get(f"/api/v1/segments/recent/members?after={first['next_after']}").get_json()
    assert [m["customer_id"] for m in first["members"] + second["members"]] == sorted([chain["ann"], chain["bob"]])
    listed = client.get("/api/v1/segments").get_json()["segments"]
    assert [(s["name"], s["members"], s["evaluated_version"]) for s in listed] == [("recent", 2, 2)]
    assert client.get("/api/v1/segments/nothing").status_code == 404
    history = client.get("/api/v1/segments/recent/history?limit=1").get_json()["history"]
    assert [h["customer_id"] for h in history] == [max(chain["ann"], chain["bob"])]
    assert [a.action for a in table_rows(app, AuditLog) if a.action.startswith("segment.")] == [
        "segment.create",
        "segment.update",
        "segment.evaluate",
        "segment.members",
        "segment.members",
        "segment.history",  # who entered and left: customers' ids, like the members
    ]
    assert _audits(app, "segment.create")[0].detail["webhook"] == "127.0.0.1"


def test_only_an_administrator_points_a_segment_at_a_webhook(app, chain):
    """Marketing may edit a segment's rule but not where its exports go: an administrator's export is
    unmasked, so a marketer who could repoint the webhook would have full phones and names delivered
    to a server of their own by the next routine export."""
    admin, marketing = _api(app, "admin"), _api(app, "marketing")
    hooked = {"name": "hooked", "rule": "purchases >= 1", "channel": "sms"}
    ours = {"webhook_url": "https://crm.example.cn/hooks/seg", "webhook_secret": SECRET}
    assert admin.post("/api/v1/segments", json={**hooked, **ours}).status_code == 201
    theirs = {"webhook_url": "https://attacker.example.net/x", "webhook_secret": "attackersecret-123456"}
    for method, url in (("put", "/api/v1/segments/hooked"), ("post", "/api/v1/segments")):
        for change in (theirs, {"webhook_url": ""}, {"webhook_secret": "attackersecret-123456"}):
            body = {**hooked, "name": "hooked" if method == "put" else "other", **change}
            refused = getattr(marketing, method)(url, json=body)
            assert refused.status_code == 403, refused.get_json()
            assert refused.get_json()["error"]["code"] == "forbidden"
    # Six attempts at repointing it, six audited refusals.
    tries = [(a.subject, a.detail["reason"]) for a in _audits(app, "access.refused")]
    assert (
        tries
        == [("PUT /api/v1/segments/hooked", "admin_only_setting")] * 3
        + [("POST /api/v1/segments", "admin_only_setting")] * 3
    )
    assert admin.get("/api/v1/segments/hooked").get_json()["webhook_url"] == ours["webhook_url"]
    assert marketing.put("/api/v1/segments/hooked", json={**hooked, "rule": "purchases >= 2"}).status_code == 200
    assert admin.put("/api/v1/segments/hooked", json={**hooked, **theirs}).status_code == 200
    [*_, changed] = _audits(app, "segment.update")
    assert changed.detail["webhook"] == {"from": "crm.example.cn", "to": "attacker.example.net"}


def test_a_segment_is_deleted_after_confirmation_keeping_its_history_not_while_its_export_is_sent(app, chain, clock):
    _save(app, webhook_url="https://crm.example.cn/hooks/seg", webhook_secret=SECRET)
    _save(app, name="once", rule="purchases = 1")
    _evaluate(app)
    admin, marketing = _api(app, "admin"), _api(app, "marketing")
    assert admin.post("/api/v1/segments/loyal/export", json={}).status_code == 202  # a call queued
    html = marketing.get("/console/segments").get_data(as_text=True)
    row = html.split('data-segment="loyal"', 1)[1].split("</tr>", 1)[0]
    assert 'action="/console/segments/loyal/delete"' in row
    token = csrf_from(html)
    # Asked first: the page names the segment and holds the form again, with confirm=yes.
    asked = marketing.post("/console/segments/loyal/delete", data={"csrf_token": token})
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "删除人群 loyal（2 位成员）" in page and 'name="confirm" value="yes"' in page
    with _session(app) as db:
        assert definitions.find(db, "loyal") is not None
    # In use: its export is still being sent.
    refused = marketing.post("/console/segments/loyal/delete", data={"csrf_token": token, "confirm": "yes"})
    problem = refused.get_data(as_text=True).split('id="problem">', 1)[1].split("</p>", 1)[0]
    assert refused.status_code == 409 and "无法删除人群" in problem and "in_use_export" in problem, problem
    api_refused = marketing.delete("/api/v1/segments/loyal")
    assert api_refused.status_code == 409 and api_refused.get_json()["error"]["reason"] == "in_use_export"
    assert "1 webhook call" in api_refused.get_json()["error"]["message"]
    finance = _api(app, "finance")
    assert post_form(finance, "/console/segments/loyal/delete", {"confirm": "yes"}).status_code == 403
    with _session(app) as db:  # the call ends (delivered); the segment is no longer in use
        db.execute(WebhookDelivery.__table__.update().values(status=DELIVERED))
        db.commit()
    clock.advance(minutes=10)
    done = marketing.post("/console/segments/loyal/delete", data={"csrf_token": token, "confirm": "yes"})
    assert done.status_code == 302 and done.headers["Location"] == "/console/segments?deleted=loyal"
    listed = marketing.get(done.headers["Location"]).get_data(as_text=True)
    assert 'id="deleted"' in listed and 'data-segment="loyal"' not in listed and 'data-segment="once"' in listed
    with _session(app) as db:
        assert definitions.find(db, "loyal") is None
    assert _members(app) == set()  # "once" was never evaluated; loyal's members are gone with it
    # Who was in it stays answerable: everyone who entered left at the deletion, under its id.
    after = START + timedelta(minutes=10)
    assert sorted(_history(app)) == sorted(
        [(chain[w], "entered", START) for w in ("ann", "bob")] + [(chain[w], "left", after) for w in ("ann", "bob")]
    )
    (audited,) = _audits(app, "segment.delete")
    assert (audited.actor, audited.subject) == ("marketing", "segment:loyal")
    segment_id = {r.segment_id for r in table_rows_by(app, SegmentMembershipEvent)}
    assert audited.detail["id"] in segment_id and audited.detail["rule"] == LOYAL_RULE
    assert (audited.detail["via"], audited.detail["version"], audited.detail["members_left"]) == ("console", 1, 2)
    # The API deletes the same way; a name freed by deletion may be used again.
    deleted = marketing.delete("/api/v1/segments/once")
    assert deleted.status_code == 200 and deleted.get_json()["deleted"]["name"] == "once"
    assert deleted.get_json()["members_left"] == 0
    assert marketing.delete("/api/v1/segments/once").status_code == 404
    assert finance.delete("/api/v1/segments/loyal").status_code == 403
    _save(app)
    assert [a.detail.get("via") for a in _audits(app, "segment.delete")] == ["console", None]


def test_the_command_line_deletes_a_segment_with_yes_as_the_api_does(app, chain, tmp_path, capsys):
    _save(app, webhook_url="https://crm.example.cn/hooks/seg", webhook_secret=SECRET)
    _evaluate(app)
    config = tmp_path / "central.toml"
    url = app.config["CENTRAL"].effective_database_url
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{url}"\n')

    def delete(*args):
        status = main(["segment", "delete", *args, "--config", str(config)])
        out, err = capsys.readouterr()
        return status, out, err.splitlines()[-1]

    status, _, said = delete("nothing", "--yes")
    assert status == 2 and "no segment 'nothing'" in said
    # Without --yes nothing changes: the line says what would go and how to confirm.
    status, _, said = delete("loyal")
    assert status == 2 and "version 1, 2 members" in said and "--yes" in said, said
    assert _api(app, "admin").post("/api/v1/segments/loyal/export", json={}).status_code == 202  # a call queued
    status, _, said = delete("loyal", "--yes")
    assert status == 1 and "in_use_export" in said and "1 webhook call" in said, said
    with _session(app) as db:
        assert definitions.find(db, "loyal") is not None
    assert _audits(app, "segment.delete") == [] and len(_history(app)) == 2
    with _session(app) as db:  # the call ends (delivered); the segment is no longer in use
        db.execute(WebhookDelivery.__table__.update().values(status=DELIVERED))
        db.commit()
    status, out, _ = delete("loyal", "--yes")
    assert status == 0 and "segment loyal deleted; 2 members left it" in out
    with _session(app) as db:
        assert definitions.find(db, "loyal") is None
    assert _members(app) == set() and sorted(c for _, c, _ in _history(app)) == ["entered"] * 2 + ["left"] * 2
    (audited,) = _audits(app, "segment.delete")
    assert (audited.actor, audited.subject, audited.detail["via"]) == (cli_actor(), "segment:loyal", "cli")
    assert (audited.detail["rule"], audited.detail["members_left"]) == (LOYAL_RULE, 2)
    status, _, said = delete("loyal", "--yes")
    assert status == 2 and "no segment 'loyal'" in said
