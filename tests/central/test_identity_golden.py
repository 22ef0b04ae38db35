"""The golden record's survivorship and name comparison, and weak-evidence suggestions and merges."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from central.identity import golden, names
from central.identity.models import AttributeObservation, GoldenAttribute, ReviewItem
from central.identity.registry import default_registry
from central.identity.resolve import resolve
from central.identity.suggestions import score
from central.sources.legacy_formats import FormatError, parse_date
from tests.central.identity_support import engine_for, facts, live_customers
from tests.central.support import START

REGISTRY = replace(
    default_registry(), source_priority=("source:crm", "source:app"), verified_sources=frozenset({"source:crm"})
)


@pytest.fixture
def db(backend) -> Iterator[Session]:
    with engine_for(backend.url) as engine, Session(engine) as session:
        yield session


def say(db, ids, attributes, *, source="dev_test", at=START, **kwargs):
    made = facts(db, ids, attributes=attributes, source=source, at=at)
    result = resolve(db, made, START, registry=REGISTRY, **kwargs)
    db.commit()
    return result.customer_ids[0]


def record(db, customer):
    rows = db.execute(
        select(GoldenAttribute.attribute, GoldenAttribute.value, GoldenAttribute.source).where(
            GoldenAttribute.customer_id == customer
        )
    )
    return {a: (v, s) for a, v, s in rows}


def test_names_compare_across_width_case_spaces_and_script():
    assert names.name_key("張 三") == names.name_key("张三") == names.name_key("张·三")
    assert names.name_key("ＺＨＡＮＧ San") == names.name_key("zhang san") == "zhangsan"
    assert names.name_pinyin("张三") == names.name_pinyin("Zhang San") == "zhangsan"
    assert golden.clean("birthday", "1990/3/7", at=START) == "1990-03-07"
    assert golden.clean("birthday", "19900307", at=START) == "1990-03-07"
    assert golden.clean("birthday", "1990-02-30", at=START) is None
    assert golden.clean("gender", "女", at=START) == "female"


def test_invisible_format_characters_are_no_part_of_a_name_or_a_value():
    # A bidi override shows "evil" as "live"; zero-width characters and a BOM show nothing.
    assert names.name_key("\u202eevil\u202c") == "evil"
    assert names.name_key("张\u200b三") == names.name_key("\ufeff张三\u200d") == names.name_key("张三")
    assert names.name_initials("Li\u2060 Lei") == "ll"
    assert golden.clean("name", "\u202eevil\u202c", at=START) == "evil"
    assert golden.clean("name", "张\u200b三", at=START) == "张三"
    assert golden.clean("city", "上海\u200b", at=START) == "上海"
    for nothing in ("\u200b", " \u200b\u200c\u200d ", "\ufeff", "\u202e\u202c", "·"):
        assert golden.clean("name", nothing, at=START) is None, repr(nothing)


def test_people_behind_one_switchboard_are_not_joined_by_their_extensions(db):
    zhou = say(db, [("phone", "021-63456789 ext 801"), ("member_card", "C801")], {"name": "周一"})
    wu = say(db, [("phone", "021-63456789 ext 802"), ("member_card", "C802")], {"name": "吴二"})
    assert zhou != wu
    assert record(db, zhou)["name"][0] == "周一" and record(db, wu)["name"][0] == "吴二"


@pytest.mark.parametrize("raw", ["2099-01-01", "1800-01-01", "0001-01-01", "00010101", "1899-12-31", "2026-11-24"])
def test_an_implausible_birthday_never_becomes_the_golden_one(db, raw):
    customer = say(db, {"phone": "13912340101"}, {"name": "张三", "birthday": raw})  # said at START
    assert "birthday" not in record(db, customer)
    say(db, {"phone": "13912340101"}, {"birthday": "1990-03-07"})
    assert record(db, customer)["birthday"][0] == "1990-03-07"


def test_a_birthday_of_the_day_it_was_stated_is_plausible_wherever_that_day_has_begun():
    # START is 2026-11-23 02:00 UTC, 10:00 in Shanghai; 24 November has begun nowhere yet.
    assert golden.clean("birthday", "2026-11-23", at=START) == "2026-11-23"
    assert golden.clean("birthday", "2026-11-24", at=START) is None
    assert golden.clean("birthday", "1900-01-01", at=START) == "1900-01-01"
    assert golden.plausible_birthday(date(2026, 11, 24), START.replace(tzinfo=None) + timedelta(hours=10))
    assert not golden.plausible_birthday(date(2026, 11, 24), date(2026, 11, 23))


def test_a_birthday_stored_before_birthdays_were_checked_is_not_chosen(db):
    customer = say(db, {"phone": "13912340102"}, {"name": "张三", "birthday": "1990-03-07"})
    event = facts(db, {"phone": "13912340102"})[0].event_pk
    row = {"event_pk": event, "customer_id": customer, "attribute": "birthday", "source": "dev_test"}
    db.execute(insert(AttributeObservation).values(**row, value="2099-01-01", verified=True, observed_at=START))
    db.commit()
    say(db, {"phone": "13912340102"}, {"city": "上海"})
    assert record(db, customer)["birthday"][0] == "1990-03-07"


@pytest.mark.parametrize(
    ("day", "plausible"),
    [
        (date(1, 1, 1), False),
        (date(1899, 12, 31), False),
        (date(1900, 1, 1), True),
        (date(2026, 11, 30), True),
        (date(2026, 12, 1), False),
        (date(2099, 1, 1), False),
    ],
)
def test_the_golden_record_and_the_legacy_import_agree_on_plausible_birthdays(day, plausible):
    today = date(2026, 11, 30)
    assert golden.plausible_birthday(day, today) is plausible
    if plausible:
        assert parse_date(day.isoformat(), today=today) == day
    else:
        with pytest.raises(FormatError, match="implausible_date"):
            parse_date(day.isoformat(), today=today)


def test_the_blocking_initial_is_the_first_letter_of_the_whole_name_in_pinyin():
    # 曾 (ceng/zeng), 单 (dan/shan), 朴 (piao/pu) read as surnames; the others need no context.
    samples = ["张三", "曾小红", "曾经", "单田芳", "朴树", "長城", "Zhang San", "ＺＨＡＮＧ", "〇一", "·", "1号", "é李"]
    for name in samples:
        assert names.name_initial(name) == names.name_pinyin(name)[:1], name
    # A name starts with its surname: 曾 reads zeng there, as in Zeng Gang, not ceng as in the word 曾经.
    assert golden.match_block({"name": "曾经", "birthday": "1990-03-07"}) == "1990-03-07|z"
    assert golden.match_block({"name": "曾刚", "birthday": "1990-03-07"}) == golden.match_block(
        {"name": "Zeng Gang", "birthday": "1990-03-07"}
    )


def test_the_blocking_initial_agrees_with_the_whole_name_for_phrases_led_by_a_polyphonic_character():
    """Every 40th phrase of pypinyin's dictionary whose first character starts readings with different
    letters, alone, as a name's start and cut short: the first word alone decides the letter."""
    from pypinyin.constants import PHRASES_DICT

    phrases = sorted(p for p in PHRASES_DICT if len(names._first_letters(p[0])) > 1)[::40]
    assert len(phrases) > 300
    for phrase in phrases:
        for name in (phrase, f"{phrase}小红", f"{phrase[0]}小红", f"{phrase[:2]}芳", f"{phrase} Li"):
            assert names.name_initial(name) == names.name_pinyin(name)[:1], name


