"""import-members: an exact report, reruns that change nothing, encodings, dry runs, the API."""

from __future__ import annotations

import codecs
import gzip
import os
import re
import stat
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text

from bench.legacy_members import MAPS, compare, write_file
from central import db as central_db
from central.cli import main
from central.customers.consent_gate import may_market, may_profile
from central.identity.models import GoldenAttribute, ReviewItem
from central.identity.resolve import Resolution, resolve
from central.models import AuditLog
from central.sources.import_file import ImportOptions, plan_import
from central.sources.import_report import report_rows, totals, totals_statement
from central.sources.member_import import run_import
from tests.central.cli_runner import write_config
from tests.central.sources_support import default_registry
from tests.central.support import row_counts, table_rows

MAP_ARGS = [arg for spec in MAPS for arg in ("--map", spec)]


@pytest.fixture
def config_path(app):
    config = app.config["CENTRAL"]
    return str(
        write_config(config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url)
    )


def without_audit(counts):
    return {k: v for k, v in counts.items() if k != "audit_log"}


def status_of(expected):
    """The exit status an import of a generated file ends with: 1 if any of its rows is rejected."""
    return 1 if any(e.outcome == "rejected" for e in expected) else 0


def test_a_legacy_file_imports_with_an_exact_report_and_a_rerun_changes_nothing(app, config_path, tmp_path, capsys):
    path = tmp_path / "members.csv"
    expected = write_file(path, 1500, seed=11)
    report = tmp_path / "report.csv"
    args = ["import-members", str(path), *MAP_ARGS, "--report", str(report), "--config", config_path]
    assert status_of(expected) == 1
    assert main([*args, "--chunk-size", "200"]) == 1
    out = capsys.readouterr().out
    assert compare(report, expected) == []
    counts = {o: sum(1 for e in expected if e.outcome == o) for o in ("new", "merged", "conflict", "rejected")}
    assert f"  rows             {len(expected)}" in out
    assert f"  new customers    {counts['new']}" in out
    assert f"  merges           {counts['merged']}" in out
    assert f"  conflicts        {counts['conflict']}" in out
    assert f"  rejected         {counts['rejected']}" in out
    # A row that joined an existing customer is a merge row; customers joined together are counted apart.
    assert re.search(
        r"this run: \d+ rows processed, 0 already imported; customers created \d+,"
        r" existing customers merged into others \d+,",
        out,
    )

    before = without_audit(row_counts(app))
    first_report = report.read_text(encoding="utf-8")
    assert main(args) == 1  # rerun: nothing changes, the same rows are still the file's rejected ones
    out = capsys.readouterr().out
    assert "this run: 0 rows processed, 1500 already imported" in out
    assert without_audit(row_counts(app)) == before
    assert report.read_text(encoding="utf-8") == first_report
    assert [a.action for a in table_rows(app, AuditLog)] == ["members.import"]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_bom_and_gb18030_files_read_the_same(app, config_path, tmp_path, encoding, capsys):
    path = tmp_path / "members.csv"
    expected = write_file(path, 300, seed=5, encoding=encoding)
    report = tmp_path / "report.csv"
    args = ["import-members", str(path), *MAP_ARGS, "--report", str(report), "--config", config_path]
    assert main(args) == status_of(expected)
    assert f", {encoding})" in capsys.readouterr().out
    assert compare(report, expected) == []


def test_utf16_tab_separated_exports_read_too(app, config_path, tmp_path, capsys):
    path = tmp_path / "members.txt"
    text = "卡号\t姓名\t手机\t生日\nVIP1\t王芳\t+86 138 0013 9001\t1990年3月5日\n"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    report = tmp_path / "r.csv"
    args = ["--map", "卡号=member_card", "--map", "姓名=name", "--map", "手机=phone", "--map", "生日=birthday"]
    assert main(["import-members", str(path), *args, "--report", str(report), "--config", config_path]) == 0
    assert report.read_text().splitlines() == ["row,customer_id,outcome,reason", "1,1,new,new customer"]


