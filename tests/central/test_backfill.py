"""load-events: historical events through the online sources' path, idempotent and resumable."""

from __future__ import annotations

import gc
import json

import pytest

from central import db as central_db
from central.cli import main
from central.sources.backfill import MAX_LINE_BYTES, load_events
from tests.central.cli_runner import write_config
from tests.central.sources_support import default_registry, new_key, post_events, stored_events, survivor
from tests.central.support import collector_passes, row_counts


def line(event_id, kind="member.signup", **fields):
    doc = {"event_id": event_id, "observed_at": "2019-05-01T08:00:00+08:00", "store_id": "S003", "kind": kind}
    doc.update(fields)
    return json.dumps(doc, ensure_ascii=False)


def history_file(path):
    lines = [
        line("crm-1", identifiers={"phone": "13800139001", "member_card": "VIP1"}, name="王芳", birthday="1990-03-05"),
        line(
            "crm-2", "pos.receipt", payload={"receipt_no": "R2", "total": "12.00"}, identifiers={"member_card": "vip1"}
        ),
        "",
        "{not json",
        line("crm-3", kind="member.teleport"),
        line("crm-4", identifiers={"phone": "13800139004"}, store_id=""),
        line("crm-1", identifiers={"phone": "13800139999"}),
        json.dumps({"event_id": "crm-5", "kind": "member.login"}),
        line("crm-6", identifiers={"app_user_id": "u6"}, app_id="memberapp", payload={"channel": "app"}),
    ]
    path.write_bytes(
        "\n".join(lines).encode()
        + b"\n\xff\xfe\n"
        + line(
            "crm-7",
            "consent.given",
            payload={"purpose": "marketing", "notice_version": "2026-01"},
            identifiers={"phone": "13800139001"},
        ).encode()
    )
    return path


@pytest.fixture
def config_path(app):
    config = app.config["CENTRAL"]
    return str(
        write_config(config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url)
    )


def test_load_reports_every_line_and_a_rerun_changes_nothing(app, config_path, tmp_path, capsys):
    path = history_file(tmp_path / "history.jsonl")
    # Some lines were rejected: the rest is loaded, and the status says the file was not taken whole.
    assert main(["load-events", str(path), "--source", "crm", "--config", config_path, "--chunk-size", "2"]) == 1
    out, err = capsys.readouterr()
    assert (
        err.splitlines()[-1]
        == f"central-server: 5 of the 11 lines of {path} were rejected (above); the others are loaded"
    )
    assert f"{path}:4: rejected: invalid_json" in err
    assert f"{path}:5: rejected (event crm-3): unknown_kind" in err
    # crm-1 again with another phone, in a later chunk: a collision of ids, not a retry.
    assert f"{path}:7: rejected (event crm-1): event_id_conflict" in err
    assert f"{path}:8: rejected (event crm-5): invalid_observed_at" in err
    assert f"{path}:10: rejected: invalid_utf8" in err
    assert "  lines read           11" in out
    assert "  accepted             5" in out
    assert "  duplicate            0" in out
    assert "  rejected             5" in out
    assert "    invalid_json               1" in out
    rows = stored_events(app)
    assert [(r.device_id, r.event_id) for r in rows] == [
        ("source:crm", "crm-1"),
        ("source:crm", "crm-2"),
        ("source:crm", "crm-4"),
        ("source:crm", "crm-6"),
        ("source:crm", "crm-7"),
    ]
    assert rows[0].attributes == {"name": "王芳", "birthday": "1990-03-05"}
    assert rows[0].identifiers == {"phone": "13800139001", "member_card": "VIP1"}  # the first copy of crm-1
    assert survivor(app, rows[0].customer_id) == survivor(app, rows[1].customer_id) is not None
    assert rows[3].customer_id is not None
    assert survivor(app, rows[4].customer_id) == survivor(app, rows[0].customer_id)  # the consent is 王芳's

    before = row_counts(app)
    assert main(["load-events", str(path), "--source", "crm", "--config", config_path]) == 1
    out, _ = capsys.readouterr()
    assert "  accepted             0" in out and "  duplicate            5" in out and "  rejected             5" in out
    after = row_counts(app)
    assert {k: v for k, v in after.items() if k != "audit_log"} == {k: v for k, v in before.items() if k != "audit_log"}


