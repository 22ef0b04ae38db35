"""The whole central schema: importing this module registers every domain's tables on ``Base.metadata``."""

from __future__ import annotations

from central import jobs, models
from central.accounts import models as accounts
from central.campaigns import coupon_models as coupons
from central.campaigns import models as campaigns
from central.customers import consent_models as consent
from central.customers import models as customers
from central.fleet import models as fleet
from central.identity import models as identity
from central.ingest import models as ingest
from central.members import models as members
from central.presence import models as presence
from central.privacy import models as privacy
from central.segments import models as segments
from central.sources import models as sources

Base = models.Base
metadata = Base.metadata

__all__ = [
    "Base",
    "accounts",
    "campaigns",
    "consent",
    "coupons",
    "customers",
    "fleet",
    "identity",
    "ingest",
    "jobs",
    "members",
    "metadata",
    "models",
    "presence",
    "privacy",
    "segments",
    "sources",
]
