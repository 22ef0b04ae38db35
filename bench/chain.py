"""A retail chain with known ground truth: who is really behind every event, over several years.

``write_chain(out_dir, customers=100_000)`` writes ``events.jsonl`` (one event a line, the
``central-server load-events`` format, in time order), ``truth.csv`` (event_id, person) and
``staff_phones.txt``. Ten stores, a member app, a WeChat mini-program and official account, and
what makes identity hard in a real chain:

* cashiers typing their own phone when a customer gives none, and the known test numbers;
* shared counter tablets (one ``device_hash`` per store) at in-store signups;
* household members giving each other's phone or card at the till;
* numbers changed (``member.update`` with the member id) and, months later, recycled by the carrier
  to a new customer; cards replaced; people holding two app accounts, a few two memberships;
* WeChat openids per app, with the unionid only on some events and for some people, and a few
  openids that collide across apps; typos in phone numbers.

Events are planned as small integer tuples and rendered one by one when written, so a million
events fit in a few hundred megabytes. Everything follows from ``seed``.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import phonenumbers

START = datetime(2021, 1, 1, tzinfo=UTC)
DAY = 86_400
TEST_NUMBERS = ("13800138000", "12345678901", "13888888888")
APPS = {"app": "memberapp", "mini": "wx5f0mini00000001", "oa": "wx5f0offacct00002"}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红玲芬燕彬鹏辉斌宇浩凯健俊帆帅旭宁龙林欣雪琳晨阳佳怡"
CITIES = ("上海", "北京", "广州", "深圳", "杭州", "南京", "成都", "武汉")

# Event plans: (time, person, kind, variant); the variant seeds the rendering of that one event.
(
    SIGNUP_STORE,
    SIGNUP_MINI,
    SIGNUP_APP,
    RECEIPT,
    LOGIN_APP,
    LOGIN_MINI,
    OA,
    ORDER_MINI,
    ORDER_APP,
    CHANGE_PHONE,
    NEW_CARD,
    CONSENT,
    COMPLAINT,
    SECOND_MEMBERSHIP,
) = range(14)
# Per receipt: how often the phone typed is not the customer's own.
STAFF_RATE = 0.002
TEST_RATE = 0.001
HOUSEHOLD_RATE = 0.0003
TYPO_RATE = 0.001


@dataclass
class Person:
    """One real customer and everything they identify themselves with, over time."""

    index: int
    name: str
    birthday: str
    city: str
    store: int
    joined: int
    phones: list[tuple[str, int]] = field(default_factory=list)  # (number, from time)
    cards: list[tuple[str, int]] = field(default_factory=list)
    member_ids: list[str] = field(default_factory=list)
    app_users: list[str] = field(default_factory=list)
    device: str = ""
    mini_openid: str | None = None
    oa_openid: str | None = None
    unionid: str | None = None
    household: int | None = None

    def at(self, values: list[tuple[str, int]], moment: int) -> str | None:
        """The value in use at ``moment``."""
        current = None
        for value, since in values:
            if since <= moment:
                current = value
        return current


@dataclass
class Chain:
    """People, stores and the event plan."""

    people: list[Person]
    staff: list[list[str]]
    plan: list[tuple[int, int, int, int]]
    span: int
    stores: int
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


def _issued(number: str) -> bool:
    """Whether a carrier could have issued this mainland mobile number (libphonenumber's metadata)."""
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, "CN"))
    except phonenumbers.NumberParseException:  # libphonenumber reads some prefixes as trunk codes
        return False


