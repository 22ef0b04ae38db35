"""Keyboard-wedge scanners: Linux input events in, scanned payloads out.

A wedge scanner types its payload as key presses and ends it with Enter. The kernel hands each
key over as ``struct input_event`` (x86_64: ``struct timeval`` as two longs, type u16, code u16,
value s32; 24 bytes), with ``EV_MSC/MSC_SCAN`` (the USB HID usage) before and ``EV_SYN`` after
each key. A USB HID keyboard pressing A (``umockdev`` recording of a 05f3:0007 keyboard)::

    EV_MSC MSC_SCAN 0x70004   EV_KEY KEY_A 1   EV_SYN   ...   EV_KEY KEY_A 0   EV_SYN

Which character a key code means depends on the keyboard layout the scanner emulates: a scanner
set to US on a French (AZERTY) till types digits with Shift held. Layouts are data below.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

EV_SYN, EV_KEY, EV_MSC = 0, 1, 4
KEY_LEFTSHIFT, KEY_RIGHTSHIFT, KEY_CAPSLOCK = 42, 54, 58
KEY_ENTER, KEY_KPENTER, KEY_TAB = 28, 96, 15
_EVENT = struct.Struct("llHHi")
EVENT_SIZE = _EVENT.size


@dataclass(frozen=True, slots=True)
class InputEvent:
    """One ``struct input_event``."""

    sec: int
    usec: int
    type: int
    code: int
    value: int


def parse_events(data: bytes) -> tuple[list[InputEvent], bytes]:
    """The whole events in ``data`` and the bytes of a partial one left over."""
    whole = len(data) - len(data) % EVENT_SIZE
    return [InputEvent(*fields) for fields in _EVENT.iter_unpack(data[:whole])], data[whole:]


def _rows(first: int, normal: str, shifted: str) -> dict[int, tuple[str, str]]:
    return {first + i: (n, s) for i, (n, s) in enumerate(zip(normal, shifted, strict=True))}


# Linux key codes (input-event-codes.h) to (character, character with Shift), by layout.
_KEYPAD = _rows(71, "789-456+1230.", "789-456+1230.") | {55: ("*", "*"), 98: ("/", "/")}
US = (
    _rows(2, "1234567890-=", "!@#$%^&*()_+")
    | _rows(16, "qwertyuiop[]", "QWERTYUIOP{}")
    | _rows(30, "asdfghjkl;'`", 'ASDFGHJKL:"~')
    | _rows(43, "\\zxcvbnm,./", "|ZXCVBNM<>?")
    | {57: (" ", " ")}
    | _KEYPAD
)
DE = (
    _rows(2, "1234567890ß´", '!"§$%&/()=?`')
    | _rows(16, "qwertzuiopü+", "QWERTZUIOPÜ*")
    | _rows(30, "asdfghjklöä^", "ASDFGHJKLÖÄ°")
    | _rows(43, "#yxcvbnm,.-", "'YXCVBNM;:_")
    | {57: (" ", " "), 86: ("<", ">")}
    | _KEYPAD
)
FR = (
    _rows(2, "&é\"'(-è_çà)=", "1234567890°+")
    | _rows(16, "azertyuiop^$", "AZERTYUIOP¨£")
    | _rows(30, "qsdfghjklmù²", "QSDFGHJKLM%~")
    | _rows(43, "*wxcvbn,;:!", "µWXCVBN?./§")
    | {57: (" ", " "), 86: ("<", ">")}
    | _KEYPAD
)
LAYOUTS: dict[str, dict[int, tuple[str, str]]] = {"us": US, "de": DE, "fr": FR}


class KeyboardDecoder:
    """Turns key events into payloads: characters on key press, a payload at each terminator key."""

    def __init__(self, layout: str = "us", *, terminators: Iterable[int] = (KEY_ENTER, KEY_KPENTER)) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown keyboard layout {layout!r} (known: {', '.join(sorted(LAYOUTS))})")
        self.keys = LAYOUTS[layout]
        self.terminators = frozenset(terminators)
        self.shift: set[int] = set()
        self.caps = False
        self.pending: list[str] = []

    def feed(self, event: InputEvent) -> str | None:
        """Take one event; the finished payload when it ends one, else None."""
        if event.type != EV_KEY:
            return None
        code, value = event.code, event.value
        if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
            # A release whose press was never seen (the stream began mid-key) just leaves Shift up.
            (self.shift.add if value else self.shift.discard)(code)
            return None
        if value != 1:  # releases and autorepeat type nothing
            return None
        if code == KEY_CAPSLOCK:
            self.caps = not self.caps
            return None
        if code in self.terminators:
            return self.flush()
        pair = self.keys.get(code)
        if pair is not None:
            shifted = bool(self.shift)
            char = pair[1] if shifted else pair[0]
            if self.caps and char.isalpha():
                char = char.swapcase() if pair[0].isalpha() else char
            self.pending.append(char)
        return None

    def flush(self) -> str | None:
        """The payload typed so far (a scanner set to send no terminator, after an idle gap), or None."""
        if not self.pending:
            return None
        text, self.pending = "".join(self.pending), []
        return text