def test_a_name_typed_with_a_zero_width_space_is_the_same_name_for_the_phone_and_name_rule(
    app, config_path, tmp_path, capsys
):
    path = tmp_path / "members.csv"
    path.write_text("姓名,手机\n张三,13922220001\n张\u200b三,13922220001\n\u200b,13922220002\n", encoding="utf-8")
    report = tmp_path / "r.csv"
    args = ["--map", "姓名=name", "--map", "手机=phone"]
    assert main(["import-members", str(path), *args, "--report", str(report), "--config", config_path]) == 0
    rows = report.read_text(encoding="utf-8").splitlines()
    assert "phone_shared_by_other_names" not in report.read_text(encoding="utf-8"), rows
    assert [row.split(",")[1:3] for row in rows[1:]] == [["1", "new"], ["1", "merged"], ["2", "new"]]
    names = [(a.customer_id, a.value) for a in table_rows(app, GoldenAttribute) if a.attribute == "name"]
    assert names == [(1, "张三")]


def test_a_member_number_that_would_run_as_a_formula_is_reported_as_text(app, config_path, tmp_path, capsys):
    """The report repeats the legacy file's member numbers, whatever the old system let people type."""
    path = tmp_path / "members.csv"
    row = '"=HYPERLINK(""http://evil.example/"")",王芳,13800139001'
    path.write_text(f"会员号,姓名,手机\n{row}\n", encoding="utf-8")
    report = tmp_path / "r.csv"
    args = ["--map", "会员号=external_id", "--map", "姓名=name", "--map", "手机=phone"]
    assert main(["import-members", str(path), *args, "--report", str(report), "--config", config_path]) == 0
    header, row = report.read_text(encoding="utf-8").splitlines()
    assert header == "row,会员号,customer_id,outcome,reason"
    assert row.startswith('1,"\'=HYPERLINK(""http://evil.example/"")",'), row


def test_the_report_says_what_went_to_review(app, config_path, tmp_path, capsys):
    """Two member numbers on one phone: the second row's phone is another customer's, which the review
    queue holds as a conflict; the report called every such row a weak match."""
    path = tmp_path / "members.csv"
    path.write_text("会员号,姓名,手机号码\nA1,周一,13655550001\nA2,周一,13655550001\n", encoding="utf-8")
    report = tmp_path / "report.csv"
    maps = ["--map", "会员号=member_id", "--map", "姓名=name", "--map", "手机号码=phone"]
    assert main(["import-members", str(path), *maps, "--report", str(report), "--config", config_path]) == 0
    reviews = [(r.reason, r.event_pk) for r in table_rows(app, ReviewItem)]
    assert [reason for reason, _ in reviews] == ["unique_conflict"]
    second = report.read_text(encoding="utf-8").splitlines()[2]
    assert second.startswith("2,") and ",suggestion,new customer; " in second, second
    assert "an identifier another customer holds sent to review" in second and "weak match" not in second


def test_members_sharing_a_name_and_birthday_are_not_paired_past_the_block_limit(app, config_path, tmp_path, capsys):
    rows = "".join(f"B{i},张伟,1391111{i:04d},1990-03-07\n" for i in range(40))
    path = tmp_path / "members.csv"
    path.write_text("会员号,姓名,手机号码,生日\n" + rows, encoding="utf-8")
    maps = ["--map", "会员号=member_id", "--map", "姓名=name", "--map", "手机号码=phone", "--map", "生日=birthday"]
    assert main(["import-members", str(path), *maps, "--config", config_path]) == 0
    out, _ = capsys.readouterr()
    assert [r for r in table_rows(app, ReviewItem) if r.reason == "weak_match"] == []  # every pair was 780
    assert "  match blocks too common for weak-match suggestions: 1 (not paired: 1990-03-07|z, 40 customers)" in out


def test_a_rejected_row_makes_the_import_exit_1_with_the_summary_and_the_report_all_the_same(
    app, config_path, tmp_path, capsys
):
    """As load-events does: a cron job or a script can tell a file that was not taken whole."""
    path = tmp_path / "members.csv"
    path.write_text("姓名,手机号码\n王芳,13800139001\n李四,\n张三,13800139002\n", encoding="utf-8")
    report = tmp_path / "report.csv"
    args = ["import-members", str(path), "--map", "姓名=name", "--map", "手机号码=phone", "--report", str(report)]
    assert main([*args, "--config", config_path]) == 1
    out, err = capsys.readouterr()
    assert "  rejected         1" in out and "no_identifier" in out
    assert f"  report: {report}" in out
    assert err.splitlines()[-1] == (
        f"central-server: 1 of the 3 rows of {path} were rejected; see {report}; the others are imported"
    )
    assert [line.split(",")[2] for line in report.read_text(encoding="utf-8").splitlines()[1:]] == [
        "new",
        "rejected",
        "new",
    ]
    assert row_counts(app)["customers"] == 2
    assert main([*args, "--config", config_path]) == 1  # a rerun changes nothing and says the same
    assert "this run: 0 rows processed, 3 already imported" in capsys.readouterr().out

    # Rows already imported, or merged into customers already there, are not errors.
    clean = tmp_path / "clean.csv"
    clean.write_text("姓名,手机号码\n王芳,13800139001\n赵六,13800139003\n", encoding="utf-8")
    plain = ["import-members", str(clean), "--map", "姓名=name", "--map", "手机号码=phone", "--config", config_path]
    assert main(plain) == 0
    assert main(plain) == 0
    out, err = capsys.readouterr()
    assert "this run: 0 rows processed, 2 already imported" in out
    assert "were rejected" not in err


