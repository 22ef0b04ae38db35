"""The stores central knows of, for refusing a store id no one has heard of (a typo such as ``S999``).

Central keeps no list of stores of its own: a chain opens stores, and a store is known as soon as
central has a record of it, any of

- an agent enrolled there (whatever its status now: a retired PC's store still existed);
- an enrollment token issued for it and not revoked (a new store whose PC is still to enrol, so
  a campaign may name a store that opens next week once its token is made);
- purchases recorded there (``customer_stores``: loaded history, an online source naming a store).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, union
from sqlalchemy.orm import Session

from central.customers.models import CustomerStore
from central.fleet.models import Device, EnrollToken


def known_stores(db: Session, store_ids: Iterable[str]) -> set[str]:
    """Which of ``store_ids`` central knows (an enrolled agent, a live enrollment token or purchases there)."""
    wanted = sorted(set(store_ids))
    if not wanted:
        return set()
    enrolled = select(Device.store_id).where(Device.store_id.in_(wanted))
    to_enrol = select(EnrollToken.store_id).where(EnrollToken.store_id.in_(wanted), EnrollToken.revoked_at.is_(None))
    # ix_customer_stores_store_id answers this without reading the customers' rows.
    sold = select(CustomerStore.store_id).where(CustomerStore.store_id.in_(wanted)).distinct()
    return set(db.scalars(union(enrolled, to_enrol, sold)))


def unknown_stores_message(unknown: list[str]) -> str:
    """Why ``unknown`` (sorted, not empty) cannot be named, and how a new store becomes known."""
    named = ", ".join(repr(s) for s in unknown)
    which = f"store {named} is not one" if len(unknown) == 1 else f"stores {named} are not ones"
    return (
        f"{which} central knows: no agent is enrolled there, no enrollment token was issued for it and no"
        " purchase was recorded there (check the id; a new store's PC gets its token first:"
        f" central-server enroll-token --store {unknown[0]})"
    )
