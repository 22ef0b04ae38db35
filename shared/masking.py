"""Masking personal data for display: 138****5678 for a mainland mobile, last four for cards."""

from __future__ import annotations

import re


def mask_phone(phone: str | None) -> str:
    """Show the first three and last four digits of a phone number (13812345678 -> 138****5678)."""
    if not phone:
        return ""
    if phone.startswith("+86") and len(phone) == 14:
        phone = phone[3:]  # a mainland number stored in E.164 shows as it is dialled at home
    digits = phone.lstrip("+")
    if len(digits) < 8:
        return "*" * len(phone)
    keep_head = 3
    prefix = "+" if phone.startswith("+") else ""
    return prefix + digits[:keep_head] + "*" * (len(digits) - keep_head - 4) + digits[-4:]


def mask_card(card: str | None) -> str:
    """Show only the last four characters of a card or member number."""
    if not card:
        return ""
    if len(card) <= 4:
        return "*" * len(card)
    return "*" * (len(card) - 4) + card[-4:]


def mask_email(email: str | None) -> str:
    """Show the first character of the mailbox and the domain (z***@example.com)."""
    if not email:
        return ""
    box, _, domain = email.partition("@")
    return f"{box[:1]}***@{domain}" if domain else mask_card(email)


def mask_identifier(kind: str, value: str | None) -> str:
    """Mask a typed identifier value the way the console shows it to roles without PII access."""
    if kind == "phone":
        return mask_phone(value)
    if kind == "email":
        return mask_email(value)
    if value and ":" in value and kind in ("wechat_openid", "app_user_id"):
        app, _, local = value.partition(":")
        return f"{app}:{mask_card(local)}"
    return mask_card(value)


def mask_name(name: str | None) -> str:
    """Show only the first character of a name, and hide its length (张三丰 -> 张*)."""
    if not name:
        return ""
    return name.strip()[:1] + "*"


# No digit boundaries: a mobile inside a longer run (a receipt number built from one) is masked too;
# numbers written in groups as well (139 1234 5679, 139-1234-5679, 139.1234.5679, 139/1234/5679), in
# ASCII or in the full-width digits, spaces and punctuation a Chinese input method types (\d is any
# decimal digit).
_GROUP = r"([ \-./\u00a0\u3000\u2010-\u2014\uff0d\uff0e\uff0f]?)"
_MOBILE = re.compile(rf"([1１][3-9３-９]\d){_GROUP}\d{{4}}{_GROUP}(\d{{4}})")


def mask_text(text: str | None) -> str:
    """Mask every mainland mobile number inside free text (a complaint, a note, a receipt number)."""
    if not text:
        return ""
    return _MOBILE.sub(r"\1\2****\3\4", text)