def test_the_summary_says_what_the_api_would_warn_about_and_counts_blank_lines(app, config_path, tmp_path, capsys):
    """The API warns of an identifier it leaves out (12345, a test number); load-events said nothing, and its
    blank lines were in "lines read" but in no other count."""
    path = tmp_path / "h.jsonl"
    lines = [
        line("w-1", identifiers={"phone": "12345", "member_id": "M1"}),
        "",
        line("w-2", identifiers={"phone": "13800138000", "member_id": "M2"}),
        line("w-3", identifiers={"phone": "13800139003"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reply = post_events(
        app.test_client(), new_key(app, "api"), [json.loads(x) for x in lines if x], source="api"
    ).get_json()
    warned = sorted(w["reason"] for w in reply["warnings"])
    assert main(["load-events", str(path), "--source", "crm", "--config", config_path]) == 0
    out = capsys.readouterr().out
    assert "  lines read           4" in out and "  blank lines          1" in out and "  accepted             3" in out
    assert f"  loaded with warnings {len(warned)}" in out and len(warned) == 2
    for reason in warned:
        assert f"    {reason}" in out


def test_the_exit_status_says_whether_every_line_was_taken(app, config_path, tmp_path, capsys):
    """A cron backfill whose every line was rejected exited 0 like a clean one."""
    good = tmp_path / "good.jsonl"
    good.write_text(line("crm-1", identifiers={"phone": "13800139001"}) + "\n", encoding="utf-8")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n" + line("crm-2", kind="member.teleport") + "\n", encoding="utf-8")
    assert main(["load-events", str(good), "--source", "crm", "--config", config_path]) == 0
    assert main(["load-events", str(good), "--source", "crm", "--config", config_path]) == 0  # duplicates are fine
    capsys.readouterr()
    assert main(["load-events", str(bad), "--source", "crm", "--config", config_path]) == 1
    out, err = capsys.readouterr()
    assert "  rejected             2" in out
    assert (
        err.splitlines()[-1] == f"central-server: 2 of the 2 lines of {bad} were rejected (above); nothing was loaded"
    )
    assert main(["load-events", str(tmp_path / "missing.jsonl"), "--source", "crm", "--config", config_path]) == 2
    with pytest.raises(SystemExit) as done:
        main(["load-events", "--help"])
    assert done.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Exit status 0 when every line was loaded or was already there, 1 when any line was rejected" in help_text


def test_a_backfilled_event_is_a_duplicate_for_the_online_endpoint(app, client, config_path, tmp_path, capsys):
    path = tmp_path / "h.jsonl"
    path.write_text(line("crm-1", identifiers={"phone": "13800139001"}) + "\n")
    assert main(["load-events", str(path), "--source", "crm", "--config", config_path]) == 0
    reply = post_events(
        client, new_key(app, "crm"), [json.loads(line("crm-1", identifiers={"phone": "13800139001"}))], source="crm"
    ).get_json()
    assert reply == {"accepted": [], "duplicate": ["crm-1"], "rejected": []}


def test_an_over_long_line_is_skipped_and_the_next_one_loads(app, tmp_path):
    path = tmp_path / "long.jsonl"
    long_line = line("big", payload={"blob": "x" * (MAX_LINE_BYTES + 10)})
    path.write_text(long_line + "\n" + line("small", identifiers={"member_id": "M1"}) + "\n")
    bad = []
    with central_db.session_factory(app)() as db:
        summary = load_events(
            db, path, "crm", registry=default_registry(), clock=app.config["CLOCK"], on_bad_line=bad.append
        )
    assert [(b.line, b.reason) for b in bad] == [(1, "line_too_long")]
    assert (summary.lines, summary.accepted) == (2, 1)
    assert [r.event_id for r in stored_events(app)] == ["small"]


def test_a_file_saved_with_a_byte_order_mark_loads_its_first_line(app, tmp_path):
    """Notepad and Excel on Windows save UTF-8 with a byte order mark; it is not part of the first event."""
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (line("first") + "\n" + line("second") + "\n").encode())
    bad = []
    with central_db.session_factory(app)() as db:
        summary = load_events(
            db, path, "crm", registry=default_registry(), clock=app.config["CLOCK"], on_bad_line=bad.append
        )
    assert bad == [] and summary.accepted == 2
    assert [r.event_id for r in stored_events(app)] == ["first", "second"]


class Stop(Exception):
    pass


def test_a_load_stopped_midway_and_run_again_equals_one_clean_run(make_app, tmp_path):
    path = tmp_path / "many.jsonl"
    lines = []
    for n in range(60):
        ids = {"phone": f"1380013{9000 + n % 25:04d}"}
        if n % 7 == 0:
            ids["member_card"] = f"VIP{n % 5}"
        lines.append(line(f"e{n}", identifiers=ids))
    path.write_text("\n".join(lines) + "\n")

    def partition(app):
        groups = {}
        for r in stored_events(app):
            groups.setdefault(survivor(app, r.customer_id), []).append(r.event_id)
        return sorted(sorted(g) for g in groups.values())

    # The reference: one clean run into a scratch SQLite database.
    from central.migrate import upgrade

    upgrade(f"sqlite:///{tmp_path}/clean.db")
    clean = make_app(server__data_dir=str(tmp_path / "clean"), database__url=f"sqlite:///{tmp_path}/clean.db")
    with central_db.session_factory(clean)() as db:
        load_events(db, path, "crm", registry=default_registry(), clock=clean.config["CLOCK"], chunk_size=8)
    expected = partition(clean)

    # The database under test: stopped after three chunks, then run again.
    interrupted = make_app()
    chunks = []

    def stop_after_three(summary):
        chunks.append(summary.accepted)
        if len(chunks) == 3:
            raise Stop

    with central_db.session_factory(interrupted)() as db, pytest.raises(Stop):
        load_events(
            db,
            path,
            "crm",
            registry=default_registry(),
            clock=interrupted.config["CLOCK"],
            chunk_size=8,
            on_chunk=stop_after_three,
        )
    assert len(stored_events(interrupted)) == 24
    with central_db.session_factory(interrupted)() as db:
        summary = load_events(
            db, path, "crm", registry=default_registry(), clock=interrupted.config["CLOCK"], chunk_size=8
        )
    assert (summary.accepted, summary.duplicate) == (36, 24)
    assert partition(interrupted) == expected


def test_a_chunk_is_read_and_stored_without_cycle_collections(app, tmp_path):
    """From a chunk's first line read to its commit the cycle collector waits (central.collector): the
    chunk's objects are short-lived and its passes would walk every long-lived object of the process.
    It runs between chunks, and is on once the load is done."""
    path = tmp_path / "receipts.jsonl"
    path.write_text(
        "\n".join(
            line(
                f"r{n}",
                "pos.receipt",
                payload={"receipt_no": f"R{n}", "total": "9.90", "items": [{"sku": f"69{n:011d}", "qty": 1}]},
                identifiers={"phone": f"1380013{n:04d}"},
            )
            for n in range(1200)
        )
        + "\n"
    )
    chunks: list[int] = []
    with collector_passes() as passes, central_db.session_factory(app)() as db:
        summary = load_events(
            db,
            path,
            "crm",
            registry=default_registry(),
            clock=app.config["CLOCK"],
            chunk_size=400,
            on_chunk=lambda s: chunks.append(len(passes)),
        )
    assert summary.accepted == 1200 and gc.isenabled()
    # Each chunk (three, and the empty last call) ends with the passes so far: none within a chunk,
    # at most the one its first allocation after the previous chunk sets off.
    assert chunks == sorted(chunks) and chunks[-1] <= len(chunks), (chunks, passes)


def test_a_line_dated_after_the_load_is_rejected_and_the_rest_loads(app, config_path, tmp_path, capsys):
    path = tmp_path / "history.jsonl"
    future = line("crm-9", identifiers={"phone": "13800139009"}, observed_at="2099-01-01T08:00:00+08:00")
    path.write_text(f"{line('crm-8', identifiers={'phone': '13800139008'})}\n{future}\n", encoding="utf-8")
    assert main(["load-events", str(path), "--source", "crm", "--config", config_path]) == 1
    assert f"{path}:2: rejected (event crm-9): observed_at_in_future" in capsys.readouterr().err
    assert [r.event_id for r in stored_events(app)] == ["crm-8"]


def test_a_sale_amount_finer_than_a_fen_is_refused_with_its_field(app, config_path, tmp_path, capsys):
    """10.005 was accepted, then stored as 10.01 and shown as 10.00 (decision 0102)."""
    path = tmp_path / "fen.jsonl"
    lines = [
        line("f-1", "pos.receipt", payload={"receipt_no": "R1", "total": "10.005"}),
        line(
            "f-2",
            "pos.receipt",
            payload={"receipt_no": "R2", "total": "10.00", "tenders": [{"method": "cash", "amount": "10.001"}]},
        ),
        line("f-3", "pos.receipt", payload={"receipt_no": "R3", "total": "10.500"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["load-events", str(path), "--source", "crm", "--config", config_path]) == 1
    err = capsys.readouterr().err
    assert f"{path}:1: rejected (event f-1): invalid_payload:total" in err
    assert f"{path}:2: rejected (event f-2): invalid_payload:tenders.amount" in err
    assert [r.event_id for r in stored_events(app)] == ["f-3"]
