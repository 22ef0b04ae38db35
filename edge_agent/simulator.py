"""A simulated store: a POS that prints line-mode receipts into a pseudo-terminal.

For demos, for installers checking a fresh agent end to end, and for benchmarks. The pty's slave
side is what the agent opens as ``pos.port``; a symlink at a fixed path points to it. Receipts
come from a fixed catalogue of everyday goods, members return (so profiles build up), and the
mix of JSON and key=value lines, phone formats and encodings matches what real tills send.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

CHINA = timezone(timedelta(hours=8))

CATALOGUE = [
    ("6921168509256", "农夫山泉 饮用天然水 550ml", "2.00"),
    ("6920202888883", "康师傅 红烧牛肉面", "4.50"),
    ("6901028075831", "可口可乐 330ml", "3.00"),
    ("6902083881085", "娃哈哈 AD钙奶 220g*4", "9.90"),
    ("6925303730574", "统一 冰红茶 500ml", "3.00"),
    ("6907992500133", "伊利 纯牛奶 250ml*16", "52.00"),
    ("6903148091451", "维达 抽纸 3层*6包", "19.90"),
    ("6920459905012", "青岛啤酒 经典 500ml", "5.50"),
    ("6954767412573", "乐事 薯片 原味 70g", "7.50"),
    ("6923450657713", "蒙牛 特仑苏 250ml*12", "65.00"),
    ("6901939621608", "旺旺 雪饼 84g", "6.80"),
    ("6970399920415", "元气森林 苏打气泡水", "5.00"),
    ("6922255451427", "奥利奥 夹心饼干 116g", "8.90"),
    ("6934665087653", "金龙鱼 大米 5kg", "39.90"),
    ("6917878007441", "雀巢 咖啡 1+2 15条", "29.90"),
]
PAYMENTS = ["wechat", "alipay", "cash", "unionpay"]


@dataclass(frozen=True)
class Member:
    phone: str
    card: str | None


class Receipts:
    """An endless, reproducible stream of receipt lines."""

    def __init__(
        self,
        *,
        seed: int = 1,
        members: int = 200,
        store_code: str = "S001",
        encoding: str = "utf-8",
        garbage_every: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rng = random.Random(seed)
        self._members = [
            Member(
                phone=f"1{self._rng.choice('3456789')}{self._rng.randrange(10**9):09d}",
                card=f"VIP{self._rng.randrange(10**7):07d}" if self._rng.random() < 0.5 else None,
            )
            for _ in range(members)
        ]
        self.store_code = store_code
        self.encoding = encoding
        self.garbage_every = garbage_every
        self._clock = clock
        self.count = 0

    def record(self) -> dict[str, object]:
        """The next sale as a dict in the POS's own field names."""
        self.count += 1
        now = datetime.fromtimestamp(self._clock(), CHINA)
        picks = self._rng.sample(CATALOGUE, self._rng.randint(1, 4))
        items = []
        total = 0
        for sku, name, price in picks:
            qty = self._rng.choice([1, 1, 1, 2, 3])
            items.append({"sku": sku, "name": name, "qty": qty, "unit_price": price})
            total += qty * int(price.replace(".", ""))
        record: dict[str, object] = {
            "receipt_no": f"{self.store_code}-{now:%y%m%d}-{self.count:05d}",
            "total": f"{total // 100}.{total % 100:02d}",
            "paid_at": now.strftime("%Y-%m-%d %H:%M:%S"),
            "payment": self._rng.choice(PAYMENTS),
            "items": items,
        }
        if self._rng.random() < 0.65:
            member = self._rng.choice(self._members)
            if member.card and self._rng.random() < 0.4:
                record["member_card"] = member.card
                if self._rng.random() < 0.3:
                    record["member_phone"] = member.phone
            else:
                record["member_phone"] = self._styled_phone(member.phone)
        return record

    def _styled_phone(self, phone: str) -> str:
        style = self._rng.random()
        if style < 0.7:
            return phone
        if style < 0.85:
            return f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"
        return f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"

    def line(self) -> bytes:
        """The next line as the POS sends it, terminator included."""
        if self.garbage_every and (self.count + 1) % self.garbage_every == 0:
            self.count += 1
            return bytes(self._rng.randrange(256) for _ in range(24)).replace(b"\n", b"") + b"\r\n"
        record = self.record()
        text = json.dumps(record, ensure_ascii=False) if self._rng.random() < 0.6 else kv_line(record)
        return text.encode(self.encoding) + b"\r\n"


def kv_line(record: dict[str, object]) -> str:
    """The key=value form of a record; item names with spaces are quoted."""
    parts = []
    for key, value in record.items():
        if key == "items":
            for item in value:  # type: ignore[attr-defined]
                parts.append(f'item="{item["sku"]},{item["qty"]},{item["unit_price"]},{item["name"]}"')
        else:
            text = str(value)
            parts.append(f'{key}="{text}"' if " " in text else f"{key}={text}")
    return " ".join(parts)


def open_pty(link: Path) -> tuple[int, int]:
    """Create a raw pty pair and symlink ``link`` to its slave side; return (master fd, slave fd).

    Holding the slave open keeps the line alive while the agent restarts, like a cable that stays
    plugged in: what the POS writes meanwhile waits in the kernel's buffer.
    """
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(link.name + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(path)
    tmp.replace(link)
    return master, slave


def run_pos(
    link: Path,
    *,
    rate: float,
    count: int = 0,
    receipts: Receipts | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Write receipts into a new pty at ``rate`` lines/s until ``count`` lines (0: forever) or stop."""
    receipts = receipts or Receipts()
    stop = stop or threading.Event()
    master, slave = open_pty(link)
    written = 0
    interval = 1.0 / rate if rate > 0 else 0.0
    next_at = time.monotonic()
    try:
        while not stop.is_set() and (count == 0 or written < count):
            data = receipts.line()
            view = memoryview(data)
            while view:
                view = view[os.write(master, view) :]  # blocks while the agent is not reading
            written += 1
            next_at += interval
            stop.wait(max(0.0, next_at - time.monotonic()))
    finally:
        # Keep the master open briefly so the reader drains the pty before it hangs up.
        stop.wait(0.5)
        os.close(master)
        os.close(slave)
    return written


def main_simulate(link: Path, rate: float, count: int, seed: int, encoding: str, garbage_every: int) -> int:
    """`edge-agent simulate-pos`: run until the count is reached or SIGTERM/SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    receipts = Receipts(seed=seed, encoding=encoding, garbage_every=garbage_every)
    written = run_pos(link, rate=rate, count=count, receipts=receipts, stop=stop)
    print(f"simulate-pos: wrote {written} lines", flush=True)
    return 0
