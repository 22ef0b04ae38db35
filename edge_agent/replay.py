"""`edge-agent parse` and `edge-agent capture`: a technician's tools for ESC/POS receipt printers.

``capture`` records what a POS sends its printer (a splitter, a USB-serial adapter or a virtual
port, any pyserial URL) to a file; ``parse`` replays such a file, or a pyserial ``spy://`` log,
through the same parser, card-data redaction and profiles the agent uses, and prints each
receipt's text and sale. A profile can so be written and checked without a till.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

from edge_agent.capture_file import CaptureError, read_capture, spy_rows
from edge_agent.parsing.escpos import MAX_RECEIPT_BYTES
from edge_agent.parsing.receipt_profile import ProfileError
from edge_agent.presence import dump as presence_dump
from edge_agent.privacy import PanRedactor
from edge_agent.receipt_reader import MAX_RECEIPT_PAUSE, ReceiptReader, ReceiptRecord, load_profiles

COMMANDS = ("parse", "capture")
PROG = "edge-agent"


def add_commands(sub: Any) -> None:
    """Register ``parse`` and ``capture`` on the ``edge-agent`` subcommand parser."""
    parse = sub.add_parser(
        "parse",
        help="Print the receipts and sales in an ESC/POS capture file.",
        description="Replay an ESC/POS capture (raw printer bytes, or a pyserial spy:// log) through the "
        "receipt parser, card-data redaction and profiles; print each receipt's text and sale.",
    )
    parse.add_argument("capture", type=Path, help="the capture file")
    parse.add_argument(
        "--kind",
        choices=["receipt", "scan", *presence_dump.KINDS],
        default="receipt",
        help="receipt: ESC/POS printer bytes (default); scan: scanner payloads, one a line (\\x1d escapes "
        "allowed); wifi: a pcap/pcapng file of 802.11 frames; ble: one hex advertisement or one bleak-style "
        "JSON record a line",
    )
    parse.add_argument(
        "--show-addresses",
        action="store_true",
        help="with --kind wifi or ble: print device addresses as captured (output only; default hashed)",
    )
    parse.add_argument("--profile", help="use only this profile (default: the first whose patterns match)")
    parse.add_argument(
        "--profiles",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="a profile file or a folder of *.toml profiles to add (repeatable); "
        "it replaces a built-in profile of the same name",
    )
    parse.add_argument("--json", action="store_true", help="one JSON object per receipt (frame, advertisement) a line")
    parse.add_argument(
        "--kanji",
        choices=["auto", "on", "off"],
        default="auto",
        help="the printer's Chinese double-byte mode after a reset: on (Chinese models), off (Epson), "
        "auto (decide from the stream; default)",
    )
    parse.add_argument(
        "--idle-gap",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="in a spy:// log, a pause this long ends the receipt in progress, unless the stream frames its "
        "receipts with a reset and a cut (default 2)",
    )
    parse.add_argument(
        "--max-receipt-pause",
        type=float,
        default=MAX_RECEIPT_PAUSE,
        metavar="SECONDS",
        help=f"in a spy:// log, a pause this long ends even a framed receipt (default {MAX_RECEIPT_PAUSE:g})",
    )
    parse.add_argument(
        "--max-receipt-bytes",
        type=int,
        default=MAX_RECEIPT_BYTES,
        metavar="BYTES",
        help=f"printer bytes a receipt may span before it is cut into pieces (default {MAX_RECEIPT_BYTES})",
    )
    capture = sub.add_parser(
        "capture",
        help="Record what a POS sends its receipt printer to a file.",
        description="Read a pyserial port and write every byte to a file until Ctrl-C (or --duration). The file "
        "holds what the till printed, card numbers in clear included: it is created readable by its owner only "
        "(0600), and an existing file is refused unless --force is given.",
    )
    capture.add_argument("--port", required=True, help="pyserial URL: /dev/ttyUSB0, a pty path, socket://host:port")
    capture.add_argument("--out", required=True, type=Path, help="file to write (a new one, mode 0600)")
    capture.add_argument(
        "--force", action="store_true", help="replace --out if it exists (default: refuse, keeping the earlier capture)"
    )
    capture.add_argument("--baudrate", type=int, default=9600)
    capture.add_argument(
        "--format",
        choices=["raw", "spy"],
        default="raw",
        help="raw bytes (default), or pyserial's spy:// hexdump with the time of each read, which keeps idle gaps",
    )
    capture.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds")


def run(args: argparse.Namespace) -> int:
    """Run ``parse`` or ``capture``; the exit status."""
    if args.command == "parse" and args.kind in presence_dump.KINDS:
        return presence_dump.run(args.capture, args.kind, args.json, args.show_addresses)
    return _parse(args) if args.command == "parse" else _capture(args)


def _parse(args: argparse.Namespace) -> int:
    if args.kind == "scan":
        from edge_agent.till.scan_file import print_scans

        return print_scans(args.capture, as_json=args.json)
    try:
        profiles = load_profiles(args.profiles)
    except ProfileError as exc:
        print(f"{PROG}: profile error: {exc}", file=sys.stderr)
        return 2
    if args.profile and args.profile not in {p.name for p in profiles}:
        known = ", ".join(sorted(p.name for p in profiles))
        print(f"{PROG}: no profile named {args.profile!r} (known: {known}); add one with --profiles", file=sys.stderr)
        return 2
    try:
        reads = read_capture(args.capture)
    except CaptureError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    # The hashes of redacted card numbers only need to compare equal within one run.
    reader = ReceiptReader(
        profiles,
        PanRedactor(os.urandom(32)),
        only=args.profile,
        kanji=args.kanji,
        max_receipt_bytes=args.max_receipt_bytes,
    )
    show: Callable[[int, ReceiptRecord], None] = _print_json if args.json else _print_text
    counts: Counter[str] = Counter()
    previous: float | None = None
    number = 0
    for read in reads:
        records = []
        gap = read.at - previous if read.at is not None and previous is not None else 0.0
        if gap >= args.idle_gap:
            records += reader.idle()
        if gap >= args.max_receipt_pause:
            records += reader.expire()
        previous = read.at
        records += reader.feed(read.data)
        for record in records:
            number += 1
            counts[record.error or "sale"] += 1
            show(number, record)
    for record in reader.close():
        number += 1
        counts[record.error or "sale"] += 1
        show(number, record)
    summary = ", ".join(f"{reason}: {n}" for reason, n in sorted(counts.items()))
    print(f"{args.capture}: {number} receipts ({summary or 'none'})", file=sys.stderr)
    return 0


def _print_json(number: int, record: ReceiptRecord) -> None:
    print(json.dumps(record.as_json(), ensure_ascii=False), flush=True)


def _print_text(number: int, record: ReceiptRecord) -> None:
    printed = record.printed
    extras = [f"ended by {printed.ended_by}"] + ([f"{printed.images} image(s)"] if printed.images else [])
    print(f"=== receipt {number} (bytes {printed.start}-{printed.end}, {', '.join(extras)}) ===")
    for line in printed.lines:
        print(f"  {line}")
    for code in printed.codes:
        print(f"  [{code.symbology}] {code.data}")
    if printed.warnings:
        print(f"  printer stream warnings: {', '.join(printed.warnings)}")
    if record.sale is None:
        print(f"--- no sale: {record.error}")
        return
    sale = record.sale.as_dict()
    print(f"--- sale (profile {sale.pop('profile')})")
    items, warnings = sale.pop("items"), sale.pop("warnings")
    for key, value in sale.items():
        if value is not None:
            print(f"  {key:<15} {value}")
    for item in items:
        sku = f" [{item['sku']}]" if item["sku"] else ""
        print(f"  item            {item['name']}{sku}: {item['qty']} x {item['unit_price']} = {item['amount']}")
    if warnings:
        print(f"  warnings        {', '.join(warnings)}")


def _capture(args: argparse.Namespace) -> int:
    import serial

    from edge_agent.sources.serial_pos import open_port

    if os.path.lexists(args.out) and not args.force:  # before the port is opened: nothing to undo
        print(f"{PROG}: {_exists(args.out)}", file=sys.stderr)
        return 1
    try:
        port = open_port(args.port, args.baudrate)
    except (serial.SerialException, OSError, ValueError) as exc:
        print(
            f"{PROG}: cannot open {args.port}: {exc}. Check the URL, the cable, and that no other program "
            "(the agent service?) holds the port; the user needs to be in the dialout group.",
            file=sys.stderr,
        )
        return 1
    try:
        out = _create_capture(args.out, replace=args.force)
    except FileExistsError:  # it appeared while the port was being opened
        port.close()
        print(f"{PROG}: {_exists(args.out)}", file=sys.stderr)
        return 1
    except OSError as exc:
        port.close()
        print(f"{PROG}: cannot create {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    stop = False

    def stopping(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stopping)
    started = time.monotonic()
    total = reads = 0
    try:
        with out:
            print(f"capturing {args.port} to {args.out} (Ctrl-C to stop)", file=sys.stderr, flush=True)
            while not stop and not (args.duration and time.monotonic() - started >= args.duration):
                data = port.read(1)  # waits up to the port's timeout, so a stop request is seen
                if not data:
                    continue
                data += port.read(port.in_waiting)
                total, reads = total + len(data), reads + 1
                out.write(data if args.format == "raw" else spy_rows(time.monotonic() - started, data).encode())
                out.flush()
    except OSError as exc:
        print(f"{PROG}: capture stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        port.close()
    print(f"captured {total} bytes in {reads} reads to {args.out}", file=sys.stderr)
    return 0


def _exists(out: Path) -> str:
    """Why a capture is refused when its file is there already."""
    return f"{out} already exists: give another --out, or add --force to replace it"


def _create_capture(out: Path, *, replace: bool) -> BinaryIO:
    """Open ``out`` for a capture, owner-only (0600) as the agent's own files holding card data are.

    Without ``replace`` the file must be new (FileExistsError otherwise), so an earlier capture is
    never truncated; with it, an existing file is emptied and its mode set to 0600 too. A symbolic
    link is never followed.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if replace else os.O_EXCL)
    fd = os.open(out, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")
