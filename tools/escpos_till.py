"""A simulated till that prints Chinese ESC/POS receipts into a pseudo-terminal, as a POS prints to its printer.

For the demo (``./dev demo``) and for trying an agent with ``pos.mode = "escpos"`` by hand::

    python -m tools.escpos_till --link /tmp/pos.tty --rate 1

The receipts are the generator's (tools/receipts.py): supermarket and convenience-store layouts in
GBK or GB18030, logos, QR codes and barcodes, every payment method, members; each starts with a
printer reset, and most end with a cut. Returning members come back, so customers build up.
SIGUSR1 says a member's code was just scanned: the next receipt names no member of its own, as the
scanned member's sale would not.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import threading
import time
from pathlib import Path

from edge_agent.simulator import open_pty
from tools.receipts import receipt


class Printer:
    """An endless, reproducible stream of receipts as printer bytes."""

    def __init__(self, seed: int = 1, members: int = 150) -> None:
        self._rng = random.Random(seed)
        # The members who come back: their phones are on many receipts.
        self.regulars = [f"1{self._rng.choice('3456789')}{self._rng.randrange(10**9):09d}" for _ in range(members)]
        self.count = 0
        # Set (SIGUSR1, see run) when a member's code was just scanned at this till: the next receipt
        # is that member's sale, which names no member of its own.
        self.scanned_member = False

    def next(self) -> bytes:
        """The next receipt's bytes."""
        self.count += 1
        made = receipt(random.Random(self._rng.getrandbits(64)), reset=True)
        for _ in range(100):
            if not self.scanned_member or not (made.sale["member_phone"] or made.sale["member_card"]):
                break
            made = receipt(random.Random(self._rng.getrandbits(64)), reset=True)
        self.scanned_member = False
        phone = made.sale["member_phone"]
        if phone and "*" not in phone:
            # A returning member instead of a stranger: the same customer shops again.
            regular = self._rng.choice(self.regulars)
            return made.data.replace(phone.encode(), regular.encode())
        return made.data


def run(link: Path, *, rate: float, count: int, seed: int, stop: threading.Event, copy: Path | None = None) -> int:
    """Print receipts into a new pty at ``rate`` per second until ``count`` (0: forever) or stop;
    ``copy`` also gets every byte printed (a capture file for ``edge-agent parse``)."""
    printer = Printer(seed)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, lambda *_: setattr(printer, "scanned_member", True))
    master, slave = open_pty(link)
    written = 0
    next_at = time.monotonic()
    try:
        while not stop.is_set() and (count == 0 or written < count):
            data = printer.next()
            if copy is not None:
                with copy.open("ab") as out:
                    out.write(data)
            view = memoryview(data)
            while view:
                view = view[os.write(master, view) :]  # blocks while the agent is not reading
            written += 1
            next_at += 1.0 / rate
            stop.wait(max(0.0, next_at - time.monotonic()))
    finally:
        stop.wait(0.5)  # let the reader drain the pty before it hangs up
        os.close(master)
        os.close(slave)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.escpos_till", description=__doc__.splitlines()[0])
    parser.add_argument("--link", required=True, type=Path, help="path of the symlink to create to the pty's device")
    parser.add_argument("--rate", type=float, default=1.0, help="receipts per second (default 1)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many receipts (default: never)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--copy", type=Path, help="also append every byte printed to this capture file")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    written = run(args.link, rate=args.rate, count=args.count, seed=args.seed, stop=stop, copy=args.copy)
    print(f"escpos-till: printed {written} receipts", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
