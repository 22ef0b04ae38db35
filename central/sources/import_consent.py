"""Consent columns of a legacy member file: what each member agreed to, recorded as consent decisions.

``--map 短信营销=consent:marketing:sms`` reads a column as the member's answer for one purpose and
channel; ``consent:PURPOSE`` alone covers a purpose decided for the customer as a whole
(``profiling``, ``location``) or every channel of ``marketing`` and ``service``.
``--map 同意时间=consent_at`` gives the date of the answers; without it they date from the file.

A yes (是, 同意, 订阅, Y, yes, true, 1) records a grant, a no (否, 不同意, 退订, N, no, false, 0)
a withdrawal, an empty cell nothing. Anything else records nothing and is noted on the row of the
report (``invalid_consent:marketing:sms``). Decisions are recorded once identity resolution has
named the row's customer, with the row's event, so that they follow it through later merges and
splits; a row that links to no one records none, as a consent event naming no one would. Their
source is ``import``, and the consent gate judges them like any other decision (a minor's own
grant needs a guardian's). A file with consent columns is imported only with the notice its answers
were given under (``--consent-notice``; ``legacy`` when no one kept it, decision 0107).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from central.customers.consent import CHANNELS, PER_CHANNEL, PURPOSES, Decision, channel_for

CONSENT = "consent"
CONSENT_AT = "consent_at"
IMPORT_SOURCE = "import"
YES = frozenset({"是", "同意", "已同意", "允许", "接受", "订阅", "已订阅", "y", "yes", "true", "1"})
NO = frozenset({"否", "不同意", "未同意", "拒绝", "不接受", "退订", "已退订", "n", "no", "false", "0"})


def consent_target(spec: str) -> str:
    """The ``purpose:channel`` (or ``purpose``) of ``consent:PURPOSE[:CHANNEL]``; ValueError says what is wrong."""
    purpose, _, channel = spec.removeprefix(f"{CONSENT}:").partition(":")
    if purpose not in PURPOSES:
        raise ValueError(f"{spec!r}: unknown purpose {purpose!r} (one of {', '.join(PURPOSES)})")
    if not channel:
        return purpose
    if purpose not in PER_CHANNEL:
        raise ValueError(f"{spec!r}: {purpose} is decided for the customer as a whole; write consent:{purpose}")
    if channel not in CHANNELS:
        raise ValueError(f"{spec!r}: unknown channel {channel!r} (one of {', '.join(CHANNELS)})")
    return f"{purpose}:{channel}"


def read_answer(text: str) -> bool | None:
    """True for a yes, False for a no, None for anything else."""
    folded = text.strip().lower()
    return True if folded in YES else False if folded in NO else None


def answered_on(day: date) -> datetime:
    """The instant a ``consent_at`` date stands for: the start of that day, UTC."""
    return datetime.combine(day, time(), UTC)


@dataclass(frozen=True, slots=True)
class ImportedRow:
    """What recording needs of one imported row: its event, its customer and its answers."""

    event_id: str
    event_pk: int
    customer_id: int
    answers: dict[str, bool]
    answered_at: datetime | None


def decisions(rows: Iterable[ImportedRow], file_time: datetime, *, origin: str, notice: str) -> list[Decision]:
    """The consent decisions of imported rows, one per answer, named by the row's event and the answer's target."""
    out = []
    for row in rows:
        for target, granted in row.answers.items():
            purpose, _, channel = target.partition(":")
            out.append(
                Decision(
                    customer_id=row.customer_id,
                    purpose=purpose,
                    channel=channel_for(purpose, channel or None),
                    granted=granted,
                    observed_at=row.answered_at or file_time,
                    source=IMPORT_SOURCE,
                    origin=origin,
                    origin_id=f"{row.event_id}:{target}",
                    notice_version=notice,
                    event_pk=row.event_pk,
                )
            )
    return out