def test_the_most_frequent_value_survives_and_keeps_the_form_last_sent(db):
    ids = {"member_id": "G1"}
    customer = say(db, ids, {"name": "張三", "city": "上海"}, at=START)
    say(db, ids, {"name": "李四"}, at=START + timedelta(days=1))
    say(db, ids, {"name": "张三"}, at=START + timedelta(days=2))
    assert record(db, customer)["name"] == ("张三", "dev_test")
    assert record(db, customer)["city"] == ("上海", "dev_test")


def test_a_verified_source_beats_frequency_and_the_stored_values_stay(db):
    ids = {"member_id": "G2"}
    customer = say(db, ids, {"name": "王五"}, source="source:crm", at=START)
    for day in (1, 2, 3):
        say(db, ids, {"name": "王老五"}, source="source:app", at=START + timedelta(days=day))
    assert record(db, customer)["name"] == ("王五", "source:crm")


def test_source_priority_breaks_a_tie(db):
    ids = {"member_id": "G3"}
    customer = say(db, ids, {"city": "北京"}, source="source:app", at=START + timedelta(days=1))
    say(db, ids, {"city": "杭州"}, source="dev_pos", at=START + timedelta(days=2))
    assert record(db, customer)["city"] == ("北京", "source:app")


def test_the_preferred_store_counts_receipts_when_nobody_says_otherwise(app, client, agent):
    from central import db as central_db

    agent.send(client, [agent.receipt(f"R{i}", phone="13912341234") for i in range(3)])
    with central_db.session_factory(app)() as db:
        (customer,) = live_customers(db)
        golden.refresh(db, REGISTRY, [customer], START)
        db.commit()
        assert record(db, customer)["preferred_store"] == ("S001", "receipts")


