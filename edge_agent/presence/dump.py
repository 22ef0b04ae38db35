"""``edge-agent parse FILE --kind wifi|ble``: what the presence parsers make of a capture, for technicians.

``wifi`` reads a pcap or pcapng file (one object per frame); ``ble`` reads a dump with one
advertisement a line, either hex AD structures or a bleak-style JSON record (one object per line).
Addresses and rotating identifiers are printed as ``h:`` and a keyed hash whose key is drawn for
this run only (the same device keeps its hash within one run), unless ``--show-addresses`` is given.
Nothing is stored: this is output only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.parsing.ble import BleDecoded, BleRejected, decode_hex, decode_record
from edge_agent.parsing.pcap import CaptureProblem
from edge_agent.parsing.wifi import CapturedFrame, ProbeRequest, frames_of_capture

KINDS = ("wifi", "ble")
PROG = "edge-agent"
_IDENTIFYING = frozenset({"rolling_proximity_identifier", "eid"})  # rotating ids name a device like an address


class _Addresses:
    """Shows an identifier raw, or as a hash keyed for this run only."""

    def __init__(self, show: bool) -> None:
        self._show = show
        self._key = os.urandom(32)

    def __call__(self, value: str | bytes) -> str:
        if self._show:
            return value if isinstance(value, str) else value.hex()
        raw = value.lower().encode() if isinstance(value, str) else value
        return "h:" + hmac.digest(self._key, raw, hashlib.sha256)[:8].hex()


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def wifi_object(item: CapturedFrame | CaptureProblem, address: Callable[[str | bytes], str]) -> dict[str, Any]:
    """The JSON object printed for one frame (or one problem) of a Wi-Fi capture."""
    if isinstance(item, CaptureProblem):
        return {"problem": item.reason, "detail": item.detail, "offset": item.offset, "fatal": item.fatal}
    out: dict[str, Any] = {
        "frame": item.number,
        "time": datetime.fromtimestamp(item.timestamp_ns / 1e9, UTC).isoformat(timespec="microseconds"),
    }
    result = item.result
    if not isinstance(result, ProbeRequest):
        return {**out, "probe_request": False, "reason": result.reason, "detail": result.detail}
    return {
        **out,
        "probe_request": True,
        "address": address(result.source),
        "randomized": result.locally_administered,
        "ssid": _text(result.ssid),
        "ssid_hex": result.ssid.hex(),
        "frequency_mhz": result.frequency_mhz,
        "signal_dbm": result.signal_dbm,
        "antenna_signals": [list(pair) for pair in result.antenna_signals],
        "sequence": result.sequence,
    }


def _frame_fields(frame: Any, address: Callable[[str | bytes], str]) -> dict[str, Any]:
    fields: dict[str, Any] = {"kind": frame.kind}
    for f in dataclasses.fields(frame):
        value = getattr(frame, f.name)
        if f.name in _IDENTIFYING:
            value = address(value)
        elif isinstance(value, bytes):
            value = value.hex()
        fields[f.name] = value
    return fields


def ble_object(number: int, line: str, address: Callable[[str | bytes], str]) -> dict[str, Any]:
    """The JSON object printed for one line of a BLE dump."""
    text = line.strip()
    result: BleDecoded | BleRejected
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            result = BleRejected("bad_record", "the line starts like JSON but is not JSON")
        else:
            result = (
                decode_record(record)
                if isinstance(record, dict)
                else BleRejected("bad_record", "a JSON line must hold one object")
            )
    else:
        result = decode_hex(text)
    if isinstance(result, BleRejected):
        return {"line": number, "beacon": False, "reason": result.reason, "detail": result.detail}
    return {
        "line": number,
        "beacon": True,
        "address": None if result.address is None else address(result.address),
        "rssi": result.rssi,
        "frames": [_frame_fields(frame, address) for frame in result.frames],
        "problems": list(result.problems),
    }


def run(path: Path, kind: str, as_json: bool, show_addresses: bool) -> int:
    """Print one line per frame or advertisement; a summary on stderr; the exit status."""
    address = _Addresses(show_addresses)
    counts: Counter[str] = Counter()
    try:
        if kind == "wifi":
            objects = (wifi_object(item, address) for item in frames_of_capture(path.read_bytes()))
        else:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            objects = (ble_object(n, line, address) for n, line in enumerate(lines, 1) if line.strip())
        for obj in objects:
            counts[_outcome(obj)] += 1
            print(json.dumps(obj, ensure_ascii=False) if as_json else _text_line(obj), flush=True)
    except OSError as exc:
        print(f"{PROG}: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    summary = ", ".join(f"{reason}: {n}" for reason, n in sorted(counts.items()))
    print(
        f"{path}: {sum(counts.values())} {'frames' if kind == 'wifi' else 'lines'} ({summary or 'none'})",
        file=sys.stderr,
    )
    return 0


def _outcome(obj: dict[str, Any]) -> str:
    if "problem" in obj:
        return str(obj["problem"])
    if obj.get("probe_request") or obj.get("beacon"):
        return "probe_request" if "probe_request" in obj else "beacon"
    return str(obj.get("reason"))


def _text_line(obj: dict[str, Any]) -> str:
    if "problem" in obj:
        return f"problem {obj['problem']}: {obj['detail']}"
    label = f"frame {obj['frame']}" if "frame" in obj else f"line {obj['line']}"
    if obj.get("probe_request"):
        ssid = obj["ssid"] if obj["ssid"] is not None else "hex:" + obj["ssid_hex"]
        return (
            f"{label}: probe request from {obj['address']}{' (randomized)' if obj['randomized'] else ''}"
            f" for {ssid or '(any network)'} at {obj['frequency_mhz']} MHz, {obj['signal_dbm']} dBm"
        )
    if obj.get("beacon"):
        kinds = ", ".join(frame["kind"] for frame in obj["frames"])
        return f"{label}: {kinds}" + (f" from {obj['address']}" if obj["address"] else "")
    return f"{label}: {obj['reason']} {obj.get('detail', '')}".rstrip()
