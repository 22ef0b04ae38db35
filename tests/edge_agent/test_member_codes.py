"""Member codes verified at the till with no central: each refusal has its own reason, the replay cache
survives a restart, and nothing a store PC holds lets anyone mint a code another store accepts."""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from edge_agent.till.member_codes import MemberCodeVerifier
from edge_agent.till.scans import ScanHandler
from shared.crypto import b64, new_signing_key, sign
from shared.member_code import (
    CERT_CONTEXT,
    REASONS,
    STEP_SECONDS,
    Certificate,
    MemberCode,
    code_digest,
    fingerprint,
    issue_certificate,
    key_id,
    make_code,
)

NOW = 1_790_000_000.0  # a step boundary is irrelevant: every test reads the clock it sets


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Central:
    """Central's certifying key and a member app, as central and the app hold them (never a store)."""

    def __init__(self) -> None:
        self.private, self.public = new_signing_key()

    def app(
        self, member_id: str, *, valid_from: float = NOW - 86400, until: float = NOW + 86400
    ) -> tuple[bytes, Certificate]:
        private, public = new_signing_key()
        cert = issue_certificate(self.private, self.public, member_id, public, int(valid_from), int(until))
        return private, cert

    def document(self, revoked: tuple[str, ...] = ()) -> dict:
        return {"keys": [b64(self.public)], "revoked": list(revoked), "step_seconds": STEP_SECONDS, "skew_steps": 1}


@pytest.fixture
def central() -> Central:
    return Central()


def _verifier(
    tmp_path: Path, central: Central, store: str = "S001", clock: Clock | None = None, **docs
) -> MemberCodeVerifier:
    directory = tmp_path / store
    directory.mkdir(exist_ok=True)
    verifier = MemberCodeVerifier(directory, store, clock=clock or Clock())
    verifier.update({"member_codes": central.document(), **docs})
    return verifier


def test_a_valid_code_is_accepted_once_then_refused_as_replayed_even_after_a_restart(tmp_path, central):
    key, cert = central.app("M-0042")
    code = make_code(cert, key, NOW)
    verifier = _verifier(tmp_path, central)
    verdict = verifier.verify(code)
    assert verdict.accepted and verdict.member_id == "M-0042" and verdict.fingerprint == fingerprint(cert.public_key)
    assert verifier.verify(code).reason == "replayed"
    verifier.close()
    restarted = _verifier(tmp_path, central)
    assert restarted.verify(code).reason == "replayed"
    # The next step's code is a new code.
    assert restarted.verify(make_code(cert, key, NOW + STEP_SECONDS)).accepted


def test_the_replay_cache_keeps_no_member_id_and_only_its_owner_reads_it(tmp_path, central):
    """till.sqlite sits outside the sealed outbox: it kept each scanned member's id in clear, readable by
    anyone on the PC (0644 without the unit's UMask). A replay needs the code's digest and store only."""
    used = {"used": [{"digest": "d" * 64, "store": "S002", "member": "M-0099", "step": 1}]}
    verifier = _verifier(tmp_path, central, member_codes_used=used)
    key, cert = central.app("M-0042")
    assert verifier.verify(make_code(cert, key, NOW)).accepted
    verifier.close()
    path = tmp_path / "S001" / "till.sqlite"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        held = conn.execute("SELECT member_id FROM member_codes_seen").fetchall()
    assert held and all(member == "" for (member,) in held)
    for name in path.parent.iterdir():
        assert b"M-0042" not in name.read_bytes() and b"M-0099" not in name.read_bytes(), name


def test_one_step_of_clock_skew_either_way_is_accepted_two_are_not(tmp_path, central):
    key, cert = central.app("M-1")
    verifier = _verifier(tmp_path, central)
    assert verifier.verify(make_code(cert, key, NOW - STEP_SECONDS)).accepted
    assert verifier.verify(make_code(cert, key, NOW + STEP_SECONDS)).accepted
    assert verifier.verify(make_code(cert, key, NOW - 2 * STEP_SECONDS)).reason == "expired"
    assert verifier.verify(make_code(cert, key, NOW + 2 * STEP_SECONDS)).reason == "expired"


