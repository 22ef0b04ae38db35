"""What a printed receipt becomes in the outbox: a ``pos.receipt`` event, or a sealed quarantine row.

A receipt a profile reads becomes a ``pos.receipt`` event carrying the whole sale, the printed
text and codes (all card data already removed, see receipt_reader.py)::

    {"format": "escpos", "profile": "cn-supermarket", "receipt_no": "260314000042",
     "datetime": "2026-03-14T09:12:05", "store_name": "联华超市(南京西路店)", "register": "03",
     "cashier": "王芳", "items": [{"name": "可口可乐 330ml", "sku": "6901028075831", "qty": "2",
     "unit_price": "3.50", "amount": "7.00"}], "discount_total": "1.00", "total": "6.00",
     "paid": "10.00", "change": "4.00", "payment_method": "cash",
     "tenders": [{"method": "cash", "amount": "10.00"}], "member_phone": "138****5678",
     "member": {}, "text_lines": [...], "codes": [{"symbology": "qr", "data": "https://..."}],
     "warnings": []}

``payment_method`` is the first tender's; ``tenders`` lists every payment printed with its amount
(微信支付 20.00 and 现金 20.00), when the profile reads them. ``member`` holds the member phone and
card normalised, when what was printed is a whole number (a masked phone is not): central links the
sale to a customer by it, as it does for line mode.

A receipt no profile reads (or one without a receipt number or total) is quarantined, sealed,
with the reason; what is kept is the redacted text and codes as JSON and, when the reader still had
them, the printer bytes it was printed from (base64, card data removed the same way), so
``edge-agent reparse`` can read it again once a profile is fixed, or decode it again in another
printer mode (``--kanji``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from edge_agent.parsing.escpos import Code, PrintedReceipt
from edge_agent.parsing.reprint_marker import is_reprint
from edge_agent.receipt_reader import ReceiptRecord
from edge_agent.records import Capture, Quarantined, Record
from shared.identifiers import normalize_card, normalize_phone
from shared.payloads import check_event

REPRINT_WARNING = "reprint"
"""The warning on a receipt that printed a reprint marker (central.customers.reprints.MARKER_WARNING)."""
QUARANTINE_FORMAT = "escpos-receipt/1"
"""Marks a quarantine row that holds a printed receipt as JSON, which ``reparse`` can read again."""


def sale_payload(record: ReceiptRecord) -> dict[str, Any]:
    """The ``pos.receipt`` payload of a receipt that has a sale."""
    assert record.sale is not None
    printed = record.printed
    sale = record.sale.as_dict()
    items = sale.pop("items")
    tenders = sale.pop("tenders")
    warnings = list(sale.pop("warnings"))
    warnings += [w for w in printed.warnings if w not in warnings]
    if is_reprint(printed.lines) and REPRINT_WARNING not in warnings:
        warnings.append(REPRINT_WARNING)  # a hint for central, which tells reprints apart by number
    payload: dict[str, Any] = {"format": "escpos"}
    payload.update((key, value) for key, value in sale.items() if value is not None)
    payload["items"] = [{k: v for k, v in item.items() if v is not None} for item in items]
    if tenders:
        payload["tenders"] = tenders
    member: dict[str, str] = {}
    phone = normalize_phone(record.sale.member_phone) if record.sale.member_phone else None
    card = normalize_card(record.sale.member_card) if record.sale.member_card else None
    if phone:
        member["phone"] = phone
    if card:
        member["card"] = card
    payload["member"] = member
    payload["text_lines"] = list(printed.lines)
    payload["codes"] = [{"symbology": c.symbology, "data": c.data} for c in printed.codes]
    payload["warnings"] = warnings
    return payload


def receipt_record(record: ReceiptRecord, observed_at: str, received_at: float, *, source: str = "pos") -> Record:
    """The event for a receipt with a sale, else a quarantine row holding the printed receipt."""
    reason = record.error
    if record.sale is not None:
        if not record.sale.receipt_no:
            reason = "missing_field:receipt_no"
        elif not record.sale.total:
            reason = "missing_field:total"
        else:
            payload, problem = check_event("pos.receipt", sale_payload(record))
            if payload is not None:
                return Capture.of("pos.receipt", payload, observed_at, source, record.printed.end)
            reason = problem
    return Quarantined(
        source=source,
        reason=reason or "no_sale",
        raw=quarantine_body(record.printed, observed_at, record.printer_bytes),
        received_at=received_at,
        offset=record.printed.end,
    )


def quarantine_body(printed: PrintedReceipt, observed_at: str, printer_bytes: bytes | None = None) -> bytes:
    """What a quarantine row keeps of a receipt without a sale: its redacted text, codes and printer bytes."""
    doc: dict[str, Any] = {
        "format": QUARANTINE_FORMAT,
        "observed_at": observed_at,
        "text_lines": list(printed.lines),
        "codes": [{"symbology": c.symbology, "data": c.data} for c in printed.codes],
        "ended_by": printed.ended_by,
        "bytes": [printed.start, printed.end],
        "images": printed.images,
        "warnings": list(printed.warnings),
    }
    if printer_bytes is not None:
        doc["printer_bytes"] = base64.b64encode(printer_bytes).decode("ascii")
    return orjson.dumps(doc)


@dataclass(frozen=True, slots=True)
class QuarantinedReceipt:
    """What a quarantine row holds of a printed receipt."""

    printed: PrintedReceipt
    observed_at: str
    printer_bytes: bytes | None  # redacted (receipt_reader.redact_printer_bytes); None in older rows


def from_quarantine(raw: bytes | None) -> QuarantinedReceipt | None:
    """The printed receipt a quarantine row holds, or None if it holds none."""
    if not raw or not raw.startswith(b"{"):
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("format") != QUARANTINE_FORMAT:
        return None
    start, end = doc["bytes"]
    printed = PrintedReceipt(
        lines=tuple(doc["text_lines"]),
        codes=tuple(Code(c["symbology"], c["data"]) for c in doc["codes"]),
        ended_by=doc["ended_by"],
        start=start,
        end=end,
        images=doc["images"],
        warnings=tuple(doc["warnings"]),
    )
    kept = doc.get("printer_bytes")
    return QuarantinedReceipt(printed, str(doc["observed_at"]), base64.b64decode(kept) if kept else None)
