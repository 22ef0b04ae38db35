"""HyperLogLog: accuracy against exact counts, merging as union, and the wire form."""

from __future__ import annotations

import base64
import random
import zlib

import pytest

from shared.hyperloglog import HyperLogLog, SketchError


def hashes(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(64) for _ in range(n)]


def test_an_empty_sketch_counts_zero():
    assert HyperLogLog().count() == 0


@pytest.mark.parametrize("n", [1, 2, 10, 30])
def test_tiny_sets_are_counted_exactly(n):
    sketch = HyperLogLog()
    for h in hashes(n, n):
        sketch.add_hash(h)
    assert sketch.count() == n


@pytest.mark.parametrize("n", [100, 200, 500, 2_000])
def test_small_sets_are_within_the_linear_counting_error(n):
    # Linear counting's standard error is sqrt(m (e^t - t - 1)) / n with t = n / m: 1.1 % at 500.
    m = 4096
    t = n / m
    bound = 3 * (m * (2.718281828**t - t - 1)) ** 0.5 + 1
    for seed in range(5):
        sketch = HyperLogLog()
        for h in hashes(n, seed * 10_000 + n):
            sketch.add_hash(h)
        assert abs(sketch.estimate() - n) <= bound


@pytest.mark.parametrize(("n", "p"), [(1_000, 12), (5_000, 12), (20_000, 12), (60_000, 12), (20_000, 10), (20_000, 14)])
def test_larger_sets_are_within_three_standard_errors(n, p):
    sketch = HyperLogLog(p)
    for h in hashes(n, n + p):
        sketch.add_hash(h)
    error = 1.04 / (1 << p) ** 0.5
    assert abs(sketch.estimate() - n) / n < 3 * error


def test_adding_the_same_value_again_changes_nothing():
    sketch = HyperLogLog()
    for h in hashes(300, 1):
        sketch.add_hash(h)
    once = bytes(sketch.registers)
    for h in hashes(300, 1) * 4:
        sketch.add_hash(h)
    assert sketch.registers == once


def test_merge_counts_the_union_not_the_sum():
    a, b, union = HyperLogLog(), HyperLogLog(), HyperLogLog()
    shared_values = hashes(3_000, 7)
    for h in shared_values + hashes(2_000, 8):
        a.add_hash(h)
        union.add_hash(h)
    for h in shared_values + hashes(1_000, 9):
        b.add_hash(h)
        union.add_hash(h)
    merged = a.copy()
    merged.merge(b)
    assert merged.registers == union.registers
    assert abs(merged.estimate() - 6_000) / 6_000 < 0.05
    with pytest.raises(SketchError):
        a.merge(HyperLogLog(10))


def test_add_hashes_arbitrary_bytes():
    sketch = HyperLogLog()
    for n in range(500):
        sketch.add(f"device-{n}".encode())
        sketch.add(f"device-{n}".encode())
    assert abs(sketch.count() - 500) <= 15


def test_wire_round_trip_and_small_size():
    sketch = HyperLogLog()
    for h in hashes(100, 3):
        sketch.add_hash(h)
    wire = sketch.to_wire()
    assert wire["p"] == 12 and wire["estimate"] == sketch.count()
    assert len(wire["registers"]) < 600  # mostly empty registers compress well
    assert HyperLogLog.from_wire(wire).registers == sketch.registers


def packed(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data)).decode()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([], "sketch_not_an_object"),
        ({"p": 3, "registers": ""}, "precision_out_of_range"),
        ({"p": True, "registers": ""}, "precision_out_of_range"),
        ({"p": 12, "registers": 5}, "registers_invalid"),
        ({"p": 12, "registers": "!!!"}, "registers_invalid"),
        ({"p": 12, "registers": base64.b64encode(b"not zlib").decode()}, "registers_invalid"),
        ({"p": 12, "registers": packed(b"\x00" * 100)}, "registers_invalid"),
        ({"p": 12, "registers": packed(b"\x00" * 8192)}, "registers_invalid"),
        ({"p": 12, "registers": packed(b"\x40" * 4096)}, "registers_invalid"),
    ],
)
def test_bad_wire_sketches_are_refused_with_a_reason(value, reason):
    with pytest.raises(SketchError) as caught:
        HyperLogLog.from_wire(value)
    assert caught.value.reason == reason