def test_a_dry_run_reports_and_stores_nothing(app, config_path, tmp_path, capsys):
    path = tmp_path / "members.csv"
    expected = write_file(path, 400, seed=3)
    before = row_counts(app)
    report = tmp_path / "dry.csv"
    args = ["import-members", str(path), *MAP_ARGS, "--report", str(report), "--config", config_path]
    assert main([*args, "--dry-run"]) == status_of(expected)
    assert "dry run: nothing was stored" in capsys.readouterr().out
    assert compare(report, expected) == []
    assert row_counts(app) == before
    real = tmp_path / "real.csv"
    assert main([*args[:-4], "--report", str(real), "--config", config_path]) == status_of(expected)
    assert compare(real, expected) == []  # the same outcomes (PostgreSQL does not reuse rolled-back ids)


@pytest.mark.parametrize(
    ("maps", "message"),
    [
        (["--map", "电话=phone"], "has no column '电话'"),
        (["--map", "姓名=nmae!"], "unknown field 'nmae!'"),
        (["--map", "姓名=phone", "--map", "手机号码=phone"], "'phone' comes from two columns"),
        (["--map", "姓名"], "must be COLUMN=FIELD"),
    ],
)
def test_mapping_mistakes_stop_before_anything_is_stored(app, config_path, tmp_path, capsys, maps, message):
    path = tmp_path / "members.csv"
    write_file(path, 20)
    assert main(["import-members", str(path), *maps, "--config", config_path]) == 2
    assert message in capsys.readouterr().err
    assert row_counts(app)["events"] == 0


def test_a_mistyped_field_is_refused_with_the_fields_there_are(app, user_client, config_path, tmp_path, capsys):
    """It read as an identifier type of that name: every name was dropped, each row saying only "unusable:nmae"."""
    path = tmp_path / "members.csv"
    write_file(path, 20)
    maps = [arg for spec in MAPS for arg in ("--map", "姓名=nmae" if spec == "姓名=name" else spec)]
    assert main(["import-members", str(path), *maps, "--config", config_path]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1] == (
        "central-server: --map '姓名=nmae': unknown field 'nmae' (did you mean 'name'?); the fields are"
        " name, given_name, family_name, gender, birthday, address, city, postcode, province,"
        " phone, email, member_card, member_id, app_user_id, device_hash, wechat_openid, wechat_unionid,"
        " external_id, attr:NAME, consent:PURPOSE[:CHANNEL], consent_at and - (drop the column)"
    )
    assert row_counts(app)["events"] == 0
    refused = user_client.post("/api/v1/imports/members?map=姓名=nmae", data="姓名,手机号码\n王芳,13800139001\n")
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "invalid_mapping"
    assert "unknown field 'nmae' (did you mean 'name'?)" in refused.get_json()["error"]["message"]


def test_a_report_that_cannot_be_written_stops_the_import_before_anything_is_stored(app, config_path, tmp_path, capsys):
    path = tmp_path / "members.csv"
    write_file(path, 20)
    (tmp_path / "not-a-directory").write_text("", encoding="utf-8")
    for report, why in [
        (tmp_path / "nonexistent" / "dir" / "r.csv", f"directory {tmp_path / 'nonexistent' / 'dir'} does not exist"),
        (tmp_path / "not-a-directory" / "r.csv", f"{tmp_path / 'not-a-directory'} is not a directory"),
        (tmp_path, "it is a directory"),
    ]:
        args = ["import-members", str(path), *MAP_ARGS, "--report", str(report), "--config", config_path]
        assert main(args) == 2, report
        out, err = capsys.readouterr()
        assert err == f"central-server: cannot write the report to {report}: {why}; nothing was imported\n"
        assert out == ""
        assert row_counts(app)["events"] == 0
        assert row_counts(app)["member_imports"] == 0


