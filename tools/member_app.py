"""A simulated member app's backend: shoppers join the membership in the app, posted to central as an online source.

For the demo (``./dev demo``): every few seconds someone signs up in the chain's app naming their
home store, with a name, a birthday and the consents they chose, posted to
``/api/v1/sources/memberapp/events`` with the source's key like any online source. Half of them are
regulars of the demo's till, so their receipts at S001 and their sign-up become one customer with
a name; the overview's new members per store fill up while the demo runs. By hand::

    central-server source-key --source memberapp     # prints the key
    python -m tools.member_app --central http://127.0.0.1:8000 --key KEY --count 20
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import phonenumbers
import requests

from bench.chain import GIVEN, SURNAMES
from shared.wire import format_time

SOURCE = "memberapp"
STORES = [f"S{n:03d}" for n in range(1, 11)]


def _issued(phone: str) -> bool:
    """Whether a carrier could have issued this mainland mobile number."""
    return phonenumbers.is_valid_number(phonenumbers.parse(phone, "CN"))


class MemberApp:
    """Sign-ups as the app's backend would post them, reproducible from a seed."""

    def __init__(self, seed: int = 1, regulars: Sequence[str] = ()) -> None:
        self._rng = random.Random(seed)
        self._regulars = [p for p in regulars if _issued(p)]  # the till's numbers are not all real ones
        self._rng.shuffle(self._regulars)
        self.count = 0

    def _phone(self) -> str:
        if self._regulars and self._rng.random() < 0.5:
            return self._regulars.pop()
        while not _issued(phone := f"1{self._rng.choice('3578')}{self._rng.randrange(10**9):09d}"):
            pass
        return phone

    def signup(self, now: datetime) -> list[dict[str, Any]]:
        """One shopper's sign-up and the consents they gave with it, as online-source events."""
        self.count += 1
        rng = self._rng
        event_id = f"app-{now:%Y%m%d%H%M%S}-{self.count}"
        phone = self._phone()
        born = date(1960, 1, 1) + timedelta(days=rng.randrange(45 * 365))
        at = format_time(now)
        # S001 (the demo's till) a little more often than the other nine.
        store = rng.choice(["S001", *STORES])
        signup = {
            "event_id": event_id,
            "observed_at": at,
            "store_id": store,
            "kind": "member.signup",
            "identifiers": {"phone": phone},
            "name": rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2)))),
            "birthday": born.isoformat(),
            "payload": {},
        }
        purposes = [p for p, share in (("profiling", 0.8), ("marketing", 0.7)) if rng.random() < share]
        consents = [
            {
                "event_id": f"{event_id}-{purpose}",
                "observed_at": at,
                "store_id": store,
                "kind": "consent.given",
                "identifiers": {"phone": phone},
                "payload": {"purpose": purpose, "channel": "sms", "source": "app", "notice_version": "2026-01"},
            }
            for purpose in purposes
        ]
        return [signup, *consents]


def post(session: requests.Session, central: str, key: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Post ``events`` as the app's backend does; central's per-event answer."""
    reply = session.post(
        f"{central}/api/v1/sources/{SOURCE}/events",
        json={"schema": 1, "events": events},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    reply.raise_for_status()
    answer: dict[str, Any] = reply.json()
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.member_app", description=__doc__.splitlines()[0])
    parser.add_argument("--central", required=True, help="central's URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--key", required=True, help="the memberapp source's key (central-server source-key)")
    parser.add_argument("--count", type=int, default=10, help="sign-ups to post (default 10)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between sign-ups (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="seed for the shoppers")
    args = parser.parse_args(argv)
    app = MemberApp(args.seed)
    with requests.Session() as session:
        for n in range(args.count):
            answer = post(session, args.central.rstrip("/"), args.key, app.signup(datetime.now(UTC)))
            print(f"sign-up {n + 1}: {len(answer['accepted'])} accepted, {len(answer['rejected'])} rejected")
            time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
