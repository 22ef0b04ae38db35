"""Looking for full card numbers, track data and CVV codes in files, logs and database dumps.

A card number is what privacy.py treats as one, looked for more loosely: any 13-19 digits, each
group split by at most one space or dash, that pass the Luhn check. Redaction tokens hold no digit
but the last four, so they never match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from edge_agent.privacy import luhn_valid

# A "+" before the digits makes them an E.164 phone number (+8613812345678), never a card.
CARD_LIKE = re.compile(r"(?<![0-9+])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
# Event ids (UUIDs) are kept in clear; a group of one can be all digits without being a card. So are
# hex digests (the audit chain's SHA-256 row hashes), where a Luhn-valid run of 13+ decimal digits
# turns up in about one hash in 220.
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HEX_DIGEST = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{32,}(?![0-9A-Za-z])")
RUN = re.compile(r"[0-9]{13,}")
TRACK_OR_CVV = re.compile(r";[0-9]{13,19}=[0-9]{4}|%B[0-9]{13,19}\^|CVV:[0-9]{3}")


def card_numbers(text: str) -> list[str]:
    """Every Luhn-valid 13-19 digit run in ``text`` (spaces and dashes allowed between digits)."""
    found = []
    for match in CARD_LIKE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(match.group(0))
    return found


def leaks(text: str, secrets: Iterable[str] = (), *, any_card: bool = True) -> list[str]:
    """Track data, CVV codes, any of ``secrets`` (digits only) and, with ``any_card``, every
    Luhn-valid card-like number found in ``text``."""
    text = HEX_DIGEST.sub("-", UUID.sub("-", text))
    found = (card_numbers(text) if any_card else []) + TRACK_OR_CVV.findall(text)
    wanted = secrets if isinstance(secrets, set) else set(secrets)
    if wanted:
        for run in RUN.findall(re.sub(r"[ -]", "", text)):
            found += [
                run[i : i + size]
                for size in range(13, 20)
                for i in range(len(run) - size + 1)
                if run[i : i + size] in wanted
            ]
    return found


def scan_files(paths: Iterable[Path], secrets: Iterable[str] = (), *, any_card: bool = True) -> dict[str, list[str]]:
    """{file: what leaked} over every file under ``paths`` (bytes read as Latin-1, UTF-8 and GB18030).

    A database file stores the fields of a row side by side, so a timestamp, a store id and a
    receipt number can run together into a digit string that passes the Luhn check by chance:
    scan those with ``any_card=False`` (the seeded numbers, track data and CVVs only) and scan
    their rows value by value instead.
    """
    secrets = set(secrets)
    out: dict[str, list[str]] = {}
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for file in files:
            data = file.read_bytes()
            found: list[str] = []
            for codec in ("latin-1", "utf-8", "gb18030"):
                found += leaks(data.decode(codec, "replace"), secrets, any_card=any_card)
            if found:
                out[str(file)] = sorted(set(found))
    return out
