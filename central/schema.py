"""The whole central schema: importing this module registers every domain's tables on ``Base.metadata``."""

from __future__ import annotations

from central import models
from central.campaigns import coupon_models as coupons
from central.customers import models as customers
from central.fleet import models as fleet
from central.identity import models as identity
from central.ingest import models as ingest
from central.sources import models as sources

Base = models.Base
metadata = Base.metadata

__all__ = ["Base", "coupons", "customers", "fleet", "identity", "ingest", "metadata", "models", "sources"]
