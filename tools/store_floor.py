"""A simulated store floor with known ground truth: people walk by or come in, phones probe, readers hear.

The shop is 20 m wide and 15 m deep with its door in the middle of the front wall; a pavement runs
4 m in front of it. Three Wi-Fi readers stand at the entrance, in the aisles and at the checkout.
Walkers-by pass along the pavement; visitors come along it, go in, wander between zones for a known
dwell, and leave. Every phone sends a probe burst every 10-20 s, heard by each reader with
probability 0.95 at a strength from a log-distance path-loss model (-45 dBm at 1 m, exponent 2.5,
10 dB through the shop front, Gaussian noise of 3 dB).

A share of the phones use a randomized (locally administered) address, a fresh one per appearance,
as phones do when they scan without being connected. The addresses here are raw, as a capture
would see them: the pseudonymizer must replace them before anything else sees them.

Member phones (:meth:`StoreFloor.member_phones`) run the member app, which advertises a rotating
beacon id (shared.member_beacon) instead of an address, on the same walk and the same readers.
"""

from __future__ import annotations

import argparse
import math
import random
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO
from zoneinfo import ZoneInfo

WIDTH, DEPTH = 20.0, 15.0
DOOR = (10.0, 0.0)
PAVEMENT_Y = -4.0
READERS = {"entrance": (10.0, 1.0), "aisles": (6.0, 8.0), "checkout": (16.0, 12.0)}
PLACEMENTS = {name: name for name in READERS}  # each reader is its own zone
_READER_INDEX = {name: n for n, name in enumerate(READERS)}
ZONE_SPOTS = {"entrance": (10.0, 3.0), "aisles": (5.0, 9.0), "checkout": (16.0, 11.0)}


@dataclass(frozen=True, slots=True)
class RawSighting:
    """What a reader captures: time, the phone's raw address, which reader, signal in dBm."""

    at: float
    address: str
    reader: str
    rssi: float


@dataclass(frozen=True, slots=True)
class BeaconSighting:
    """What a reader hears of a member app's beacon: time, the rotating id it advertised then, reader, signal."""

    at: float
    identifier: bytes
    reader: str
    rssi: float


@dataclass(frozen=True, slots=True)
class Person:
    """Ground truth for one appearance: who, with which address, and (for visitors) when in and out."""

    kind: str  # "walker" or "visitor"
    address: str
    randomized: bool
    door_in: float | None = None
    door_out: float | None = None
    repeat: bool = False  # the same phone (same address) already visited today

    @property
    def dwell(self) -> float:
        """Seconds between going in and coming out (visitors only)."""
        assert self.door_in is not None and self.door_out is not None
        return self.door_out - self.door_in


def rssi_at(x: float, y: float, reader: tuple[float, float], rng: random.Random) -> float:
    """Signal a reader hears from a phone at (x, y), with noise."""
    distance = max(0.5, math.hypot(x - reader[0], y - reader[1]))
    wall = 10.0 if y < 0 else 0.0
    return -45.0 - 25.0 * math.log10(distance) - wall + rng.gauss(0.0, 3.0)


