"""Weak-match suggestions stay few and worth reading when member data is dense or full of defaults.

Loaded through ``load-events`` as an IT team loads a CRM export: sign-ups with a name and a birthday.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from central import db as central_db
from central.cli import main
from central.identity.models import GoldenAttribute, ReviewItem
from tests.central.cli_runner import write_config


def signup(event_id: str, phone: str, name: str, birthday: str, **fields: str) -> str:
    doc = {
        "event_id": event_id,
        "observed_at": "2019-05-01T08:00:00+08:00",
        "store_id": "S003",
        "kind": "member.signup",
        "identifiers": {"phone": phone},
        "name": name,
        "birthday": birthday,
        **fields,
    }
    return json.dumps(doc, ensure_ascii=False)


@pytest.fixture
def config_path(app):
    config = app.config["CENTRAL"]
    return str(
        write_config(config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url)
    )


def load(config_path, tmp_path, name, lines, *extra):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["load-events", str(path), "--source", "crm", "--config", config_path, *extra]) == 0


def weak_matches(app):
    with central_db.session_factory(app)() as db:
        rows = db.execute(
            select(ReviewItem.customer_id, ReviewItem.other_customer_id, ReviewItem.score).where(
                ReviewItem.reason == "weak_match"
            )
        )
        return sorted(tuple(r) for r in rows)


def test_two_hundred_sign_ups_sharing_a_name_and_birthday_send_few_to_review(
    app, user_client, config_path, tmp_path, capsys
):
    lines = [signup(f"s{i}", f"1391234{i:04d}", "张伟", "1990-03-07") for i in range(200)]
    load(config_path, tmp_path, "signups.jsonl", lines, "--chunk-size", "10")
    out, _ = capsys.readouterr()
    items = weak_matches(app)
    # Every pair was 19,900 items. The block stops pairing once it is too common, each customer
    # is offered at most a few others, and the summary says why the rest were not sent.
    assert 0 < len(items) <= 30 * 3
    assert len(items) == len(set((a, b) for a, b, _ in items))
    assert f"  sent to review       {len(items)}" in out
    assert "  blocks too common    1 (not paired: 1990-03-07|z, 200 customers)" in out
    health = user_client.get("/api/v1/identity/health").get_json()
    assert health["match_blocks"] == {
        "limit": 30,
        "too_common": 1,
        "largest": [{"block": "1990-03-07|z", "customers": 200}],
    }


def test_a_placeholder_birthday_is_no_evidence_and_a_real_one_still_is(app, config_path, tmp_path, capsys):
    lines = [
        signup("p1", "13912340001", "赵敏", "1970-01-01", city="上海"),
        signup("p2", "13912340002", "赵敏", "1970-01-01", city="上海"),
        signup("p3", "13912340003", "周杰", "1900-01-01"),
        signup("p4", "13912340004", "周杰", "1900/1/1"),
        signup("g1", "13912340005", "张三", "1988-06-15", city="上海"),
        signup("g2", "13912340006", "張三", "1988-06-15", city="上海"),
    ]
    load(config_path, tmp_path, "members.jsonl", lines)
    items = weak_matches(app)
    assert len(items) == 1 and items[0][2] == pytest.approx(0.98)
    with central_db.session_factory(app)() as db:
        kept = db.scalars(select(GoldenAttribute.value).where(GoldenAttribute.attribute == "birthday")).all()
    assert sorted(kept) == ["1900-01-01"] * 2 + ["1970-01-01"] * 2 + ["1988-06-15"] * 2  # kept, not used


def test_the_placeholder_list_comes_from_the_registry(app, config_path, tmp_path):
    registry = tmp_path / "registry.toml"
    registry.write_text('[matching]\nplaceholder_birthdays = ["--11-11"]\n', encoding="utf-8")
    with open(config_path, "a", encoding="utf-8") as out:
        out.write(f'[identity]\nregistry_file = "{registry}"\n')
    lines = [
        signup("a1", "13912340011", "周杰", "1985-11-11"),
        signup("a2", "13912340012", "周杰", "1985-11-11"),
        signup("b1", "13912340013", "赵敏", "1970-01-01"),
        signup("b2", "13912340014", "赵敏", "1970-01-01"),
    ]
    load(config_path, tmp_path, "members.jsonl", lines)
    # The file's list replaces the defaults: every 11 November is unknown, and 1970-01-01 is evidence again.
    ((_, _, score),) = weak_matches(app)
    assert score == pytest.approx(0.90)


def test_a_new_customer_is_offered_only_its_best_few_matches(app, config_path, tmp_path, capsys):
    near = [signup(f"n{i}", f"1391235{i:04d}", "王芳", "1992-08-20", city="杭州") for i in range(3)]
    far = [signup(f"f{i}", f"1391236{i:04d}", "王芳", "1992-08-20", city="北京") for i in range(5)]
    for number, line in enumerate(near + far):  # one at a time: each offered its best earlier ones
        load(config_path, tmp_path, f"m{number}.jsonl", [line])
    before = weak_matches(app)
    capsys.readouterr()
    load(config_path, tmp_path, "new.jsonl", [signup("x", "13912370000", "王芳", "1992-08-20", city="杭州")])
    out, _ = capsys.readouterr()
    added = sorted(set(weak_matches(app)) - set(before))
    assert [score for *_, score in added] == [pytest.approx(0.98)] * 3  # the three from 杭州, not 北京
    assert "  sent to review       3" in out


def test_a_pair_already_in_the_queue_is_not_sent_again(app, config_path, tmp_path, capsys):
    load(
        config_path,
        tmp_path,
        "first.jsonl",
        [signup("q1", "13912340021", "李四", "1985-12-01"), signup("q2", "13912340022", "李四", "1985-12-01")],
    )
    out, _ = capsys.readouterr()
    assert "  sent to review       1" in out
    load(config_path, tmp_path, "again.jsonl", [signup("q3", "13912340022", "李四", "1985-12-01", city="杭州")])
    out, _ = capsys.readouterr()
    assert len(weak_matches(app)) == 1
    assert "  sent to review       0" in out
