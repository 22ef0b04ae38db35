"""Console roles and what each may see: the one table every page and mask consults.

- admin: everything, personal data unmasked.
- marketing: customers, segments and campaigns, personal data masked (138****5678, 张*).
- customer_service: one customer at a time, masked.
- finance: amounts and campaign results, no customer profiles.
- technician: the fleet only, no customer data anywhere.
- store_manager: the overview and fleet of their own stores.
"""

from __future__ import annotations

from dataclasses import dataclass

ADMIN = "admin"
MARKETING = "marketing"
CUSTOMER_SERVICE = "customer_service"
FINANCE = "finance"
TECHNICIAN = "technician"
STORE_MANAGER = "store_manager"
ROLES = (ADMIN, MARKETING, CUSTOMER_SERVICE, FINANCE, TECHNICIAN, STORE_MANAGER)
EVERYONE = ROLES


@dataclass(frozen=True, slots=True)
class Policy:
    """What one role may see of customers."""

    customers: bool  # may open customer profiles at all
    unmasked: bool  # sees phone numbers, cards and names in full
    amounts: bool  # sees money figures
    store_scoped: bool  # sees only the stores assigned to the user


POLICIES = {
    ADMIN: Policy(customers=True, unmasked=True, amounts=True, store_scoped=False),
    MARKETING: Policy(customers=True, unmasked=False, amounts=True, store_scoped=False),
    CUSTOMER_SERVICE: Policy(customers=True, unmasked=False, amounts=True, store_scoped=False),
    FINANCE: Policy(customers=False, unmasked=False, amounts=True, store_scoped=False),
    TECHNICIAN: Policy(customers=False, unmasked=False, amounts=False, store_scoped=False),
    STORE_MANAGER: Policy(customers=False, unmasked=False, amounts=True, store_scoped=True),
}


def policy(role: str) -> Policy:
    """The role's policy; an unknown role (a hand-edited row) sees nothing."""
    return POLICIES.get(role, Policy(customers=False, unmasked=False, amounts=False, store_scoped=True))
