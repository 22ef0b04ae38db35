"""Sealing, secret files and request signatures."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.exceptions import InvalidTag

from shared.crypto import (
    HEADER_NONCE,
    KeyFileError,
    RequestSigner,
    Sealer,
    derive_key,
    document_message,
    keyed_hash,
    load_or_create_key,
    new_signing_key,
    read_secret_file,
    replace_secret_file,
    sign,
    verify,
    verify_request,
)


def test_sealed_blob_opens_only_with_its_binding():
    sealer = Sealer(b"k" * 32)
    blob = sealer.seal(b"13812345678", b"event:1")
    assert b"13812345678" not in blob
    assert sealer.open(blob, b"event:1") == b"13812345678"
    with pytest.raises(InvalidTag):
        sealer.open(blob, b"event:2")
    with pytest.raises(InvalidTag):
        sealer.open(blob[:-1] + bytes([blob[-1] ^ 1]), b"event:1")
    assert sealer.seal(b"x", b"a") != sealer.seal(b"x", b"a")  # fresh nonce every time


def test_key_file_is_created_0600_once_and_reused(tmp_path):
    path = tmp_path / "sub" / "outbox.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key


def test_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "outbox.key"
    load_or_create_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_secret_file(path)


def test_wrong_size_key_file_is_refused(tmp_path):
    path = tmp_path / "outbox.key"
    path.write_bytes(b"short")
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match="expected 32 bytes"):
        load_or_create_key(path)


def test_signature_covers_method_path_device_time_nonce_and_body():
    private, public = new_signing_key()
    signer = RequestSigner("dev_1", private, nonce=lambda: "n0nce")
    headers = signer.headers("POST", "/api/v1/batches", "2026-11-23T02:00:00.000Z", b"body")
    assert headers[HEADER_NONCE] == "n0nce"
    sig = headers["X-CDP-Signature"]
    args = ("POST", "/api/v1/batches", "dev_1", "2026-11-23T02:00:00.000Z", b"body", sig)
    assert verify_request(public, *args, nonce="n0nce")
    for i, changed in enumerate(["GET", "/api/v1/enroll", "dev_2", "2026-11-23T02:00:01.000Z", b"bodY"]):
        tampered = list(args)
        tampered[i] = changed
        assert not verify_request(public, *tampered, nonce="n0nce")
    assert not verify_request(public, *args, nonce="n0nce2")
    assert not verify_request(new_signing_key()[1], *args, nonce="n0nce")
    assert not verify_request(public, *args[:-1], "not base64!", nonce="n0nce")


def test_every_call_draws_a_fresh_nonce():
    signer = RequestSigner("dev_1", new_signing_key()[0])
    nonces = {signer.headers("POST", "/p", "t", b"")[HEADER_NONCE] for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(n) == 22 for n in nonces)


def test_secret_files_are_replaced_atomically_with_mode_0600(tmp_path):
    path = tmp_path / "creds.json"
    replace_secret_file(path, b"one")
    replace_secret_file(path, b"two")
    assert read_secret_file(path) == b"two"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["creds.json"]


def test_documents_are_signed_over_store_name_version_and_canonical_body():
    private, public = new_signing_key()
    body = {"sync.interval": 5, "b": [1, {"z": 1, "a": 2}]}
    signature = sign(private, document_message("S001", "settings", 7, body))
    reordered = {"b": [1, {"a": 2, "z": 1}], "sync.interval": 5}
    assert verify(public, document_message("S001", "settings", 7, reordered), signature)
    assert not verify(public, document_message("S002", "settings", 7, body), signature)
    assert not verify(public, document_message("S001", "coupons", 7, body), signature)
    assert not verify(public, document_message("S001", "settings", 8, body), signature)
    assert not verify(public, document_message("S001", "settings", 7, {**body, "sync.interval": 6}), signature)


def test_derived_keys_and_keyed_hashes_differ_by_purpose():
    key = b"k" * 32
    assert derive_key(key, "a") != derive_key(key, "b")
    assert keyed_hash(derive_key(key, "a"), "x") != keyed_hash(derive_key(key, "b"), "x")
    assert keyed_hash(key, "x") == keyed_hash(key, "x")
