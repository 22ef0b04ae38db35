"""ESC/POS parser throughput, MB/s: the device samples concatenated, and generated Chinese receipts.

Each corpus is parsed whole in one feed, in 4 KiB reads (what a replay of a capture file does)
and in 64-byte reads (a serial port's typical read); the last figure runs the whole path a
receipt takes in the agent: parser, card-data redaction and profiles. Rates are per second of
the process's CPU time, which other work on a shared machine does not inflate; the wall-clock
median is printed beside it. The capture path adds what the POS source does in ``escpos`` mode
around that (sealing and journaling each read, building the records), as a ratio to the whole path
measured in the same run.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from bench.common import line, median
from edge_agent.journal import CaptureJournal
from edge_agent.parsing.escpos import EscposParser
from edge_agent.privacy import PanRedactor
from edge_agent.receipt_reader import ReceiptReader, builtin_profiles
from edge_agent.sources.pos_streams import EscposStream
from edge_agent.sources.serial_pos import SerialPosSource
from shared.crypto import Sealer
from tools.receipts import receipt

SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "samples" / "escpos"
TARGET = 10.0  # MB/s


def parse(data: bytes, read: int) -> tuple[float, float, int]:
    """CPU and wall seconds to parse ``data`` in reads of ``read`` bytes (0: one feed); receipts."""
    parser = EscposParser()
    cpu, wall = time.process_time(), time.perf_counter()
    if read:
        found = sum(len(parser.feed(data[i : i + read])) for i in range(0, len(data), read))
    else:
        found = len(parser.feed(data))
    found += len(parser.close())
    return time.process_time() - cpu, time.perf_counter() - wall, found


def read_all(data: bytes) -> tuple[float, float, int]:
    """CPU and wall seconds for the whole receipt path (parser, redaction, profiles) in 4 KiB reads."""
    reader = ReceiptReader(builtin_profiles(), PanRedactor(b"k" * 32))
    cpu, wall = time.process_time(), time.perf_counter()
    found = sum(len(reader.feed(data[i : i + 4096])) for i in range(0, len(data), 4096)) + len(reader.close())
    return time.process_time() - cpu, time.perf_counter() - wall, found


def capture_path(data: bytes) -> tuple[float, float, int]:
    """CPU and wall seconds for what the POS source does in ``pos.mode = "escpos"`` with each 4 KiB
    read: seal and journal it (no fsync: the disk is not what is measured), parse, redact, read the
    sale, build the event or quarantine record; records made."""
    records: list[object] = []
    with tempfile.TemporaryDirectory() as tmp:
        sealer = Sealer(bytes(32))
        journal = CaptureJournal(Path(tmp) / "pos.journal", sealer, "pos", fsync=False, preallocate=0)
        redactor = PanRedactor(b"k" * 32)
        profiles = builtin_profiles()
        source = SerialPosSource(
            url="loop://",
            baudrate=9600,
            journal=journal,
            emit=records.append,
            redactor=redactor,
            stream=lambda offset: EscposStream(offset, profiles=profiles, redactor=redactor, clock=time.time),
        )
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(0, len(data), 4096):
            source.feed(data[i : i + 4096])
            journal.committed = journal.end or 0  # as the writer's commits let the journal truncate
        elapsed = time.process_time() - cpu, time.perf_counter() - wall
        journal.close()
    return elapsed[0], elapsed[1], len(records)


def corpus(name: str, data: bytes, runs: int) -> None:
    size = len(data) / 1e6
    print(f"{name}: {len(data):,} bytes", flush=True)
    for label, read in (("one feed", 0), ("4 KiB reads", 4096), ("64-byte reads", 64)):
        timings = [parse(data, read) for _ in range(runs)]
        rates = [size / max(cpu, 1e-9) for cpu, _, _ in timings]
        wall = median([size / seconds for _, seconds, _ in timings])
        verdict = f"target ≥ {TARGET:g}: " + ("ok" if median(rates) >= TARGET else "BELOW TARGET")
        each = " · ".join(f"{r:.1f}" for r in rates)
        figures = f"{median(rates):6.1f} MB/s  (wall {wall:.1f}; runs {each}; {verdict})"
        line(f"parser, {label} ({timings[0][2]:,} receipts)", figures)
    timings = [read_all(data) for _ in range(max(1, runs // 2))]
    seconds = median([cpu for cpu, _, _ in timings])
    rate = f"{size / seconds:6.1f} MB/s, {timings[0][2] / seconds:,.0f} receipts/s"
    line("whole path: parser + redaction + profiles", rate)
    captured = [capture_path(data) for _ in range(max(1, runs // 2))]
    capture = median([cpu for cpu, _, _ in captured])
    figures = f"{size / capture:6.1f} MB/s, {captured[0][2] / capture:,.0f} receipts/s"
    line("capture path: + sealed journal + events", f"{figures} ({seconds / capture:.2f}x the whole path's rate)")


def main(runs: int = 5, receipts: int = 2000) -> None:
    """Print the figures; ``receipts`` generated Chinese receipts make the second corpus."""
    print("ESC/POS parser throughput (medians)", flush=True)
    files = sorted(SAMPLES.glob("*.bin"))
    if files:
        samples = b"".join(path.read_bytes() for path in files)
        # The samples are 100 KB; repeat them so one run is long enough to time.
        corpus(f"device samples ({len(files)} files) x 20", samples * 20, runs)
    else:
        print(f"  device samples not found at {SAMPLES}: skipped")
    rng = random.Random(1)
    chinese = b"".join(receipt(rng).data for _ in range(receipts))
    corpus(f"{receipts:,} generated Chinese receipts (GBK/GB18030, logos, QR codes)", chinese, runs)


if __name__ == "__main__":
    main()
