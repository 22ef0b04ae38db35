"""The presence station: what the radio sources hear, pseudonymized at once, fed to one engine per medium.

A source calls :meth:`PresenceStation.heard` with the raw address it just parsed; the address is
replaced by the day's pseudonym inside that call and goes no further (decision 0045). The agent's
tick job calls :meth:`PresenceStation.tick` so visits end and hours settle while nobody is heard;
the engine's ``presence.visit`` and ``presence.aggregate`` events go to the outbox writer.

A source replaying a finished capture file drives time by the capture's own timestamps: the
station is then told :meth:`finish` at the end of the file instead of ticking on the wall clock,
which would end every visit of an old capture at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_agent.presence.engine import PresenceEngine, PresenceEvent, Sighting
from edge_agent.presence.pseudonyms import AddressError, Pseudonymizer
from edge_agent.records import Capture
from shared.member_beacon import BeaconResolver


@dataclass(slots=True)
class StationCounters:
    """What a station has seen, for health and heartbeats (never per device)."""

    heard: int = 0
    bad_addresses: int = 0
    members: int = 0  # sightings of member-app beacons resolved to a consenting member
    events: int = 0
    last_heard_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class PresenceStation:
    """One medium's engine behind a lock, with the pseudonymizer in front and the writer behind."""

    def __init__(
        self,
        engine: PresenceEngine,
        pseudonyms: Pseudonymizer,
        emit: Callable[[Capture], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self._pseudonyms = pseudonyms
        self._emit = emit
        self._clock = clock
        self._lock = threading.Lock()
        self._replaying = 0  # sources that drive time from a capture file
        self._done = False  # a replayed capture has been finished: its time is over
        self.counters = StationCounters()
        self._beacons = BeaconResolver()

    @property
    def medium(self) -> str:
        """``wifi`` or ``ble``."""
        return self.engine.settings.medium

    def replaying(self, on: bool) -> None:
        """A source starts (or stops) feeding a capture file: time then comes from its timestamps only."""
        with self._lock:
            self._replaying += 1 if on else -1

    def heard(self, at: float, address: str | bytes, anchor: str, rssi: float, randomized: bool | None = None) -> None:
        """A device address heard by ``anchor``; the address is pseudonymized here and dropped."""
        with self._lock:  # the pseudonymizer caches the day's salt: one caller at a time
            try:
                device = self._pseudonyms.device(address, at, randomized=randomized)
            except AddressError:
                self.counters.bad_addresses += 1
                return
            self.engine.observe(Sighting(at, device.key, device.randomized, anchor, rssi))
            self._after_observe(at)

    def heard_id(self, at: float, rotating_id: bytes, anchor: str, rssi: float) -> None:
        """A rotating identifier (Exposure Notification, Eddystone-EID) heard: counted like a randomized address.

        A member-app beacon of a member whose location consent is on (the downlink's
        ``member_beacons``) is resolved to its member instead: its visit names the member, and its
        pseudonym comes from the member id, so the visit survives the id's rotation.
        """
        with self._lock:
            member = self._beacons.resolve(rotating_id, at)
            if member is None:
                self.engine.observe(Sighting(at, self._pseudonyms.pseudonym(rotating_id, at), True, anchor, rssi))
            else:
                self.counters.members += 1
                key = self._pseudonyms.pseudonym(b"member|" + member.encode("utf-8"), at)
                self.engine.observe(Sighting(at, key, False, anchor, rssi, member))
            self._after_observe(at)

    def use_beacons(self, resolver: BeaconResolver) -> None:
        """Resolve member-app beacons with these members' keys from now on (an empty resolver: nobody)."""
        with self._lock:
            self._beacons = resolver

    def _after_observe(self, at: float) -> None:
        counters = self.counters
        counters.heard += 1
        counters.last_heard_at = at
        self._forward(self.engine.drain())

    def tick(self) -> None:
        """Let wall-clock time pass (unless a capture file drives time), and forward what the engine emitted."""
        with self._lock:
            if not self._replaying and not self._done:
                self.engine.advance(self._clock())
            self._forward(self.engine.drain())

    def finish(self, at: float | None = None) -> None:
        """End every visit and emit every open hour: at shutdown, or at ``at``, the end of a replayed capture."""
        with self._lock:
            if self._done:
                return
            self.engine.flush(self._clock() if at is None else at)
            self._forward(self.engine.drain())
            self._done = at is not None

    def _forward(self, events: list[PresenceEvent]) -> None:
        for event in events:
            self._emit(Capture.of(event.kind, event.payload, event.observed_at))
        self.counters.events += len(events)

    def as_dict(self) -> dict[str, Any]:
        """Counts for the heartbeat: sightings, devices in view, events; no identifiers."""
        c = self.counters
        return {
            "heard": c.heard,
            "devices_in_view": self.engine.devices_in_view,
            "bad_addresses": c.bad_addresses,
            "member_beacon_sightings": c.members,
            "resolvable_members": self._beacons.members,
            "events": c.events,
            "ignored_weak": self.engine.ignored_weak,
        }
