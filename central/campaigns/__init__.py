"""Campaigns: coupons (and, beside them, triggers and webhooks)."""