class _Numbers:
    """Unique phone numbers (only ones a carrier issues: real customers' numbers are valid), ids and openids."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.phones: set[str] = set(TEST_NUMBERS)

    def phone(self) -> str:
        while True:
            number = f"1{self.rng.choice('35789')}{self.rng.randrange(10**9):09d}"
            if number not in self.phones and len(set(number)) > 3 and _issued(number):
                self.phones.add(number)
                return number

    def token(self, prefix: str, length: int = 24) -> str:
        return prefix + "".join(
            self.rng.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789_-") for _ in range(length)
        )


def build_chain(customers: int, *, stores: int = 10, years: int = 4, seed: int = 1) -> Chain:
    """Plan a chain of ``customers`` people (plus the carriers' new owners of recycled numbers)."""
    rng = random.Random(seed)
    numbers = _Numbers(rng)
    span = years * 365 * DAY
    staff = [[numbers.phone() for _ in range(3)] for _ in range(stores)]
    chain = Chain([], staff, [], span, stores)
    minis: list[str] = []

    def new_person(joined: int, phone: str | None = None, member: bool = False) -> Person:
        person = Person(
            index=len(chain.people),
            name=rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2)))),
            birthday=f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            city=rng.choice(CITIES),
            store=rng.randrange(stores),
            joined=joined,
            device=numbers.token("dv", 16),
        )
        person.phones.append((phone or numbers.phone(), joined))
        chain.people.append(person)
        _plan_person(chain, person, rng, numbers, minis, member)
        return person

    for _ in range(customers):
        person = new_person(rng.randrange(span * 3 // 4))
        if rng.random() < 0.15 and len(chain.people) > 1:
            other = chain.people[rng.randrange(len(chain.people) - 1)]
            if other.household is None and other.index != person.index:
                person.household, other.household = other.index, person.index
                chain.count("households")
        # A number given up by a customer goes, months later, to someone new.
        if len(person.phones) > 1 and rng.random() < 0.4:
            handover = person.phones[1][1] + rng.randint(180, 360) * DAY
            if handover < span:
                # The newcomer joins as a member: their member id is what tells them apart.
                new_person(handover, phone=person.phones[0][0], member=True)
                chain.count("recycled_numbers")
    chain.plan.sort()
    return chain


def _plan_person(
    chain: Chain, person: Person, rng: random.Random, numbers: _Numbers, minis: list[str], member: bool
) -> None:
    """Decide what kind of customer this is and when each of their events happens."""
    joined, end = person.joined, chain.span

    def at(moment: int, kind: int, flags: int = 0) -> None:
        chain.plan.append((moment, person.index, kind, rng.getrandbits(32) << 2 | flags))

    def later(after: int = 0) -> int:
        return rng.randint(joined + after, end - 1) if joined + after < end - 1 else end - 1

    roll = rng.random() * (0.85 if member else 1.0)
    if roll < 0.65:  # a store member
        person.member_ids.append(f"M{rng.randrange(10**10):010d}")
        if rng.random() < 0.6:
            person.cards.append((f"VIP{rng.randrange(10**9):09d}", joined))
        at(joined, SIGNUP_STORE)
    elif roll < 0.85:  # joined through the mini-program
        person.member_ids.append(f"M{rng.randrange(10**10):010d}")
        person.mini_openid = numbers.token("o6_", 25)
        minis.append(person.mini_openid)
        person.unionid = numbers.token("oU", 26) if rng.random() < 0.85 else None
        at(joined, SIGNUP_MINI)
        for _ in range(rng.randint(1, 6)):
            at(later(), LOGIN_MINI)
        for _ in range(rng.randint(0, 3)):
            at(later(), ORDER_MINI)
        if rng.random() < 0.3:
            if rng.random() < 0.02 and len(minis) > 1:  # the same string as another app's openid
                person.oa_openid = rng.choice(minis[:-1])
                chain.count("openid_collisions")
            else:
                person.oa_openid = numbers.token("oA_", 25)
            at(joined + DAY, OA, flags=1)  # following the account: the unionid comes with it
            for _ in range(rng.randint(0, 2)):
                at(later(), OA)
    else:
        chain.count("walk_ins")
    if rng.random() < 0.12:  # the member app
        person.app_users.append(numbers.token("u", 12))
        at(joined + DAY, SIGNUP_APP, flags=0)
        if rng.random() < 0.2:  # a second account, same phone
            person.app_users.append(numbers.token("u", 12))
            at(later(), SIGNUP_APP, flags=1)
            chain.count("duplicate_app_accounts")
        for _ in range(rng.randint(1, 5)):
            at(later(), LOGIN_APP, flags=rng.randrange(len(person.app_users)))
        for _ in range(rng.randint(0, 2)):
            at(later(), ORDER_APP, flags=rng.randrange(len(person.app_users)))
    for _ in range(max(1, int(rng.expovariate(1 / 7)))):
        at(later(), RECEIPT)
    if person.member_ids and rng.random() < 0.05:
        when = later(30 * DAY)
        person.phones.append((numbers.phone(), when))
        at(when, CHANGE_PHONE)
        chain.count("changed_numbers")
    if person.cards and rng.random() < 0.05:
        when = later(30 * DAY)
        person.cards.append((f"VIP{rng.randrange(10**9):09d}", when))
        at(when, NEW_CARD)
        chain.count("replaced_cards")
    if person.member_ids and rng.random() < 0.005:
        person.member_ids.append(f"M{rng.randrange(10**10):010d}")
        at(later(), SECOND_MEMBERSHIP)
        chain.count("duplicate_memberships")
    if rng.random() < 0.2:
        at(later(), CONSENT)
    if rng.random() < 0.03:
        at(later(), COMPLAINT)


def _time(moment: int) -> str:
    return datetime.fromtimestamp(START.timestamp() + moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _typo(phone: str, rng: random.Random) -> str:
    at = rng.randrange(3, 11)
    digit = str((int(phone[at]) + rng.randint(1, 9)) % 10)
    return phone[:at] + digit + phone[at + 1 :]


def render(chain: Chain, number: int, item: tuple[int, int, int, int]) -> tuple[dict[str, Any], str]:
    """Event ``number`` of the plan as a load-events line, and what it shows (a note for the manifest)."""
    moment, index, kind, variant = item
    person = chain.people[index]
    rng = random.Random(variant)
    flags = variant & 3
    phone = person.at(person.phones, moment)
    card = person.at(person.cards, moment)
    member_id = person.member_ids[0] if person.member_ids else None
    store = person.store if rng.random() < 0.8 else rng.randrange(chain.stores)
    event: dict[str, Any] = {"observed_at": _time(moment), "store_id": ""}
    note = ""
    ids: dict[str, str] = {}
    if kind == RECEIPT:
        event.update(kind="pos.receipt", store_id=f"S{store + 1:03d}")
        event["payload"] = {"receipt_no": f"R{number:09d}", "total": f"{rng.randrange(100, 90000) / 100:.2f}"}
        ids, note = _receipt_ids(chain, person, moment, store, rng, phone, card)
    elif kind in (SIGNUP_STORE, SECOND_MEMBERSHIP):
        event.update(
            kind="member.signup",
            store_id=f"S{person.store + 1:03d}",
            name=person.name,
            birthday=person.birthday,
            city=person.city,
        )
        ids = {"phone": phone or "", "member_id": person.member_ids[-1 if kind == SECOND_MEMBERSHIP else 0]}
        if card and kind == SIGNUP_STORE:
            ids["member_card"] = card
        ids["device_hash"] = f"tablet{person.store + 1:03d}"  # the counter's shared tablet
    elif kind == SIGNUP_MINI:
        event.update(kind="member.signup", app_id=APPS["mini"], name=person.name, birthday=person.birthday)
        ids = {"wechat_openid": person.mini_openid or "", "phone": phone or "", "member_id": member_id or ""}
        if person.unionid:
            ids["wechat_unionid"] = person.unionid
    elif kind == SIGNUP_APP:
        event.update(kind="member.signup", app_id=APPS["app"], name=person.name)
        ids = {
            "app_user_id": person.app_users[flags % len(person.app_users)],
            "phone": phone or "",
            "device_hash": person.device,
        }
    elif kind == LOGIN_APP:
        event.update(kind="member.login", app_id=APPS["app"])
        ids = {"app_user_id": person.app_users[flags % len(person.app_users)], "device_hash": person.device}
    elif kind == LOGIN_MINI:
        event.update(kind="member.login", app_id=APPS["mini"])
        ids = {"wechat_openid": person.mini_openid or ""}
        if person.unionid and rng.random() < 0.6:
            ids["wechat_unionid"] = person.unionid
    elif kind == OA:
        event.update(kind="member.login", app_id=APPS["oa"])
        ids = {"wechat_openid": person.oa_openid or ""}
        if person.unionid and (flags or rng.random() < 0.3):
            ids["wechat_unionid"] = person.unionid
    elif kind in (ORDER_MINI, ORDER_APP):
        total = f"{rng.randrange(500, 60000) / 100:.2f}"
        event.update(kind="order.online", payload={"order_no": f"O{number:09d}", "total": total, "items": []})
        if kind == ORDER_MINI:
            event["app_id"] = APPS["mini"]
            ids = {"wechat_openid": person.mini_openid or "", "phone": phone or ""}
        else:
            event["app_id"] = APPS["app"]
            ids = {"app_user_id": person.app_users[flags % len(person.app_users)], "phone": phone or ""}
    elif kind == CHANGE_PHONE:
        event.update(kind="member.update")
        ids = {"member_id": member_id or "", "phone": phone or ""}
    elif kind == NEW_CARD:
        event.update(kind="member.update")
        ids = {"member_id": member_id or "", "member_card": card or ""}
    elif kind == CONSENT:
        event.update(
            kind="consent.given", payload={"purpose": "marketing", "channel": "sms", "notice_version": "2026-01"}
        )
        ids = {"member_id": member_id} if member_id else {"phone": phone or ""}
    else:
        event.update(kind="service.complaint")
        ids = {"phone": phone or ""}
    event["identifiers"] = {k: v for k, v in ids.items() if v}
    return event, note


def _receipt_ids(
    chain: Chain, person: Person, moment: int, store: int, rng: random.Random, phone: str | None, card: str | None
) -> tuple[dict[str, str], str]:
    """What the till recorded: usually the customer's phone or card, sometimes someone else's."""
    roll = rng.random()
    if roll < STAFF_RATE:
        return {"phone": rng.choice(chain.staff[store])}, "staff_phone"
    roll -= STAFF_RATE
    if roll < TEST_RATE:
        return {"phone": rng.choice(TEST_NUMBERS)}, "test_number"
    roll -= TEST_RATE
    if roll < HOUSEHOLD_RATE and person.household is not None:
        other = chain.people[person.household]
        if other.joined <= moment:
            other_card = other.at(other.cards, moment)
            if other_card and rng.random() < 0.5:
                return {"member_card": other_card}, "household_card"
            other_phone = other.at(other.phones, moment)
            if other_phone:
                return {"phone": other_phone}, "household_phone"
    roll -= HOUSEHOLD_RATE
    if roll < TYPO_RATE and phone:
        return {"phone": _typo(phone, rng)}, "typo"
    choice = rng.random()
    if card and choice < 0.25:
        return {"member_card": card}, ""
    if card and choice < 0.40:
        return {"phone": phone or "", "member_card": card}, ""
    return {"phone": phone or ""}, ""


_CHANNELS = {
    RECEIPT: "pos",
    LOGIN_MINI: "mini",
    SIGNUP_MINI: "mini",
    ORDER_MINI: "mini",
    OA: "oa",
    LOGIN_APP: "app",
    SIGNUP_APP: "app",
    ORDER_APP: "app",
}


def events(chain: Chain) -> Iterator[tuple[bytes, str, int, str]]:
    """Every planned event in time order: (JSON line, event id, person, note)."""
    for number, item in enumerate(chain.plan, start=1):
        event, note = render(chain, number, item)
        event_id = f"{_CHANNELS.get(item[2], 'crm')}-{number:08d}"
        yield orjson.dumps({"event_id": event_id, **event}), event_id, item[1], note


def write_chain(out_dir: Path, customers: int = 100_000, *, seed: int = 1, years: int = 4) -> dict[str, int]:
    """Write events.jsonl, truth.csv and staff_phones.txt into ``out_dir``; return what the chain holds."""
    chain = build_chain(customers, years=years, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = dict(chain.counts)
    with (out_dir / "events.jsonl").open("wb") as lines, (out_dir / "truth.csv").open("w", newline="") as truth:
        writer = csv.writer(truth, lineterminator="\n")
        writer.writerow(["event_id", "person"])
        for line, event_id, person, note in events(chain):
            lines.write(line + b"\n")
            writer.writerow([event_id, f"P{person:07d}"])
            if note:
                counts[note] = counts.get(note, 0) + 1
    (out_dir / "staff_phones.txt").write_text("\n".join(p for store in chain.staff for p in store) + "\n")
    counts["people"] = len(chain.people)
    counts["events"] = len(chain.plan)
    return counts
