"""Printer bytes to receipt records: the ESC/POS parser, card-data redaction, then the profiles.

This is the one path from a POS printer stream to what the agent keeps, used by
``edge-agent parse`` on a capture file and by a live ESC/POS source alike. Card data is
removed here, before a record exists: track data and CVV codes are dropped and every Luhn-valid
card number in the text or in a printed code is redacted (privacy.py), so neither profiles nor
anything downstream ever sees one. A receipt number that only looks like one (Luhn-valid, but led by
digits no card network issues) is given back once the profile has found it.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from edge_agent.parsing.escpos import (
    IDLE_SPLIT,
    IMPLAUSIBLE,
    LONG_PAUSE,
    MAX_RECEIPT_BYTES,
    TOO_LARGE,
    Code,
    EscposParser,
    Kanji,
    PrintedReceipt,
)
from edge_agent.parsing.receipt_profile import Profile, ProfileError, parse_profile
from edge_agent.parsing.receipt_sale import Sale, SaleError, read_sale, receipt_starts
from edge_agent.privacy import TOKEN, PanRedactor, card_issuer_prefix, drop_card_secrets


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """A printed receipt (card data removed) and the sale read from it, or why there is none."""

    printed: PrintedReceipt
    sale: Sale | None
    error: str | None
    printer_bytes: bytes | None = None  # what the printer was sent for it, card data removed; None if not kept

    def as_json(self) -> dict[str, Any]:
        """``{text_lines, codes, sale | error, ...}`` as ``edge-agent parse --json`` prints it."""
        out: dict[str, Any] = {
            "text_lines": list(self.printed.lines),
            "codes": [{"symbology": c.symbology, "data": c.data} for c in self.printed.codes],
        }
        if self.sale is not None:
            out["sale"] = self.sale.as_dict()
        else:
            out["error"] = self.error
        out["ended_by"] = self.printed.ended_by
        out["bytes"] = [self.printed.start, self.printed.end]
        out["images"] = self.printed.images
        out["warnings"] = list(self.printed.warnings)
        return out


# A card-number token as PanRedactor.raw writes it into printer bytes (UTF-8), and as kept here:
# ASCII, so that it reads the same in whatever code page or double-byte mode the bytes are decoded.
_RAW_TOKEN = re.compile(rb"\[PAN \xe2\x80\xa6([0-9]{4}) #([a-p]{16})\]")
_KEPT_TOKEN = re.compile(r"\[PAN \.\.\.([0-9]{4}) #([a-p]{16})\]")


def redact_printer_bytes(data: bytes, redactor: PanRedactor) -> bytes:
    """Printer bytes with track data and CVV codes dropped and card numbers redacted, tokens in ASCII."""
    return _RAW_TOKEN.sub(rb"[PAN ...\1 #\2]", redactor.raw(data))


def restore_tokens(printed: PrintedReceipt) -> PrintedReceipt:
    """A receipt parsed from :func:`redact_printer_bytes` output, its card tokens as text redaction writes them."""

    def fix(text: str) -> str:
        return _KEPT_TOKEN.sub(r"[PAN …\1 #\2]", text) if "[PAN ..." in text else text

    return replace(
        printed,
        lines=tuple(fix(line) for line in printed.lines),
        codes=tuple(Code(c.symbology, fix(c.data)) for c in printed.codes),
    )


def redact(printed: PrintedReceipt, redactor: PanRedactor, keep: Container[str] = ()) -> PrintedReceipt:
    """The receipt with track data and CVV codes dropped and card numbers redacted (but ``keep``)."""

    def clean(text: str) -> str:
        return redactor.text(drop_card_secrets(text), keep)

    return replace(
        printed,
        lines=tuple(clean(line) for line in printed.lines),
        codes=tuple(Code(c.symbology, clean(c.data)) for c in printed.codes),
    )


def read_record(clean: PrintedReceipt, profiles: Sequence[Profile], only: str | None = None) -> ReceiptRecord:
    """The sale the profiles read from a receipt whose card data is gone, or why there is none.

    A piece of a receipt that reached the parser's size limit is kept as ``receipt_too_large`` without
    reading a sale from it, and so is a framed receipt a pause ended (``receipt_pause_too_long``): its
    cut never came, so what it printed may not be all of it. One without a sale that held a command no
    printer accepts is kept as ``implausible_command``: garbage on the line, not a layout a profile
    should learn; the rest of a receipt a pause ended (``receipt_pause_too_long``), or a piece of one an
    idle gap split in earlier releases (``idle_gap_split``), as that, ``edge-agent reparse`` rejoining
    them. The same reasons hold when ``edge-agent reparse`` reads a quarantined receipt again.
    """
    if TOO_LARGE in clean.warnings:
        return ReceiptRecord(clean, None, TOO_LARGE)
    if clean.ended_by == "pause":
        return ReceiptRecord(clean, None, LONG_PAUSE)
    try:
        return ReceiptRecord(clean, read_sale(clean.lines, profiles, only), None)
    except SaleError as exc:
        garbage = any(w.startswith(IMPLAUSIBLE) for w in clean.warnings)
        split = next((w for w in (LONG_PAUSE, IDLE_SPLIT) if w in clean.warnings), None)
        reason = "implausible_command" if garbage else split or exc.reason
        return ReceiptRecord(clean, None, reason)


SPLIT = "receipts_without_cut"
"""The warning on each of the receipts a till printed one after another with no cut or reset between."""
MAX_RECEIPT_PAUSE = 600.0
"""Seconds a framed receipt stays open across a pause (``pos.max_receipt_pause``) before it ends."""


class ReceiptReader:
    """Feeds a printer stream through the parser and turns each receipt into a record.

    Each record carries the printer bytes of its receipt, card data removed (privacy.py), so a
    quarantined receipt can be read again from what the printer was sent (``edge-agent reparse``).
    A receipt spans at most ``max_receipt_bytes`` of them (the parser ends it there), and the reader
    keeps no more than that.
    """

    def __init__(
        self,
        profiles: Sequence[Profile],
        redactor: PanRedactor,
        *,
        only: str | None = None,
        kanji: Kanji = "auto",
        start_offset: int = 0,
        max_receipt_bytes: int = MAX_RECEIPT_BYTES,
    ) -> None:
        self.profiles = list(profiles)
        self.redactor = redactor
        self.only = only
        self.parser = EscposParser(kanji=kanji, start_offset=start_offset, max_receipt_bytes=max_receipt_bytes)
        self._raw_kept = max_receipt_bytes
        self._raw = bytearray()  # the latest printer bytes, from stream offset _raw_start
        self._raw_start = start_offset

    def feed(self, data: bytes) -> list[ReceiptRecord]:
        """Records for the receipts ``data`` completes."""
        self._raw += data
        return self._records(self.parser.feed(data))

    def idle(self) -> list[ReceiptRecord]:
        """The port went quiet: the receipt in progress, if any, is complete."""
        return self._records(self.parser.idle())

    def expire(self) -> list[ReceiptRecord]:
        """The port stayed quiet for the longest pause: a framed receipt held open ends (``receipt_pause_too_long``)."""
        return self._records(self.parser.expire())

    def close(self) -> list[ReceiptRecord]:
        """The stream ended."""
        return self._records(self.parser.close())

    def skip(self, data: bytes) -> int:
        """Parse ``data`` that cannot be kept, so state and offsets stay right; how many receipts it ended."""
        ended = len(self.parser.feed(data))
        self._raw.clear()
        self._raw_start = self.parser.offset
        return ended

    def _records(self, printed: list[PrintedReceipt]) -> list[ReceiptRecord]:
        out = [record for p in printed for record in self._split(p)]
        if printed:  # what is before the last receipt's end is no receipt's any more
            del self._raw[: max(0, printed[-1].end - self._raw_start)]
            self._raw_start = max(self._raw_start, printed[-1].end)
        if len(self._raw) > self._raw_kept:
            cut = len(self._raw) - self._raw_kept
            del self._raw[:cut]
            self._raw_start += cut
        return out

    def _split(self, printed: PrintedReceipt) -> list[ReceiptRecord]:
        """The records of one printed receipt: two or more if the till printed them with no cut or reset
        between (:func:`receipt_starts`), each part warned ``receipts_without_cut``."""
        clean = redact(printed, self.redactor)
        starts = receipt_starts(clean.lines, self.profiles, self.only)
        if len(starts) == 1:
            return [self.record(printed, self._printer_bytes(printed), clean=clean)]
        warnings = (*printed.warnings, SPLIT)
        ends = [*starts[1:], len(printed.lines)]
        parts = []
        for number, (start, end) in enumerate(zip(starts, ends, strict=True)):
            lines = list(printed.lines[start:end])
            while lines and not lines[-1]:
                lines.pop()
            last = number == len(starts) - 1  # where the printed codes go: which part printed them is unknown
            part = replace(printed, lines=tuple(lines), codes=printed.codes if last else (), warnings=warnings)
            parts.append(self.record(part))  # no printer bytes: every part would hold them all
        return parts

    def _printer_bytes(self, printed: PrintedReceipt) -> bytes | None:
        if printed.start < self._raw_start:
            return None  # its start was let go of
        raw = bytes(self._raw[printed.start - self._raw_start : printed.end - self._raw_start])
        return raw if len(raw) == printed.end - printed.start else None

    def record(
        self, printed: PrintedReceipt, printer_bytes: bytes | None = None, *, clean: PrintedReceipt | None = None
    ) -> ReceiptRecord:
        """Redact one printed receipt and read its sale (:func:`read_record`).

        A receipt number that redaction took for a card number is given back when no card network
        issues numbers starting like it (:meth:`receipt_number`). The ``printer_bytes`` of a receipt
        without a sale, receipt number or total are kept on the record, card data removed from them
        (:func:`redact_printer_bytes`). ``clean`` is ``printed`` already redacted, if at hand.
        """
        record = self._read(printed, clean or redact(printed, self.redactor))
        sale = record.sale
        if printer_bytes is None or (sale is not None and sale.receipt_no and sale.total):
            return record  # only a receipt that will be quarantined needs its bytes
        return replace(record, printer_bytes=redact_printer_bytes(printer_bytes, self.redactor))

    def _read(self, printed: PrintedReceipt, clean: PrintedReceipt) -> ReceiptRecord:
        first = read_record(clean, self.profiles, self.only)
        sale = first.sale
        if sale is None:
            return first
        keep = self.receipt_number(printed, clean, sale)
        if keep:
            again = redact(printed, self.redactor, keep)
            try:
                second: Sale | None = read_sale(again.lines, self.profiles, self.only)
            except SaleError:
                second = None
            if second is not None and second.receipt_no:  # the profile reads the number as printed too
                return ReceiptRecord(again, second, None)
        return ReceiptRecord(clean, sale, None)

    def receipt_number(self, printed: PrintedReceipt, clean: PrintedReceipt, sale: Sale) -> frozenset[str]:
        """The digits of the receipt number if redaction replaced it though it cannot be a card.

        The profile found the number in the receipt-number field (单号, 流水号...); it is a Luhn-valid
        13-19 digit run, so it was redacted. It is kept (in every line and code that prints it)
        only if no payment network issues card numbers starting like it (privacy.card_issuer_prefix):
        anything else could be a real card printed there, and stays a token.
        """
        tokens = set(TOKEN.findall(sale.receipt_no or ""))
        if not tokens:
            return frozenset()
        found: dict[str, str] = {}
        for line, redacted in zip(printed.lines, clean.lines, strict=True):
            if any(token in redacted for token in tokens):
                found.update(self.redactor.found(drop_card_secrets(line)))
        return frozenset(d for token, d in found.items() if token in tokens and not card_issuer_prefix(d))


def builtin_profiles() -> list[Profile]:
    """The profiles shipped in ``edge_agent/profiles/*.toml``."""
    folder = resources.files("edge_agent") / "profiles"
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".toml")), key=lambda e: e.name)
    return _unique([parse_profile(e.read_text(encoding="utf-8"), f"edge_agent/profiles/{e.name}") for e in entries])


def load_profiles(paths: Iterable[Path], *, with_builtin: bool = True) -> list[Profile]:
    """Built-in profiles plus those in ``paths`` (files or folders of ``*.toml``); a later name wins.

    Raises ProfileError naming the file, line, column and reason of the first problem.
    """
    found = builtin_profiles() if with_builtin else []
    for path in paths:
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            raise ProfileError(str(path), 0, 0, "no *.toml profiles in this folder")
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ProfileError(str(file), 0, 0, f"cannot read: {exc}") from None
            profile = parse_profile(text, str(file))
            found = [p for p in found if p.name != profile.name] + [profile]
    return _unique(found)


def _unique(profiles: list[Profile]) -> list[Profile]:
    seen: dict[str, Profile] = {}
    for profile in profiles:
        if profile.name in seen:
            other = seen[profile.name].source
            raise ProfileError(profile.source, 1, 1, f"name {profile.name!r} is also used by {other}")
        seen[profile.name] = profile
    return profiles


def configured_profiles(profiles_dir: str, profile: str) -> list[Profile]:
    """The profiles ``pos.profiles_dir`` and ``pos.profile`` call for; ProfileError names any problem."""
    profiles = load_profiles([Path(profiles_dir)] if profiles_dir else [])
    if profile and profile not in {p.name for p in profiles}:
        known = ", ".join(sorted(p.name for p in profiles))
        where = profiles_dir or "pos.profiles_dir (unset)"
        raise ProfileError(where, 0, 0, f"pos.profile names {profile!r}, which is not a profile (known: {known})")
    return profiles
