"""Campaigns: coupons, triggers with their ledger of occasions, and the actions they queue (webhooks, exports)."""
