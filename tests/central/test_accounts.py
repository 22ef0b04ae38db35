"""Pure pieces of console accounts: password hashes (old and new), masks, role policies."""

from __future__ import annotations

from werkzeug.security import generate_password_hash

from central.accounts import passwords
from central.accounts.roles import ROLES, policy
from shared.masking import mask_name, mask_phone


def test_argon2_hashes_verify_and_older_hashes_are_upgraded():
    stored = passwords.hash_password("correct horse")
    assert stored.startswith("$argon2id$") and not passwords.needs_rehash(stored)
    assert passwords.verify(stored, "correct horse") and not passwords.verify(stored, "wrong horse")
    legacy = generate_password_hash("correct horse")
    assert passwords.verify(legacy, "correct horse") and passwords.needs_rehash(legacy)
    assert not passwords.verify("plain text", "plain text")


def test_masks():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+8613812345678") == "138****5678"
    assert mask_name("张三") == "张*" and mask_name("张三丰") == "张*" and mask_name("") == ""


def test_policies():
    assert [r for r in ROLES if policy(r).unmasked] == ["admin"]
    assert [r for r in ROLES if policy(r).customers] == ["admin", "marketing", "customer_service"]
    assert not policy("technician").amounts and policy("finance").amounts and not policy("finance").customers
    assert policy("store_manager").store_scoped
    assert policy("nobody") == policy("nobody") and not policy("nobody").customers