def test_the_report_is_owner_only_in_a_directory_others_may_read(app, config_path, tmp_path, capsys):
    """The report echoes the old system's member numbers against customer ids."""
    path = tmp_path / "members.csv"
    write_file(path, 20)
    folder = tmp_path / "reports"
    folder.mkdir(mode=0o755)
    report = folder / "report.csv"
    report.write_text("an earlier report\n", encoding="utf-8")
    report.chmod(0o644)
    old = os.umask(0o022)
    try:
        assert main(["import-members", str(path), *MAP_ARGS, "--report", str(report), "--config", config_path]) == 0
    finally:
        os.umask(old)
    assert len(report.read_text(encoding="utf-8").splitlines()) == 21
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert [p.name for p in folder.iterdir()] == ["report.csv"]


def test_an_undecodable_file_names_the_fix(app, config_path, tmp_path, capsys):
    path = tmp_path / "members.csv"
    path.write_bytes(b"name,phone\n\x81\x30\x81\xff,1\n")  # neither UTF-8 nor GB18030
    assert main(["import-members", str(path), "--config", config_path]) == 2
    assert "give its encoding with --encoding" in capsys.readouterr().err


def test_rows_are_committed_five_thousand_at_a_time_by_default(app, tmp_path):
    """At 100,000 rows, 5,000 a transaction cost 10 to 15 % less CPU per row than 1,000."""
    path = tmp_path / "m.csv"
    path.write_text("name,phone\n王芳,13800139001\n" + "\n" * 5000, encoding="utf-8")
    registry = default_registry()
    options = ImportOptions()
    plan = plan_import(path, options, registry)
    committed: list[int] = []
    with central_db.session_factory(app)() as db:
        import_id, _ = run_import(
            db,
            plan,
            options,
            registry=registry,
            clock=lambda: datetime(2026, 12, 1, tzinfo=UTC),
            today=date(2026, 12, 1),
            on_rows=committed.append,
        )
        assert totals(db, import_id).by_outcome == {"new": 1, "rejected": 5000}
    assert committed == [5000, 5001, 5001]


def test_rows_whose_evidence_went_to_review_are_told_apart(app, tmp_path):
    """When resolution queues something for review, each row's share of it is found out exactly."""
    path = tmp_path / "m.csv"
    path.write_text("name,phone\n王芳,13800139001\n李雷,13800139002\n韩梅梅,13800139003\n", encoding="utf-8")

    def reviewing(db, facts, now, **options) -> Resolution:
        result = resolve(db, facts, now, **options)
        flagged = [f.attributes.get("name") == "李雷" for f in facts]
        ids = [
            None if (flag and len(facts) == 1) else cid for cid, flag in zip(result.customer_ids, flagged, strict=True)
        ]
        return Resolution(ids, result.created, result.merged, result.reviewed + sum(flagged))

    registry = default_registry()
    options = ImportOptions()
    plan = plan_import(path, options, registry)
    with central_db.session_factory(app)() as db:
        import_id, stats = run_import(
            db,
            plan,
            options,
            registry=registry,
            clock=lambda: datetime(2026, 11, 30, tzinfo=UTC),
            today=date(2026, 11, 30),
            resolver=reviewing,
        )
        assert totals(db, import_id).by_outcome == {"new": 2, "conflict": 1}
        assert [r[4] for r in report_rows(db, import_id)][1] == "sent to review, not linked"
    assert stats.reviewed == 1


