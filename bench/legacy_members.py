"""A legacy member export with known answers: duplicates, format variants, shared phones, bad rows.

``write_file(path, rows)`` writes a CSV as an old member system exports it (Chinese headers, phones
and dates in mixed forms, extra columns) and returns the expected outcome of every row under
``central-server import-members`` with :data:`MAPS`. The expectation is computed from the file's
own ground truth (which person each row is), by rules stated here independently of the importer:
a person's first row creates a customer, later rows of the same person join it; a phone given for
people of different names links nobody; a row with no usable identifier is rejected. People of the
same birthday have surnames of different initials, so that none is a weak match of another.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

from pypinyin import Style, pinyin

from central.identity.registry import default_registry

HEADER = [
    "会员编号",
    "姓名",
    "性别",
    "出生日期",
    "手机号码",
    "会员卡号",
    "电子邮箱",
    "省份",
    "城市",
    "邮编",
    "地址",
    "注册门店",
    "积分",
    "备注",
]
MAPS = (
    "会员编号=external_id",
    "姓名=name",
    "性别=gender",
    "出生日期=birthday",
    "手机号码=phone",
    "会员卡号=member_card",
    "电子邮箱=email",
    "省份=province",
    "城市=city",
    "邮编=postcode",
    "地址=address",
)
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红娥玲芬燕彬鹏辉斌宇浩凯健俊帆"
    "帅旭宁龙林欣雪琳晨阳佳怡子涵梓萱一诺雨桐思远博文浩然欣妍语嫣宏志建国海波春梅晓东小红"
)
CITIES = [
    ("上海", "上海", "200000"),
    ("北京", "北京", "100000"),
    ("广东", "广州", "510000"),
    ("广东", "深圳", "518000"),
    ("浙江", "杭州", "310000"),
    ("江苏", "南京", "210000"),
    ("四川", "成都", "610000"),
    ("湖北", "武汉", "430000"),
]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
TEST_NUMBER = "13800138000"


@dataclass
class Person:
    """One real member behind one or more rows."""

    number: int
    name: str
    phone: str | None
    card: str | None
    email: str | None
    gender: str
    birthday: tuple[int, int, int]
    city: tuple[str, str, str]


@dataclass
class Expected:
    """What the report should say about one row."""

    row: int
    external_id: str
    person: int | None  # the row whose customer this row should have (its component's first row)
    outcome: str
    reason: str = ""
    notes: set[str] = field(default_factory=set)


def _phone_forms(phone: str, rng: random.Random) -> str:
    forms = [
        phone,
        f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}",
        f"86-{phone}",
        f"{phone[:3]}-{phone[3:7]}-{phone[7:]}",
        f"(+86){phone}",
        phone.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        f"{phone}.0",
        f"0086 {phone}",
    ]
    return rng.choice(forms)


def _date_forms(y: int, m: int, d: int, rng: random.Random) -> str:
    forms = [
        f"{y}/{m}/{d}",
        f"{y}-{m:02d}-{d:02d}",
        f"{y}{m:02d}{d:02d}",
        f"{y}年{m}月{d}日",
        f"{d}-{MONTHS[m - 1]}-{y}",
        f"{y}-{m:02d}-{d:02d} 00:00:00",
    ]
    return rng.choice(forms)


class _Names:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()
        self.born: set[tuple[tuple[int, int, int], str]] = set()

    def birthday(self, name: str) -> tuple[int, int, int]:
        """A birthday no earlier person shares with a surname that may start with the same letter in pinyin.

        Weak-evidence matching compares only such people (the same birthday and initial), so no
        person's rows look like another's; past a few hundred draws (files far beyond 100,000 rows)
        the last one is kept, and such a pair may come out as a suggestion.
        """
        initials = {reading[:1] for reading in pinyin(name[0], style=Style.NORMAL, heteronym=True)[0]}
        for _ in range(500):
            born = (self.rng.randint(1950, 2005), self.rng.randint(1, 12), self.rng.randint(1, 28))
            if not any((born, letter) in self.born for letter in initials):
                break
        self.born.update((born, letter) for letter in initials)
        return born

    def new(self) -> str:
        while True:
            given = "".join(self.rng.choice(GIVEN) for _ in range(self.rng.choice((1, 2, 2))))
            name = self.rng.choice(SURNAMES) + given
            if name not in self.used:
                self.used.add(name)
                return name


_MOBILE_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "158", "186", "189")
_REGISTRY = default_registry()


def _person(number: int, rng: random.Random, names: _Names, phones: set[str]) -> Person:
    phone = None
    if rng.random() < 0.93:
        while True:
            phone = f"{rng.choice(_MOBILE_PREFIXES)}{rng.randrange(10**8):08d}"
            # Only numbers the identifier registry accepts: assigned mainland ranges, no blocked shapes.
            if phone not in phones and _REGISTRY.normalize("phone", phone) is not None:
                phones.add(phone)
                break
    card = f"VIP{number:08d}" if rng.random() < 0.6 or phone is None else None
    email = f"m{number}@example.cn" if rng.random() < 0.25 else None
    name = names.new()
    return Person(number, name, phone, card, email, rng.choice("男女"), names.birthday(name), rng.choice(CITIES))


def write_file(path: Path, rows: int, seed: int = 7, encoding: str = "utf-8") -> list[Expected]:
    """Write ``rows`` data rows to ``path``; return the expected report, row by row."""
    rng = random.Random(seed)
    names = _Names(rng)
    phones: set[str] = set()
    people: list[Person] = []
    first_ids: dict[int, dict[str, str]] = {}  # person -> the identifiers their first row gave
    repeatable: list[int] = []  # people with a first row that named someone
    records: list[list[str]] = []
    truth: list[_Truth] = []
    for n in range(1, rows + 1):
        external = f"L{n:07d}"
        roll = rng.random()
        if roll < 0.004:
            records.append([""] * len(HEADER))
            truth.append(_Truth(None, "empty_row"))
            continue
        if roll < 0.008:
            record = [external, names.new(), "男", "1990-01-01", "13900000000", *[""] * (len(HEADER) - 5), "x"]
            records.append(record)
            truth.append(_Truth(None, f"malformed_row:{len(HEADER) + 1}_fields_for_{len(HEADER)}_columns"))
            continue
        notes: set[str] = set()
        bad_phone = ""
        if roll < 0.10 and repeatable:
            person = people[rng.choice(repeatable) - 1]
            given = first_ids[person.number]
            ids = {k: given[k] for k in rng.sample(sorted(given), rng.randint(1, len(given)))}
            if "phone" in ids and rng.random() < 0.03:
                bad_phone = rng.choice((TEST_NUMBER, "12345", "000"))
                del ids["phone"]
        else:
            person = _person(len(people) + 1, rng, names, phones)
            people.append(person)
            ids = {k: v for k, v in (("phone", person.phone), ("card", person.card), ("email", person.email)) if v}
            if "phone" in ids and roll > 0.99 and len(people) > 1:
                ids["phone"] = rng.choice([p.phone for p in people[-50:-1] if p.phone] or [ids["phone"]])
            elif "phone" in ids and roll > 0.98:
                bad_phone = rng.choice((TEST_NUMBER, "12345", "000"))
                del ids["phone"]
            if ids:
                first_ids[person.number] = dict(ids)
                repeatable.append(person.number)
        if bad_phone:
            notes.add("unusable:phone")
        y, m, d = person.birthday
        birthday = _date_forms(y, m, d, rng)
        if rng.random() < 0.01:
            birthday = f"{y}-02-30"
            notes.add("invalid_date:birthday")
        name = person.name if rng.random() < 0.8 else " ".join(person.name)
        card = ids.get("card", "")
        email = ids.get("email", "")
        province, city, postcode = person.city
        records.append(
            [
                external,
                name,
                person.gender,
                birthday,
                bad_phone or (_phone_forms(ids["phone"], rng) if "phone" in ids else ""),
                card.lower() if rng.random() < 0.2 else card,
                email.upper() if rng.random() < 0.1 else email,
                province,
                city,
                postcode,
                f"{city}市某区{rng.randint(1, 999)}号",
                f"S{rng.randint(1, 10):03d}",
                str(rng.randint(0, 9999)),
                rng.choice(("", "", "老会员", "VIP")),
            ]
        )
        truth.append(_Truth(person.number, "", notes, ids, person.name))
    with path.open("w", encoding=encoding, newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(HEADER)
        writer.writerows(records)
    return _expect(records, truth)


@dataclass
class _Truth:
    person: int | None
    bad: str = ""
    notes: set[str] = field(default_factory=set)
    ids: dict[str, str] = field(default_factory=dict)
    name: str = ""


def _expect(records: list[list[str]], truth: list[_Truth]) -> list[Expected]:
    """The expected report: the phone + name rule over the file, then first rows new, later rows merged."""
    names_by_phone: dict[str, set[str]] = {}
    for t in truth:
        if "phone" in t.ids:
            names_by_phone.setdefault(t.ids["phone"], set()).add(t.name)
    shared = {phone for phone, names in names_by_phone.items() if len(names) > 1}
    owner: dict[tuple[str, str], int] = {}  # identifier -> the row that first gave it
    expected = []
    for n, (record, t) in enumerate(zip(records, truth, strict=True), start=1):
        external = record[0]
        if t.bad:
            expected.append(Expected(n, external, None, "rejected", t.bad))
            continue
        notes = set(t.notes)
        usable = {(k, v.lower()) for k, v in t.ids.items() if not (k == "phone" and v in shared)}
        if len(usable) < len(t.ids):
            notes.add("phone_shared_by_other_names")
        if not t.ids:
            expected.append(Expected(n, external, None, "rejected", "no_identifier", notes))
            continue
        if not usable:
            notes.discard("phone_shared_by_other_names")
            expected.append(Expected(n, external, None, "conflict", "phone_shared_by_other_names", notes))
            continue
        known = {owner[k] for k in usable if k in owner}
        assert len(known) <= 1, f"row {n} would join two customers; the generator makes no such rows"
        first = known.pop() if known else n
        for k in usable:
            owner.setdefault(k, first)
        expected.append(Expected(n, external, first, "merged" if first != n else "new", "", notes))
    return expected


def compare(report: Path, expected: list[Expected]) -> list[str]:
    """Differences between an import report and the expectation (empty when they agree exactly)."""
    problems: list[str] = []
    with report.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    if len(rows) != len(expected):
        return [f"the report has {len(rows)} rows, expected {len(expected)}"]
    customer_of_first: dict[int, str] = {}
    for got, want in zip(rows, expected, strict=True):
        reason = got["reason"]
        code, _, tail = reason.partition(" (")
        notes = set(filter(None, tail.rstrip(")").split(", "))) if tail else set()
        where = f"row {want.row}"
        if int(got["row"]) != want.row or got["会员编号"] != want.external_id:
            problems.append(f"{where}: row or id {got['row']}/{got['会员编号']}, expected {want.external_id}")
        if got["outcome"] != want.outcome:
            problems.append(f"{where}: {got['outcome']} ({reason}), expected {want.outcome} {want.reason}")
        elif want.outcome in ("rejected", "conflict") and code != want.reason:
            problems.append(f"{where}: reason {code!r}, expected {want.reason!r}")
        if notes != want.notes:
            problems.append(f"{where}: notes {sorted(notes)}, expected {sorted(want.notes)}")
        if want.person is not None:
            first = customer_of_first.setdefault(want.person, got["customer_id"])
            if got["customer_id"] != first or not first:
                problems.append(f"{where}: customer {got['customer_id']}, expected that of row {want.person} ({first})")
    distinct = len(set(customer_of_first.values()))
    if distinct != len(customer_of_first):
        problems.append(f"{len(customer_of_first)} expected customers share only {distinct} customer ids")
    return problems
