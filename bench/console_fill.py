"""Everything the console's pages read beyond :func:`bench.fill.chain`, by set-based SQL.

For ``customers`` customers and ``events`` events (ids n + 1, owned as :func:`bench.fill.owner`
says): a phone for everyone (identifier id = customer id), a member id for every other customer and
a card for one in three; golden names from a few thousand distinct ones and a birthday; consents;
notes and a merge-ledger row for one in a hundred; purchase days; a presence visit for each
``presence.visit`` event; four coupon campaigns issued to one member in ten each, three in ten
redeemed; three triggers with occasions for one customer in twenty each, and their coupons; review
items; five segments of stored members; a fleet of agents with heartbeats; member imports with
their rows and runs; and an audit log of one row per customer.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench.fill import NOW, Dialect, analyze, owner, reset_sequences, series
from central.campaigns import snapshots
from central.customers import dashboard

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚"
NAMES = len(SURNAMES) * len(GIVEN) * 10  # distinct names: a surname, a given name and one of ten seconds
CAMPAIGNS = 4
TRIGGERS = (("birthday", "birthday", '{"days_before": 3}'), ("win_back", "win_back", '{"tag": "lifecycle"}'))
SEGMENTS = 5
DEVICES = 300
IMPORTS = 30
OFFSET = 480  # the chain's local time: UTC+8, the default customers.utc_offset_minutes


def _name(d: Dialect) -> str:
    """One of :data:`NAMES` names, by n."""
    pick = (
        "substr('{s}', CAST(1 + n % {a} AS integer), 1) || substr('{g}', CAST(1 + (n / {a}) % {b} AS integer), 1)"
        " || substr('{g}', CAST(1 + (n / {c}) % 10 AS integer), 1)"
    )
    return pick.format(s=SURNAMES, g=GIVEN, a=len(SURNAMES), b=len(GIVEN), c=len(SURNAMES) * len(GIVEN))


def people(engine: Engine, customers: int) -> None:
    """Identifiers, golden attributes, consents, notes, ledger rows and purchase days."""
    d = Dialect(engine)
    p = d.params(customers=customers)
    every = f"FROM ({series(engine, customers)}) s"
    at = d.at()
    statements = [
        "INSERT INTO identifiers (id, kind, value, customer_id, state, created_at, last_seen_at, partners_total,"
        f" partners_today, partners_day) SELECT n + 1, 'phone', {d.padded('+86138', 'n + 1', 8)}, n + 1, 'linked',"
        f" {at}, {at}, 1, 0, '' {every}",
        "INSERT INTO identifiers (id, kind, value, customer_id, state, created_at, last_seen_at, partners_total,"
        f" partners_today, partners_day) SELECT :customers + n + 1, 'member_id', {d.padded('M', 'n + 1', 8)}, n + 1,"
        f" 'linked', {at}, {at}, 1, 0, '' {every} WHERE n % 2 = 0",
        "INSERT INTO identifiers (id, kind, value, customer_id, state, created_at, last_seen_at, partners_total,"
        f" partners_today, partners_day) SELECT 2 * :customers + n + 1, 'member_card', {d.padded('VIP', 'n + 1', 8)},"
        f" n + 1, 'linked', {at}, {at}, 1, 0, '' {every} WHERE n % 3 = 0",
        # The generated names are simplified characters without spaces: each is its own search key.
        "INSERT INTO golden_attributes (customer_id, attribute, value, source, verified, observed_at, search_key)"
        f" SELECT n + 1, 'name', {_name(d)}, 'pos', false, {at}, {_name(d)} {every}",
        "INSERT INTO golden_attributes (customer_id, attribute, value, source, verified, observed_at)"
        f" SELECT n + 1, 'birthday', {d.padded('19', '50 + n % 50', 2)} || '-0' || (1 + n % 9) || '-1' || (n % 9),"
        f" 'member', true, {at} {every} WHERE n % 2 = 0",
        "INSERT INTO consent_decisions (customer_id, event_pk, purpose, channel, granted, observed_at, recorded_at,"
        " source, notice_version, scope, origin, origin_id, actor) SELECT n + 1, NULL, 'marketing', 'sms',"
        f" n % 4 <> 3, {at}, {at}, 'pos', 'v1', 'chain', 'bench', CAST(n AS text), NULL {every} WHERE n % 2 = 0",
        "INSERT INTO consent_decisions (customer_id, event_pk, purpose, channel, granted, observed_at, recorded_at,"
        " source, notice_version, scope, origin, origin_id, actor) SELECT n + 1, NULL, 'marketing', 'wechat',"
        f" true, {at}, {at}, 'app', 'v1', 'chain', 'bench', 'w' || n, NULL {every} WHERE n % 5 = 0",
        "INSERT INTO customer_notes (customer_id, author, text, created_at)"
        f" SELECT n + 1, 'service', '来电询问积分，电话 138' || n, {at} {every} WHERE n % 100 = 0",
        "INSERT INTO identity_ledger (at, action, rule, identifier_id, anchor_identifier_id, customer_id,"
        " other_customer_id, event_pk, source, store_id, operator, detail)"
        f" SELECT {at}, 'link', 'new', n + 1, NULL, n + 1, NULL, NULL, 'pos', 'S001', NULL, NULL {every}"
        " WHERE n % 100 = 0",
        # three purchase days a customer, spread over the 60 days
        "INSERT INTO customer_days (customer_id, day, purchases, spent)"
        f" SELECT 1 + n % :customers, {_day(d, 'n / :customers * 19 + n % 17')}, 1, 1000 + n % 9000"
        f" FROM ({series(engine, 3 * customers)}) s",
    ]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), p)


def _day(d: Dialect, expr: str) -> str:
    return (
        f"CAST(CAST(:start AS date) + CAST({expr} AS integer) AS date)"
        if d.pg
        else f"date(:start, '+' || ({expr}) || ' days')"
    )


def campaigns(engine: Engine, customers: int, events: int) -> None:
    """Coupon campaigns with codes, redemptions and conflicts; triggers with occasions and coupons."""
    d = Dialect(engine)
    per = max(1, customers // 10)  # codes per campaign: members 10m + 1
    p = d.params(customers=customers, per=per, events=events)
    at = d.at()
    codes = f"FROM ({series(engine, per)}) s"
    statements = []
    for c in range(1, CAMPAIGNS + 1):
        statements += [
            "INSERT INTO coupon_campaigns (id, name, value, valid_from, valid_to, max_redemptions, redeemed,"
            f" offline_budget, stores, created_at, created_by) VALUES ({c}, '满减{c}', {5 * c}, :start, :now,"
            f" 1000000000, 0, 100, NULL, :start, 'bench')",
            "INSERT INTO coupon_codes (serial, campaign_id, member_id, issued_at, revoked_at)"
            f" SELECT {c - 1} * :per + n + 1, {c}, {d.padded('M', '10 * n + 1', 8)}, {at}, NULL {codes}",
            "INSERT INTO coupon_redemptions (serial, campaign_id, event_pk, device_id, store_id, observed_at,"
            f" applied_at, status) SELECT {c - 1} * :per + n + 1, {c}, 1 + (n * 20 + 16) % :events, 'dev',"
            f" {d.padded('S', 'n % 100', 3)}, {at}, {at}, 'applied' {codes} WHERE n % 10 < 3",
            "INSERT INTO coupon_conflicts (kind, campaign_id, serial, event_pk, device_id, store_id, observed_at,"
            " flagged_at, detail, payload, resolved_at, resolved_by, resolution)"
            f" SELECT 'double_redemption', {c}, {c - 1} * :per + n + 1, 1, 'dev', 'S001', {at}, {at}, 'twice', '{{}}',"
            f" NULL, NULL, NULL {codes} WHERE n % 500 = 0",
        ]
    step = max(1, customers // 20)
    for t, (name, kind, params) in enumerate(TRIGGERS, start=1):
        occasions = f"FROM ({series(engine, step)}) s"
        statements += [
            "INSERT INTO triggers (id, name, kind, params, action, action_params, control_percent, enabled,"
            f" created_at, created_by) VALUES ({t}, '{name}', '{kind}', '{params}', 'coupon',"
            f" '{{\"campaign\": \"满减1\"}}', 10, true, :start, 'bench')",
            "INSERT INTO trigger_occasions (id, trigger_id, customer_id, occasion, grp, fired_at, instance)"
            f" SELECT {t - 1} * :customers + n + 1, {t}, 1 + (20 * n + {t}) % :customers, '2026-11', CASE WHEN"
            f" n % 10 = 0 THEN 'control' ELSE 'action' END, {at}, 'bench' {occasions}",
            "INSERT INTO trigger_coupons (occasion_id, trigger_id, customer_id, campaign_id, serial)"
            f" SELECT {t - 1} * :customers + n + 1, {t}, 1 + (20 * n + {t}) % :customers, {t},"
            f" {t - 1} * :per + n + 1 {occasions} WHERE n % 10 <> 0",
        ]
    visits = f"FROM ({series(engine, events // 20)}) s"  # the events n = 20 m + 19 are visits
    statements.append(
        "INSERT INTO presence_visits (event_pk, store_id, device_id, medium, started_at, ended_at, dwell_s,"
        f" repeat, zones, customer_id) SELECT 20 * n + 20, {d.padded('S', 'n % 100', 3)}, 'dev', 'app',"
        f" {d.at('(20 * n + 19) * 7919 % :seconds')}, {d.at('(20 * n + 19) * 7919 % :seconds + 600')}, 600, false,"
        f" '[]', {owner(customers, '(20 * n + 19)')} {visits}"
    )
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), p)


def operations(engine: Engine, customers: int) -> None:
    """Review items, segments with stored members, the fleet, member imports and the audit log."""
    d = Dialect(engine)
    p = d.params(customers=customers)
    at = d.at()
    reviews = max(10, customers // 100)
    evidence = d.json('\'{"kind": "phone", "value": "+86138\' || n || \'"}\'')
    beat = d.json(
        '\'{"health": {"queue_depth": \' || (n % 7) || \', "oldest_unsent_age_s": 3, "clock_offset_s": 0.2,'
        ' "downlink_version": 4}, "outbox": {"pending": 2}}\''
    )
    statements = [
        "INSERT INTO review_items (key, reason, status, created_at, decided_at, decided_by, customer_id,"
        " other_customer_id, identifier_id, event_pk, source, store_id, score, evidence)"
        " SELECT 'r' || n, CASE WHEN n % 3 = 0 THEN 'conflict' WHEN n % 3 = 1 THEN 'suspicious' ELSE 'weak_match' END,"
        f" CASE WHEN n % 4 = 0 THEN 'accepted' WHEN n % 4 = 1 THEN 'rejected' ELSE 'open' END, {at}, NULL, NULL,"
        f" 1 + (n * 13) % :customers, 1 + (n * 17) % :customers, 1 + (n * 13) % :customers, NULL, 'pos', 'S001',"
        f" 0.7, {evidence} FROM ({series(engine, reviews)}) s",
        "INSERT INTO devices (device_id, store_id, public_key, hostname, agent_version, status, enrolled_at,"
        " last_seen_at, last_seq, last_heartbeat, heartbeat_at, heartbeat_seq, status_changed_at, status_reason,"
        f" key_rotated_at) SELECT {d.padded('pc-', 'n', 4)}, {d.padded('S', 'n % 100', 3)}, 'k' || n, 'host' || n,"
        f" '1.4.0', 'active', :start, {d.at(':seconds - n % 600')}, n, {beat}, {d.at(':seconds - n % 600')}, n, NULL,"
        " '', NULL"
        f" FROM ({series(engine, DEVICES)}) s",
    ]
    for s in range(1, SEGMENTS + 1):
        size = customers // (2 * s)  # from half the customers down to a tenth
        statements += [
            "INSERT INTO segments (id, name, description, rule, fingerprint, version, purpose, channel, webhook_url,"
            " webhook_secret, created_at, created_by, updated_at, updated_by, evaluated_at, evaluated_version,"
            f" members) VALUES ({s}, 'seg{s}', 'bench', 'tag.value_tier = \"loyal\"', 'f{s}', 1, 'marketing',"
            f" 'sms', NULL, NULL, :start, 'bench', :start, 'bench', :now, 1, {size})",
            f"INSERT INTO segment_members (segment_id, customer_id, entered_at) SELECT {s}, {s} * n + 1, :now"
            f" FROM ({series(engine, size)}) s",
        ]
    for i in range(1, IMPORTS + 1):
        rows = customers if i == IMPORTS else max(1, customers // 100)  # the newest: the whole member base
        statements += [
            "INSERT INTO member_imports (id, digest, source, filename, operator, created_at, completed_at, rows)"
            f" VALUES ({i}, 'd{i}', 'legacy', 'members-{i}.csv', 'bench', :start, :now, {rows})",
            "INSERT INTO import_runs (import_id, operator, started_at, updated_at, finished_at, rows_total,"
            f" rows_skipped, rows_done, status, error) VALUES ({i}, 'bench', :start, :now, :now, {rows}, 0, {rows},"
            " 'done', NULL)",
            "INSERT INTO import_rows (import_id, row, event_pk, external_id, customer_id, outcome, reason)"
            f" SELECT {i}, n + 1, NULL, 'x' || n, 1 + n % :customers, CASE WHEN n % 50 = 0 THEN 'rejected'"
            f" ELSE 'created' END, CASE WHEN n % 50 = 0 THEN 'invalid_phone' ELSE '' END"
            f" FROM ({series(engine, rows)}) s",
        ]
    statements.append(
        "INSERT INTO audit_log (at, actor, action, subject, detail, prev_hash, row_hash)"
        f" SELECT {at}, 'service', 'customers.view', 'customer:' || (n + 1), NULL, '', ''"
        f" FROM ({series(engine, customers)}) s"
    )
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), p)


# the tables written with explicit ids
TABLES = [
    "customers", "identifiers", "events", "coupon_campaigns", "coupon_codes", "triggers", "trigger_occasions",
    "segments", "member_imports",
]  # fmt: skip


def console(engine: Engine, customers: int, events: int) -> None:
    """Everything above, then statistics."""
    people(engine, customers)
    campaigns(engine, customers, events)
    operations(engine, customers)
    reset_sequences(engine, TABLES)
    analyze(engine)
    jobs(engine)


def jobs(engine: Engine) -> None:
    """What the scheduled jobs keep for the pages, unless kept already: the overview's tier and RFM snapshot
    (each tag recompute writes it) and new members per store and day (``store_alerts``), and the campaign
    pages' report snapshots (``reports``)."""
    with engine.begin() as conn:
        if not conn.execute(text("SELECT COUNT(*) FROM overview_figures")).scalar_one():
            dashboard.snapshot(conn, NOW)
            today = dashboard.local_today(NOW, OFFSET)
            dashboard.count_new_members(conn, today - timedelta(days=29), today - timedelta(days=1), OFFSET)
    with Session(engine) as db:
        if not db.execute(text("SELECT COUNT(*) FROM report_snapshots")).scalar_one():
            db.rollback()
            snapshots.refresh_all(db, NOW, OFFSET)