def test_the_api_imports_for_admins_and_serves_the_report(app, user_client, client, tmp_path):
    path = tmp_path / "members.csv"
    expected = write_file(path, 200, seed=9)
    query = "&".join(f"map={spec}" for spec in MAPS)
    assert client.post(f"/api/v1/imports/members?{query}", data=b"x").status_code == 401
    response = user_client.post(
        f"/api/v1/imports/members?{query}&filename=members.csv",
        data=gzip.compress(path.read_bytes()),
        headers={"Content-Encoding": "gzip", "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["totals"]["rows"] == 200
    assert answer["totals"]["new"] == sum(1 for e in expected if e.outcome == "new")
    report = user_client.get(answer["report"])
    assert report.status_code == 200
    saved = tmp_path / "report.csv"
    saved.write_text(report.get_data(as_text=True).replace("external_id", "会员编号", 1), encoding="utf-8")
    assert compare(saved, expected) == []
    dry = user_client.post(f"/api/v1/imports/members?{query}&dry_run=1", data=path.read_bytes()).get_json()
    assert dry["import_id"] is None and len(dry["rows"]) == 200 and dry["run"]["processed"] == 0


def test_the_api_explains_a_bad_mapping(app, user_client):
    response = user_client.post("/api/v1/imports/members?map=nope=phone", data="name,phone\n王芳,13800139001\n")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_mapping"


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("filename=..", "filename"),
        ("filename=/", "filename"),
        ("filename=a%00b.csv", "filename"),
        (f"filename={'f' * 300}.csv", "filename"),
        ("delimiter=abc", "delimiter 'abc'"),
        ("merge_suggestions=nan", "merge suggestions"),
        ("merge_suggestions=-5", "merge suggestions"),
        ("merge_suggestions=1.5", "merge suggestions"),
    ],
)
def test_the_api_refuses_options_that_cannot_work_with_a_400(app, user_client, query, said):
    """These gave 500s (a directory or a NUL written as the upload's name, csv's own TypeError), or,
    for nan, quietly turned merging off."""
    response = user_client.post(f"/api/v1/imports/members?{query}", data="name,phone\n王芳,13800139001\n")
    assert response.status_code == 400, response.get_data()[:300]
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request" and said in error["message"], error


def test_the_api_names_the_file_as_uploaded_not_where_central_keeps_it(app, user_client, tmp_path):
    response = user_client.post("/api/v1/imports/members?filename=会员.csv", data=b"")
    assert response.status_code == 400
    message = response.get_json()["error"]["message"]
    assert "会员.csv is empty" in message and str(tmp_path) not in message and "/" not in message


def test_the_command_refuses_a_delimiter_of_several_characters(app, config_path, tmp_path, capsys):
    path = tmp_path / "members.csv"
    path.write_text("name,phone\n王芳,13800139001\n", encoding="utf-8")
    assert main(["import-members", str(path), "--delimiter", "abc", "--config", config_path]) == 2
    assert "delimiter 'abc': one character" in capsys.readouterr().err


def test_a_file_that_is_not_csv_is_refused_with_its_line(app, config_path, tmp_path, capsys):
    path = tmp_path / "members.csv"
    path.write_text('name,phone\n王芳,13800139001\n"unterminated,1\n' + "x" * 200_000 + "\n", encoding="utf-8")
    assert main(["import-members", str(path), "--config", config_path]) == 2
    err = capsys.readouterr().err
    assert "line" in err and "not CSV as exported" in err
    assert row_counts(app)["events"] == 0


def test_only_administrators_may_import(app, tmp_path):
    from central.auth import hash_password
    from central.models import User
    from tests.central.support import login

    with central_db.session_factory(app)() as db:
        db.add(
            User(
                username="bob",
                password_hash=hash_password("bob's password"),
                role="analyst",
                created_at=app.config["CLOCK"](),
            )
        )
        db.commit()
    client = app.test_client()
    assert login(client, "bob", "bob's password").status_code == 302
    response = client.post("/api/v1/imports/members", data="name,phone\n王芳,13800139001\n")
    assert (response.status_code, response.get_json()["error"]["code"]) == (403, "forbidden")
    assert client.get("/api/v1/imports/1/report.csv").status_code == 403
    assert row_counts(app)["events"] == 0