def test_weak_scores():
    a = {"name": "张三", "birthday": "1990-03-07", "city": "上海"}
    assert score(a, {**a, "name": "張三"}) == (pytest.approx(0.98), "name_birthday_city")
    assert score(a, {"name": "Zhang San", "birthday": "1990-03-07"}) == (pytest.approx(0.85), "pinyin_birthday")
    assert score(a, {**a, "birthday": "1990-03-08"}) == (0.0, "")
    assert score(a, {**a, "city": "北京"})[0] == pytest.approx(0.70)
    fuzzy, rule = score({"name": "欧阳娜娜", "birthday": "2000-02-01"}, {"name": "欧阳娜", "birthday": "2000-02-01"})
    assert rule == "fuzzy_name_birthday" and 0.7 < fuzzy < 0.85
    assert score({**a, "birthday": "1970-01-01"}, {**a, "birthday": "1970-01-01"}) == (0.0, "")  # a placeholder


def test_name_and_birthday_make_a_suggestion_not_a_merge(db):
    first = say(db, {"phone": "13912340001"}, {"name": "张三", "birthday": "1990-03-07", "city": "上海"})
    second = say(db, {"email": "zs@example.com"}, {"name": "張三", "birthday": "1990/3/7", "city": "上海"})
    assert first != second
    (item,) = db.scalars(select(ReviewItem)).all()
    assert (item.reason, item.customer_id, item.other_customer_id) == ("weak_match", first, second)
    assert item.score == pytest.approx(0.98)
    assert item.evidence["match"] == "name_birthday_city"


def test_an_import_may_merge_on_weak_evidence_above_its_threshold(db):
    first = say(db, {"phone": "13912340002"}, {"name": "李四", "birthday": "1985-12-01", "city": "杭州"})
    second = say(
        db,
        {"email": "ls@example.com"},
        {"name": "李四", "birthday": "1985-12-01", "city": "杭州"},
        allow_weak_merge=0.95,
    )
    assert second == first
    assert live_customers(db) == [first]
    weak = say(db, {"email": "ls2@example.com"}, {"name": "Li Si", "birthday": "1985-12-01"}, allow_weak_merge=0.95)
    assert weak != first
    assert [r.reason for r in db.scalars(select(ReviewItem))] == ["weak_match"]


def _all_golden(db):
    rows = db.execute(
        select(GoldenAttribute.customer_id, GoldenAttribute.attribute, GoldenAttribute.value, GoldenAttribute.source)
    )
    return sorted(tuple(r) for r in rows)


def test_a_batch_s_new_customers_get_the_record_a_refresh_from_the_stored_observations_gives(db):
    # Customers created by the batch are not read back; a later full refresh must find the same record.
    made = facts(db, {"member_id": "N1"}, {"member_id": "N1", "phone": "13812345671"}, {"member_id": "N2"})
    made += facts(db, {"phone": "13812345671", "member_card": "CARD7001"}, at=START + timedelta(days=1))
    named = [{"name": "張三", "city": "上海"}, {"name": "张三"}, {"name": "李四", "birthday": "1990-03-07"}]
    named.append({"name": "王五", "city": "杭州"})
    sources = ["source:app", "dev_test"] * 2
    made = [replace(f, attributes=a, source=s) for f, a, s in zip(made, named, sources, strict=True)]
    resolve(db, made, START, registry=REGISTRY)
    db.commit()
    written = _all_golden(db)
    assert {c for c, *_ in written} == set(live_customers(db)) and len(live_customers(db)) == 2
    golden.refresh(db, REGISTRY, live_customers(db), START)
    db.commit()
    assert _all_golden(db) == written
