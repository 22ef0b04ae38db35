"""Radiotap headers: the radio metadata a monitor-mode interface puts before each 802.11 frame.

A header from an Intel card with two antenna namespaces (from a real capture)::

    00 00 1800 2e4000a0 20080000       version, pad, length 24, present words 0 and 1
    00 02 6c09a000 cd 00 0000          flags, rate, channel 2412 MHz, signal -51 dBm, pad, RX flags
    cd 00                              namespace 2 (one antenna): signal -51 dBm, antenna 0

Fields are aligned to their natural size counted from the start of the header; each extra present
word continues the namespace unless bit 29 (a new radiotap namespace) or bit 30 (a vendor namespace,
skipped by its declared length) is set. Linux writes the combined signal in the first namespace and
one further namespace per receive chain (https://www.radiotap.org/fields/defined).
"""

from __future__ import annotations

from dataclasses import dataclass

# (alignment, size) of each defined field, by bit number; bit 28 (TLVs) and later cannot be sized.
_FIELDS: tuple[tuple[int, int], ...] = (
    (8, 8),  # 0 TSFT
    (1, 1),  # 1 Flags
    (1, 1),  # 2 Rate
    (2, 4),  # 3 Channel: frequency u16, flags u16
    (1, 2),  # 4 FHSS
    (1, 1),  # 5 dBm antenna signal
    (1, 1),  # 6 dBm antenna noise
    (2, 2),  # 7 lock quality
    (2, 2),  # 8 TX attenuation
    (2, 2),  # 9 dB TX attenuation
    (1, 1),  # 10 dBm TX power
    (1, 1),  # 11 antenna
    (1, 1),  # 12 dB antenna signal
    (1, 1),  # 13 dB antenna noise
    (2, 2),  # 14 RX flags
    (2, 2),  # 15 TX flags
    (1, 1),  # 16 RTS retries
    (1, 1),  # 17 data retries
    (4, 8),  # 18 XChannel: flags u32, frequency u16, channel u8, max power u8
    (1, 3),  # 19 MCS
    (4, 8),  # 20 A-MPDU status
    (2, 12),  # 21 VHT
    (8, 12),  # 22 timestamp
    (2, 12),  # 23 HE
    (2, 12),  # 24 HE-MU
    (2, 6),  # 25 HE-MU-other-user
    (1, 1),  # 26 0-length PSDU
    (2, 4),  # 27 L-SIG
)
_RADIOTAP_NS = 29
_VENDOR_NS = 30
_EXT = 31

FLAG_FCS_AT_END = 0x10
FLAG_BAD_FCS = 0x40


@dataclass(frozen=True, slots=True)
class RadiotapError:
    """A header that cannot be read; ``reason`` is a stable code."""

    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Radiotap:
    """What a probe-request counter needs from the header."""

    length: int
    flags: int = 0
    frequency_mhz: int | None = None
    signal_dbm: int | None = None  # the combined signal of all chains
    antenna_signals: tuple[tuple[int | None, int], ...] = ()  # (antenna index, dBm) per chain, zeros left out

    @property
    def fcs_at_end(self) -> bool:
        """The 802.11 frame ends with its 4-byte FCS."""
        return bool(self.flags & FLAG_FCS_AT_END)

    @property
    def bad_fcs(self) -> bool:
        """The receiver found the frame's checksum wrong."""
        return bool(self.flags & FLAG_BAD_FCS)


def parse_radiotap(data: bytes) -> Radiotap | RadiotapError:
    """Read the radiotap header at the start of ``data``."""
    if len(data) < 8:
        return RadiotapError("radiotap_truncated", f"{len(data)} bytes; a header needs at least 8")
    if data[0] != 0:
        return RadiotapError("radiotap_version", f"version {data[0]}; only 0 is defined")
    length = int.from_bytes(data[2:4], "little")
    if length < 8 or length > len(data):
        return RadiotapError("radiotap_length", f"declared length {length}, {len(data)} bytes present")
    words: list[int] = []
    pos = 4
    while True:
        if pos + 4 > length:
            return RadiotapError("radiotap_length", "present bitmaps run past the header")
        word = int.from_bytes(data[pos : pos + 4], "little")
        words.append(word)
        pos += 4
        if not word & (1 << _EXT):
            break
    flags = 0
    frequency: int | None = None
    xfrequency: int | None = None
    combined: int | None = None
    chains: list[tuple[int | None, int]] = []
    namespace = 0  # 0: the first radiotap namespace, n > 0: the n-th, -1: a vendor namespace
    base = 0  # bit number of this word's bit 0 within its namespace
    vendor_end = 0
    for word in words:
        if namespace >= 0:
            signal: int | None = None
            antenna: int | None = None
            fields = word & 0x1FFFFFFF
            while fields:
                lowest = fields & -fields
                fields ^= lowest
                number = base + lowest.bit_length() - 1
                if number >= len(_FIELDS):
                    # TLVs or a field we cannot size: nothing after it can be located.
                    return _result(length, flags, frequency or xfrequency, combined, chains)
                align, size = _FIELDS[number]
                pos = (pos + align - 1) & ~(align - 1)
                if pos + size > length:
                    return RadiotapError("radiotap_truncated", f"field {number} runs past the header")
                if number == 1:
                    flags = data[pos]
                elif number == 3:
                    frequency = int.from_bytes(data[pos : pos + 2], "little")
                elif number == 18:
                    xfrequency = int.from_bytes(data[pos + 4 : pos + 6], "little")
                elif number == 5:
                    signal = data[pos] - 256 if data[pos] > 127 else data[pos]
                elif number == 11:
                    antenna = data[pos]
                pos += size
            if signal is not None:
                if namespace == 0:
                    combined = signal
                elif signal != 0:  # some drivers fill absent chains with 0 dBm
                    chains.append((antenna, signal))
        if word & (1 << _VENDOR_NS):
            # The vendor namespace field (OUI 3, sub-namespace 1, skip length 2, aligned to 2) comes
            # after this word's fields; the vendor's data follows it and is skipped whole.
            pos = vendor_end if namespace < 0 else (pos + 1) & ~1
            if pos + 6 > length:
                return RadiotapError("radiotap_truncated", "vendor namespace runs past the header")
            vendor_end = pos + 6 + int.from_bytes(data[pos + 4 : pos + 6], "little")
            if vendor_end > length:
                return RadiotapError("radiotap_truncated", "vendor namespace data runs past the header")
            pos += 6
            namespace, base = -1, 0
        elif word & (1 << _RADIOTAP_NS):
            if namespace < 0:
                pos = vendor_end
            namespace = max(namespace, 0) + 1
            base = 0
        else:
            base += 32
    return _result(length, flags, frequency or xfrequency, combined, chains)


def _result(
    length: int, flags: int, frequency: int | None, combined: int | None, chains: list[tuple[int | None, int]]
) -> Radiotap:
    if combined == 0:
        combined = None  # 0 dBm means "not measured" from the drivers that write it
    if combined is None and chains:
        combined = max(dbm for _, dbm in chains)  # no combined figure: the strongest chain
    return Radiotap(length, flags, frequency, combined, tuple(chains))
