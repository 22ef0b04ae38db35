"""802.11 probe requests: who is looking for a network, how strongly heard, on which channel.

A probe request from a phone, after its radiotap header (real capture, wildcard SSID)::

    4000 0000 ffffffffffff 645d8675c128 ffffffffffff c019    frame control (management, subtype 4),
    |                      |                                 duration, DA, SA (the phone), BSSID, seq
    00 00                                                    SSID element, length 0: any network
    01 08 02040b160c121824 ...                               supported rates, then more elements

The source address is the phone's own; when its locally-administered bit (0x02 of the first octet)
is set the address is randomized by the phone's OS. Addresses leave this module raw: the presence
privacy step hashes them before anything is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from edge_agent.parsing.pcap import CaptureProblem, read_capture
from edge_agent.parsing.radiotap import Radiotap, RadiotapError, parse_radiotap

LINKTYPE_IEEE802_11 = 105
LINKTYPE_IEEE802_11_RADIOTAP = 127

_HEADER = 24  # frame control, duration, three addresses, sequence control
_SUBTYPE_PROBE_REQUEST = 4
_ORDER = 0x8000  # frame control bit 15: an HT Control field follows the header
_MAX_SSID = 32


@dataclass(frozen=True, slots=True)
class WifiRejected:
    """A frame that is not a usable probe request; ``reason`` is a stable code."""

    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """One probe request and the radio conditions it was heard in."""

    source: str  # transmitter address, lower-case "aa:bb:cc:dd:ee:ff"; raw, so hash it before storing
    locally_administered: bool  # set by phones that randomize their address
    ssid: bytes  # any bytes; empty means "any network" (wildcard)
    frequency_mhz: int | None = None
    signal_dbm: int | None = None
    antenna_signals: tuple[tuple[int | None, int], ...] = ()
    sequence: int | None = None

    @property
    def wildcard(self) -> bool:
        """The request asks for any network rather than a named one."""
        return not self.ssid


def parse_probe_request(frame: bytes, radio: Radiotap | None = None, fcs_bytes: int = 0) -> ProbeRequest | WifiRejected:
    """Read an 802.11 frame (without radiotap) as a probe request, with the radio data if known."""
    if radio is not None and radio.bad_fcs:
        return WifiRejected("bad_fcs", "the receiver marked the frame's checksum as wrong")
    if fcs_bytes:
        frame = frame[:-fcs_bytes] if len(frame) >= fcs_bytes else b""
    if len(frame) < 2:
        return WifiRejected("frame_truncated", f"{len(frame)} bytes; no frame control field")
    control = int.from_bytes(frame[:2], "little")
    if control & 0x3:
        return WifiRejected("protocol_version", f"802.11 protocol version {control & 0x3}")
    if (control >> 2) & 0x3 != 0:
        return WifiRejected("not_management", "a control or data frame")
    if (control >> 4) & 0xF != _SUBTYPE_PROBE_REQUEST:
        return WifiRejected("not_probe_request", f"management subtype {(control >> 4) & 0xF}")
    header = _HEADER + (4 if control & _ORDER else 0)
    if len(frame) < header:
        return WifiRejected("frame_truncated", f"{len(frame)} bytes; the header needs {header}")
    source = frame[10:16]
    if source[0] & 0x01:
        return WifiRejected("multicast_source", "a group address cannot send a frame")
    ssid: bytes | None = None
    pos = header
    while pos + 2 <= len(frame):
        element, size = frame[pos], frame[pos + 1]
        if pos + 2 + size > len(frame):
            break  # a truncated element: keep what was complete (snap length, damaged tail)
        if element == 0:
            ssid = frame[pos + 2 : pos + 2 + size]
            break
        pos += 2 + size
    if ssid is None:
        return WifiRejected("no_ssid", "probe request without a complete SSID element")
    if len(ssid) > _MAX_SSID:
        return WifiRejected("ssid_too_long", f"SSID of {len(ssid)} bytes; 802.11 allows {_MAX_SSID}")
    return ProbeRequest(
        source=source.hex(":"),
        locally_administered=bool(source[0] & 0x02),
        ssid=ssid,
        frequency_mhz=radio.frequency_mhz if radio else None,
        signal_dbm=radio.signal_dbm if radio else None,
        antenna_signals=radio.antenna_signals if radio else (),
        sequence=int.from_bytes(frame[22:24], "little") >> 4,
    )


def decode_packet(linktype: int, data: bytes, fcs_bytes: int = 0) -> ProbeRequest | WifiRejected:
    """A captured packet of the given link type (radiotap or plain 802.11) as a probe request."""
    if linktype == LINKTYPE_IEEE802_11_RADIOTAP:
        radio = parse_radiotap(data)
        if isinstance(radio, RadiotapError):
            return WifiRejected(radio.reason, radio.detail)
        return parse_probe_request(data[radio.length :], radio, 4 if radio.fcs_at_end else 0)
    if linktype == LINKTYPE_IEEE802_11:
        return parse_probe_request(data, None, fcs_bytes)
    return WifiRejected("unsupported_linktype", f"link type {linktype}; expected 127 (radiotap) or 105 (802.11)")


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One packet of a capture (numbered from 1, as Wireshark does) and what it holds."""

    number: int
    timestamp_ns: int
    result: ProbeRequest | WifiRejected


def frames_of_capture(data: bytes) -> Iterator[CapturedFrame | CaptureProblem]:
    """Every packet of a pcap or pcapng capture decoded as a probe request, or the reason it is not one."""
    number = 0
    for item in read_capture(data):
        if isinstance(item, CaptureProblem):
            yield item
            continue
        number += 1
        yield CapturedFrame(number, item.timestamp_ns, decode_packet(item.linktype, item.data, item.fcs_bytes))
