"""HyperLogLog distinct counts that merge: agents count devices per hour, central unions them per store.

Flajolet et al., "HyperLogLog: the analysis of a near-optimal cardinality estimation algorithm"
(2007), with a 64-bit hash (so no large-range correction) and linear counting for small sets. With
``p = 12`` (4,096 one-byte registers) the standard error is 1.04 / sqrt(4096) = 1.6 %, and counts
below a few thousand are nearly exact. On the wire a sketch is
``{"p": 12, "registers": base64(zlib(registers)), "estimate": n}``; the estimate is informative.

Inputs to :meth:`HyperLogLog.add_hash` must already be uniform 64-bit values (presence pseudonyms
are HMAC outputs); :meth:`HyperLogLog.add` hashes arbitrary bytes first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import zlib
from typing import Any

MIN_P = 4
MAX_P = 16
_MASK64 = (1 << 64) - 1


class SketchError(ValueError):
    """A wire sketch that cannot be used; ``reason`` is a stable code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _alpha(m: int) -> float:
    if m == 16:
        return 0.673
    if m == 32:
        return 0.697
    if m == 64:
        return 0.709
    return 0.7213 / (1 + 1.079 / m)


class HyperLogLog:
    """A mergeable distinct-count sketch of 2**p registers."""

    __slots__ = ("_rank_bits", "_rest_mask", "_shift", "p", "registers")

    def __init__(self, p: int = 12, registers: bytes | bytearray | None = None) -> None:
        if not MIN_P <= p <= MAX_P:
            raise SketchError("precision_out_of_range")
        self.p = p
        self._shift = 64 - p
        self._rest_mask = (1 << self._shift) - 1
        self._rank_bits = self._shift + 1
        if registers is None:
            self.registers = bytearray(1 << p)
        else:
            if len(registers) != 1 << p or max(registers, default=0) > self._rank_bits:
                raise SketchError("registers_invalid")
            self.registers = bytearray(registers)

    def add_hash(self, value: int) -> None:
        """Count one uniformly distributed 64-bit value."""
        value &= _MASK64
        index = value >> self._shift
        rank = self._rank_bits - (value & self._rest_mask).bit_length()
        if rank > self.registers[index]:
            self.registers[index] = rank

    def add(self, item: bytes) -> None:
        """Count arbitrary bytes (hashed with BLAKE2b first)."""
        self.add_hash(int.from_bytes(hashlib.blake2b(item, digest_size=8).digest(), "big"))

    def merge(self, other: HyperLogLog) -> None:
        """Make this sketch count the union of both."""
        if other.p != self.p:
            raise SketchError("precision_mismatch")
        self.registers = bytearray(map(max, self.registers, other.registers))

    def copy(self) -> HyperLogLog:
        """An independent sketch with the same registers."""
        return HyperLogLog(self.p, self.registers)

    def estimate(self) -> float:
        """The estimated number of distinct values counted."""
        m = len(self.registers)
        total = 0.0
        for rank in range(max(self.registers) + 1):
            count = self.registers.count(rank)
            if count:
                total += count * 2.0**-rank
        raw = _alpha(m) * m * m / total
        zeros = self.registers.count(0)
        if raw <= 2.5 * m and zeros:
            return m * math.log(m / zeros)  # linear counting: exact-ish while most registers are empty
        return raw

    def count(self) -> int:
        """The estimate rounded to a whole number."""
        return round(self.estimate())

    def to_wire(self) -> dict[str, Any]:
        """The JSON form: precision, compressed registers and the estimate."""
        packed = base64.b64encode(zlib.compress(bytes(self.registers), 9)).decode("ascii")
        return {"p": self.p, "registers": packed, "estimate": self.count()}

    @classmethod
    def from_wire(cls, value: Any) -> HyperLogLog:
        """Rebuild a sketch from :meth:`to_wire`'s form; raise SketchError with a reason otherwise."""
        if not isinstance(value, dict):
            raise SketchError("sketch_not_an_object")
        p = value.get("p")
        packed = value.get("registers")
        if not isinstance(p, int) or isinstance(p, bool) or not MIN_P <= p <= MAX_P:
            raise SketchError("precision_out_of_range")
        if not isinstance(packed, str) or len(packed) > 4 * (1 << p):
            raise SketchError("registers_invalid")
        try:
            inflater = zlib.decompressobj()
            raw = inflater.decompress(base64.b64decode(packed, validate=True), (1 << p) + 1)
        except (binascii.Error, zlib.error) as exc:
            raise SketchError("registers_invalid") from exc
        return cls(p, raw)
