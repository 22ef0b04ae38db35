"""Finding the person a request is about: by customer id, or by an identifier they hold."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.identity.models import Customer, Identifier
from central.identity.registry import Registry


class SubjectError(Exception):
    """No customer answers to what was given; the message says what was looked up."""


def find(
    db: Session, registry: Registry, *, customer_id: int | None = None, kind: str | None = None, value: str = ""
) -> int:
    """The live customer a request names (a merged-away id gives its survivor); erased customers count."""
    if kind is not None:
        stored, reason = registry.check(kind, value, None)
        if stored is None:
            raise SubjectError(f"the {kind} value cannot identify anyone ({reason})")
        found = db.scalar(select(Identifier.customer_id).where(Identifier.kind == kind, Identifier.value == stored))
        if found is None:
            raise SubjectError(f"no customer holds that {kind}")
        customer_id = found
    if customer_id is None:
        raise SubjectError("name a customer by id, or by --type and --value")
    row = db.get(Customer, customer_id)
    for _ in range(100):  # merged_into names the survivor directly; the bound guards a corrupted chain
        if row is None or row.merged_into is None:
            break
        row = db.get(Customer, row.merged_into)
    if row is None:
        raise SubjectError(f"no customer {customer_id}")
    return row.id


def customers_of(db: Session, customer_id: int) -> list[int]:
    """The customer and every customer merged into it: one person's rows may name any of them."""
    merged = db.scalars(select(Customer.id).where(Customer.merged_into == customer_id)).all()
    return [customer_id, *merged]
