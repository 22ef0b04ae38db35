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