def test_every_refusal_has_its_own_reason(tmp_path, central):
    key, cert = central.app("M-0042")
    other_key, other_cert = central.app("M-0099")
    verifier = _verifier(tmp_path, central)
    results: dict[str, str | None] = {}

    # forged: a certificate from a look-alike "central" that copies the real key id.
    fake_private, _ = new_signing_key()
    fake_public = central.public
    forged_cert = issue_certificate(
        fake_private, fake_public, "M-0042", cert.public_key, cert.valid_from, cert.valid_until
    )
    results["forged"] = verifier.verify(make_code(forged_cert, key, NOW)).reason
    # forged too: a real certificate, but the step signed by someone else's key.
    results["forged-signature"] = verifier.verify(make_code(cert, other_key, NOW)).reason
    # expired: a code from five minutes ago, and a certificate past its end.
    results["expired"] = verifier.verify(make_code(cert, key, NOW - 300)).reason
    old_key, old_cert = central.app("M-0042", valid_from=NOW - 9000, until=NOW - 10)
    results["expired-certificate"] = verifier.verify(make_code(old_cert, old_key, NOW)).reason
    # wrong-member: member M-0099's genuine key and certificate, claiming to be M-0042.
    claim = MemberCode(other_cert, "M-0042", int(NOW // STEP_SECONDS), b"")
    wrong = replace(claim, signature=sign(other_key, claim.signed_part())).text()
    results["wrong-member"] = verifier.verify(wrong).reason
    # unknown: a code from another chain's central.
    stranger = Central()
    s_key, s_cert = stranger.app("M-0042")
    results["unknown"] = verifier.verify(make_code(s_cert, s_key, NOW)).reason
    results["not-a-member-code"] = verifier.verify("6901234567892").reason
    results["not-a-member-code-truncated"] = verifier.verify(make_code(cert, key, NOW)[:-20]).reason
    # accepted, then replayed.
    code = make_code(cert, key, NOW)
    results["accepted"] = verifier.verify(code).reason
    results["replayed"] = verifier.verify(code).reason
    # other-store-replayed: another store used this code, and this store fetched central's list since.
    other_code = make_code(other_cert, other_key, NOW)
    digest = code_digest(other_code)
    verifier.update(
        {
            "member_codes": central.document(),
            "member_codes_used": {"used": [{"digest": digest, "store": "S002", "step": 1}]},
        }
    )
    results["other-store-replayed"] = verifier.verify(other_code).reason
    # revoked: the member's key is on central's list.
    r_key, r_cert = central.app("M-0007")
    verifier.update({"member_codes": central.document(revoked=(fingerprint(r_cert.public_key),))})
    results["revoked"] = verifier.verify(make_code(r_cert, r_key, NOW)).reason
    # unverified: a store with no keys from central yet keeps the code for central to check.
    keyless = MemberCodeVerifier(tmp_path, "S009", clock=Clock())
    results["unverified"] = keyless.verify(make_code(cert, key, NOW + STEP_SECONDS)).reason

    assert results == {
        "forged": "forged",
        "forged-signature": "forged",
        "expired": "expired",
        "expired-certificate": "expired",
        "wrong-member": "wrong-member",
        "unknown": "unknown",
        "not-a-member-code": "not-a-member-code",
        "not-a-member-code-truncated": "not-a-member-code",
        "accepted": None,
        "replayed": "replayed",
        "other-store-replayed": "other-store-replayed",
        "revoked": "revoked",
        "unverified": "unverified",
    }
    assert set(results.values()) - {None} == set(REASONS)


def test_a_store_without_keys_from_central_keeps_the_code_sealed_for_central_and_refuses_anything_else(
    tmp_path, central
):
    key, cert = central.app("M-1")
    code = make_code(cert, key, NOW)
    handler = ScanHandler(MemberCodeVerifier(tmp_path, "S001", clock=Clock()), "R2", clock=Clock())
    first, again = handler.handle(code, "scanner"), handler.handle(code, "scanner")
    assert first.verdict is not None and first.verdict.reason == "unverified"
    assert first.capture is not None and first.capture.kind == "scan.member"
    payload = first.capture.payload()
    assert (payload["result"], payload["member_id"], payload["proof"]) == ("unverified", "M-1", code)
    assert payload["code"] == f"digest:{code_digest(code)}" and payload["key"] == fingerprint(cert.public_key)
    # A double read is a replay here too, and does not carry the code again.
    assert again.capture is not None and again.capture.payload()["result"] == "replayed"
    assert "proof" not in again.capture.payload()
    truncated = handler.handle(code[:-20], "scanner")
    assert truncated.verdict is not None and truncated.verdict.reason == "unknown" and truncated.capture is None


def test_scan_events_keep_the_verdict_and_digest_never_the_code(tmp_path, central):
    key, cert = central.app("M-0042")
    code = make_code(cert, key, NOW)
    handler = ScanHandler(_verifier(tmp_path, central), "R2", clock=Clock())
    first, again = handler.handle("]Q1" + code + "\r\n", "scanner"), handler.handle(code, "scanner")
    assert first.capture is not None and first.capture.kind == "scan.member"
    payload = first.capture.payload()
    assert payload["result"] == "accepted" and payload["member_id"] == "M-0042" and payload["register"] == "R2"
    assert payload["code"].startswith("digest:") and code[6:40] not in first.capture.payload_json.decode()
    assert again.capture is not None and again.capture.payload()["result"] == "replayed"
    product = handler.handle("6901234567892", "scanner")
    assert product.capture is not None and product.capture.kind == "scan.product"
    assert product.capture.payload()["code"] == "6901234567892"
    payment = handler.handle("134567890123456789", "scanner")
    assert payment.capture is None and payment.scan.kind == "payment"
    assert handler.counts["payment"] == 1


def test_everything_a_store_pc_holds_mints_no_code_another_store_accepts(tmp_path, central):
    """An attacker copies store S001's whole data directory after it accepted codes: keys, caches, events."""
    store_dir = tmp_path / "S001"
    key, cert = central.app("M-0042")
    handler = ScanHandler(_verifier(tmp_path, central, "S001"), "R1", clock=Clock())
    captures = [handler.handle(make_code(cert, key, NOW + n * STEP_SECONDS), "scanner").capture for n in range(3)]
    # What the agent writes of the scans, plus a device key and outbox key as a store PC has them.
    (store_dir / "events.json").write_bytes(b"\n".join(c.payload_json for c in captures if c))
    (store_dir / "device.key").write_bytes(new_signing_key()[0])
    (store_dir / "outbox.key").write_bytes(os.urandom(32))
    handler.verifier.close()  # type: ignore[union-attr]
    stolen = b"".join(p.read_bytes() for p in sorted(store_dir.rglob("*")) if p.is_file())

    assert b"CDPM1:" not in stolen
    other_store = _verifier(tmp_path, central, "S002", clock=Clock(NOW + 3 * STEP_SECONDS))
    # Every 32-byte window of everything copied, tried as central's certifying key and as the member's key.
    candidates = {stolen[i : i + 32] for i in range(0, len(stolen) - 31)}
    attacker_public = new_signing_key()[1]
    refusals = set()
    for candidate in sorted(candidates)[:600]:
        try:
            minted_cert = issue_certificate(
                candidate, central.public, "M-0042", attacker_public, int(NOW), int(NOW + 999)
            )
            as_member = make_code(cert, candidate, NOW + 3 * STEP_SECONDS)
        except ValueError:
            continue
        refusals.add(other_store.verify(make_code(minted_cert, candidate, NOW + 3 * STEP_SECONDS)).reason)
        refusals.add(other_store.verify(as_member).reason)
    assert refusals == {"forged"}
    assert key_id(central.public) == cert.key_id and len(candidates) > 100
    assert CERT_CONTEXT.startswith(b"cdp-member-cert")
