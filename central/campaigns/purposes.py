"""The consent a trigger needs on its channel: marketing, or service for a complaint's follow-up.

PIPL keeps purposes apart: a customer may let the desk text them about their complaint and refuse
marketing. Service consent covers following up a complaint and nothing else; every other trigger
kind, and a coupon whatever the occasion, markets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PURPOSES = ("marketing", "service")
SERVICE_KINDS = ("complaint",)
MARKETING_ACTIONS = ("coupon",)


def purpose_of(kind: str, params: Mapping[str, Any], action: str) -> str:
    """The consent a trigger needs: its declared purpose, or marketing wherever service cannot cover it.

    Asked when it fires and before each of its calls, so a trigger stored with a purpose the
    declaration now refuses reaches only those who gave marketing consent.
    """
    purpose = str(params.get("purpose", "marketing"))
    if purpose == "service" and (kind not in SERVICE_KINDS or action in MARKETING_ACTIONS):
        return "marketing"
    return purpose
