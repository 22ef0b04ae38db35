"""Central's coupon code signer: the codes it makes, and the ones it recognises, are the verifiable ones."""

from __future__ import annotations

import base64

from shared import coupon_code as cc
from shared.crypto import new_signing_key


def _altered(text: str, at: int) -> cc.CouponCode:
    """The code with one bit of its raw bytes flipped at ``at``."""
    body = text[len(cc.COUPON_PREFIX) :]
    raw = bytearray(base64.b32decode(body + "=" * (-len(body) % 8)))
    raw[at] ^= 1
    return cc.decode(cc.COUPON_PREFIX + base64.b32encode(bytes(raw)).decode().rstrip("="))


def test_the_signer_makes_the_codes_make_code_makes():
    private, public = new_signing_key()
    signer = cc.CodeSigner(private)
    assert signer.public_key == public
    assert signer.make(7, 1042) == cc.make_code(private, public, 7, 1042)


def test_the_signer_recognises_exactly_the_codes_its_public_key_verifies():
    private, public = new_signing_key()
    other_private, other_public = new_signing_key()
    signer = cc.CodeSigner(private)
    text = signer.make(7, 1042)
    stolen = cc.decode(cc.CodeSigner(other_private).make(7, 1042)).signature
    candidates = {
        "genuine": cc.decode(text),
        "other key": cc.decode(cc.make_code(other_private, other_public, 7, 1042)),
        # Another key's signature under this key's id: the id alone proves nothing.
        "other key, this id": cc.CouponCode(signer.key_id, 7, 1042, stolen),
        "serial changed": _altered(text, 16),
        "campaign changed": _altered(text, 8),
        "signature changed": _altered(text, 40),
        "signature of another serial": cc.CouponCode(signer.key_id, 7, 1042, cc.decode(signer.make(7, 1043)).signature),
    }  # fmt: skip
    answers = {name: (signer.issued(code), code.verifies(public)) for name, code in candidates.items()}
    assert answers == {name: (name == "genuine", name == "genuine") for name in candidates}