@dataclass
class StoreFloor:
    """Generates the day's people and what the readers hear of them."""

    seed: int = 1
    start: float = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    hours: float = 2.0
    walkers: int = 200
    visitors: int = 60
    returning: int = 5  # visitors with a global address who come back later the same day
    randomized_share: float = 0.3
    min_dwell: float = 300.0
    max_dwell: float = 2400.0
    people: list[Person] = field(default_factory=list, init=False)

    def _address(self, rng: random.Random, randomized: bool) -> str:
        first = rng.randrange(256) & 0xFC  # unicast
        first = first | 0x02 if randomized else first & ~0x02
        return ":".join(f"{b:02x}" for b in [first, *(rng.randrange(256) for _ in range(5))])

    def sightings(self) -> list[RawSighting]:
        """Every reading of the simulated period, in time order; fills :attr:`people`."""
        rng = random.Random(self.seed)
        span = self.hours * 3600.0
        out: list[RawSighting] = []
        self.people = []
        for kind, count in (("walker", self.walkers), ("visitor", self.visitors)):
            for _ in range(count):
                randomized = rng.random() < self.randomized_share
                address = self._address(rng, randomized)
                side = rng.choice((-1.0, 1.0))
                speed = rng.uniform(1.0, 1.5)
                far = DOOR[0] - side * 40.0  # start 40 m along the pavement
                near = DOOR[0] + side * 40.0
                t0 = self.start + rng.uniform(0.0, span - (self.max_dwell + 200.0))
                points: list[tuple[float, float, float]] = [(t0, far, PAVEMENT_Y)]
                if kind == "walker":
                    points.append((t0 + 80.0 / speed, near, PAVEMENT_Y))
                    self.people.append(Person(kind, address, randomized))
                else:
                    person = self._visit(rng, address, randomized, t0, speed, points, near)
                    self.people.append(person)
                out += self._probes(rng, address, points)
        first_visits = [p for p in self.people if p.kind == "visitor" and not p.randomized]
        for earlier in first_visits[: self.returning]:
            assert earlier.door_out is not None
            side = rng.choice((-1.0, 1.0))
            t0 = earlier.door_out + rng.uniform(900.0, 1800.0)
            points = [(t0, DOOR[0] - side * 40.0, PAVEMENT_Y)]
            speed = rng.uniform(1.0, 1.5)
            again = self._visit(rng, earlier.address, False, t0, speed, points, DOOR[0] + side * 40.0)
            self.people.append(Person("visitor", again.address, False, again.door_in, again.door_out, repeat=True))
            out += self._probes(rng, earlier.address, points)
        out.sort(key=lambda s: s.at)
        return out

    def member_phones(self, apps: Mapping[str, Callable[[float], bytes]]) -> tuple[list[BeaconSighting], list[Person]]:
        """One visit per member whose app advertises ``apps[member](t)`` at time t; the readings and the truth.

        A member's ground-truth :class:`Person` has the member id where a phone has its address.
        """
        rng = random.Random(self.seed * 7919 + 1)
        span = self.hours * 3600.0
        out: list[BeaconSighting] = []
        truth: list[Person] = []
        for member, advertised in apps.items():
            side = rng.choice((-1.0, 1.0))
            t0 = self.start + rng.uniform(0.0, span - (self.max_dwell + 200.0))
            points = [(t0, DOOR[0] - side * 40.0, PAVEMENT_Y)]
            truth.append(self._visit(rng, member, False, t0, rng.uniform(1.0, 1.5), points, DOOR[0] + side * 40.0))
            out += [BeaconSighting(s.at, advertised(s.at), s.reader, s.rssi) for s in self._probes(rng, member, points)]
        out.sort(key=lambda s: s.at)
        return out, truth

    def _visit(
        self,
        rng: random.Random,
        address: str,
        randomized: bool,
        t0: float,
        speed: float,
        points: list[tuple[float, float, float]],
        near: float,
    ) -> Person:
        """Extend ``points`` with a visit: to the door, around the shop, out and away."""
        walk = math.hypot(40.0, PAVEMENT_Y) / speed
        door_in = t0 + walk
        door_out = door_in + rng.uniform(self.min_dwell, self.max_dwell)
        points.append((door_in, *DOOR))
        points += self._wander(rng, door_in, door_out)
        points.append((door_out, *DOOR))
        points.append((door_out + walk, near, PAVEMENT_Y))
        return Person("visitor", address, randomized, door_in, door_out)

    def _wander(self, rng: random.Random, door_in: float, door_out: float) -> list[tuple[float, float, float]]:
        """Waypoints between the zones, arriving and leaving a few metres inside the door."""
        stops = rng.randint(1, 4)
        times = sorted(rng.uniform(door_in + 5.0, door_out - 5.0) for _ in range(2 * stops))
        points = []
        for i in range(stops):
            zone = rng.choice(list(ZONE_SPOTS))
            x, y = ZONE_SPOTS[zone]
            x, y = x + rng.uniform(-2, 2), y + rng.uniform(-2, 2)
            points += [(times[2 * i], x, y), (times[2 * i + 1], x, y)]
        return points

    def _probes(self, rng: random.Random, address: str, points: list[tuple[float, float, float]]) -> list[RawSighting]:
        interval = rng.uniform(10.0, 20.0)
        at = points[0][0] + rng.uniform(0.0, interval)
        out = []
        segment = 0
        while at < points[-1][0]:
            while points[segment + 1][0] < at:
                segment += 1
            (ta, xa, ya), (tb, xb, yb) = points[segment], points[segment + 1]
            share = (at - ta) / (tb - ta) if tb > ta else 0.0
            x, y = xa + (xb - xa) * share, ya + (yb - ya) * share
            for name, position in READERS.items():
                if rng.random() < 0.95:
                    rssi = rssi_at(x, y, position, rng)
                    if rssi >= -95.0:  # receiver sensitivity
                        out.append(RawSighting(at, address, name, round(rssi)))
            at += interval + rng.uniform(-1.0, 1.0)
        return out