def test_an_unknown_import_has_no_report(app, user_client):
    assert user_client.get("/api/v1/imports/42/report.csv").status_code == 404


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_imports_page_counts_outcomes_from_an_index_not_the_rows(app):
    # The import page of a whole member base counts a million rows by outcome on each view.
    statement = totals_statement(1)
    with central_db.session_factory(app)() as db:
        compiled = statement.compile(db.get_bind(), compile_kwargs={"literal_binds": True})
        plan = " ".join(str(row[-1]) for row in db.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "COVERING INDEX ix_import_rows_import_id_outcome" in plan, plan


CONSENT_FILE = (
    "会员号,姓名,手机,生日,短信营销,个性化推荐,同意时间\n"
    "L1,王芳,13800139001,1990-03-05,是,同意,2024-03-01\n"
    "L2,李雷,13800139002,1988-07-01,否,,\n"
    "L3,韩梅,13800139003,1991-01-09,也许,Y,\n"
    "L4,小明,13800139004,2019-06-01,是,,2025-01-02\n"
)
CONSENT_SPECS = (
    *("会员号=external_id", "姓名=name", "手机=phone", "生日=birthday"),
    *("短信营销=consent:marketing:sms", "个性化推荐=consent:profiling", "同意时间=consent_at"),
)
CONSENT_MAPS = [arg for spec in CONSENT_SPECS for arg in ("--map", spec)]


def test_consent_columns_become_decisions_of_the_members_they_belong_to(app, config_path, tmp_path, capsys):
    path = tmp_path / "members.csv"
    path.write_text(CONSENT_FILE, encoding="utf-8")
    report = tmp_path / "r.csv"
    args = ["import-members", str(path), *CONSENT_MAPS, "--consent-notice", "2023-privacy", "--report", str(report)]
    assert main([*args, "--config", config_path]) == 0
    assert "consent decisions 5" in capsys.readouterr().out
    with central_db.session_factory(app)() as db:
        decided = db.execute(
            text(
                "SELECT e.external_id, d.purpose, d.channel, d.granted, d.observed_at, d.source, d.notice_version"
                " FROM consent_decisions d JOIN import_rows e ON e.event_pk = d.event_pk ORDER BY 1, 2"
            )
        ).all()
        customers = dict(db.execute(text("SELECT external_id, customer_id FROM import_rows")).all())
        today = date(2026, 11, 23)
        verdicts = {who: may_market(db, customers[who], "sms", today).reason for who in customers}
        profiled = {who: bool(may_profile(db, customers[who], today)) for who in customers}
    assert [(who, p, c, bool(g)) for who, p, c, g, *_ in decided] == [
        ("L1", "marketing", "sms", True),
        ("L1", "profiling", "all", True),
        ("L2", "marketing", "sms", False),
        ("L3", "profiling", "all", True),
        ("L4", "marketing", "sms", True),
    ]
    # Answered on the day the file says, else on the file's date.
    days = [at.astimezone(UTC).date().isoformat() if isinstance(at, datetime) else at[:10] for *_, at, _, _ in decided]
    assert days[0] == days[1] == "2024-03-01" and days[4] == "2025-01-02"
    assert days[2] == days[3] == datetime.fromtimestamp(path.stat().st_mtime, UTC).date().isoformat()
    assert {(source, notice) for *_, source, notice in decided} == {("import", "2023-privacy")}
    # A minor's own yes is not a guardian's: the gate still says no.
    assert verdicts == {"L1": "granted", "L2": "withdrawn", "L3": "no_consent", "L4": "minor_without_guardian_consent"}
    assert profiled == {"L1": True, "L2": False, "L3": True, "L4": False}
    assert "invalid_consent:marketing:sms" in report.read_text(encoding="utf-8").splitlines()[3]
    # A rerun of the finished import records nothing more.
    assert main([*args, "--config", config_path]) == 0
    with central_db.session_factory(app)() as db:
        assert db.execute(text("SELECT count(*) FROM consent_decisions")).scalar() == 5


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the mapping is read before any database work
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("consent:shopping", "unknown purpose 'shopping' (one of service, marketing, profiling, location)"),
        ("consent:marketing:fax", "unknown channel 'fax' (one of sms, wechat, app_push, email)"),
        ("consent:profiling:sms", "profiling is decided for the customer as a whole; write consent:profiling"),
    ],
)
def test_a_consent_column_mapped_to_what_is_not_a_purpose_and_channel_is_refused(
    app, config_path, tmp_path, capsys, spec, message
):
    path = tmp_path / "members.csv"
    path.write_text(CONSENT_FILE, encoding="utf-8")
    args = ["--map", "手机=phone", "--map", f"短信营销={spec}"]
    assert main(["import-members", str(path), *args, "--config", config_path]) == 2
    assert message in capsys.readouterr().err


def test_the_api_takes_consent_columns_and_the_notice_they_were_answered_under(app, user_client):
    query = "&".join(f"map={spec}" for spec in CONSENT_SPECS)
    long_notice = user_client.post(f"/api/v1/imports/members?{query}&consent_notice={'v' * 33}", data=CONSENT_FILE)
    assert long_notice.status_code == 400 and "at most 32 characters" in long_notice.get_json()["error"]["message"]
    answer = user_client.post(f"/api/v1/imports/members?{query}&consent_notice=2023-privacy", data=CONSENT_FILE)
    assert answer.status_code == 200, answer.get_json()
    with central_db.session_factory(app)() as db:
        rows = db.execute(text("SELECT source, notice_version, count(*) FROM consent_decisions GROUP BY 1, 2")).all()
    assert rows == [("import", "2023-privacy", 5)]