def probe_frame(address: str, rssi: float, sequence: int, frequency: int = 2437) -> bytes:
    """A probe request as a monitor-mode interface captures it: radiotap (channel, signal) then 802.11."""
    radiotap = struct.pack("<BBHI", 0, 0, 13, (1 << 3) | (1 << 5)) + struct.pack("<HHb", frequency, 0x00A0, round(rssi))
    header = b"\x40\x00\x00\x00" + b"\xff" * 6 + bytes.fromhex(address.replace(":", "")) + b"\xff" * 6
    elements = b"\x00\x00" + b"\x01\x04\x02\x04\x0b\x16"  # wildcard SSID, supported rates
    return radiotap + header + struct.pack("<H", (sequence & 0xFFF) << 4) + elements


def _block(block_type: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("<II", block_type, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def pcapng_header() -> bytes:
    """A pcapng section header and one interface per reader, named after it (as a tool merging radios writes)."""
    out = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for name in READERS:
        option = struct.pack("<HH", 2, len(name)) + name.encode() + b"\x00" * (-len(name) % 4)
        out += _block(1, struct.pack("<HHI", 127, 0, 262144) + option + b"\x00\x00\x00\x00")
    return out


def pcapng_packet(s: RawSighting, sequence: int) -> bytes:
    """One sighting as an enhanced packet block on its reader's interface."""
    frame = probe_frame(s.address, s.rssi, sequence)
    micros = round(s.at * 1_000_000)
    head = struct.pack("<IIIII", _READER_INDEX[s.reader], micros >> 32, micros & 0xFFFFFFFF, len(frame), len(frame))
    return _block(6, head + frame)


def write_pcapng(sightings: list[RawSighting], out: BinaryIO) -> None:
    """Write the sightings as one pcapng capture with an interface per reader."""
    out.write(pcapng_header())
    for n, s in enumerate(sightings):
        out.write(pcapng_packet(s, n))


def main() -> None:
    """Print a floor's sightings as tab-separated lines (time, address, reader, dBm), or write them as pcapng."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--pcapng", help="write a pcapng capture (one interface per reader) to this file instead")
    args = parser.parse_args()
    sightings = StoreFloor(seed=args.seed, hours=args.hours).sightings()
    if args.pcapng:
        with open(args.pcapng, "wb") as out:
            write_pcapng(sightings, out)
        return
    for s in sightings:
        print(f"{s.at:.3f}\t{s.address}\t{s.reader}\t{s.rssi:.0f}")


if __name__ == "__main__":
    main()
