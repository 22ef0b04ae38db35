"""The agent's DownlinkStore on its own: answers signed here with a key standing in for central's."""

from __future__ import annotations

import json

import pytest

from edge_agent.downlink import STATE_FILE, DownlinkError, DownlinkStore, remember_central_key
from shared.crypto import b64, document_message, new_signing_key, sign

CENTRAL_PRIVATE, CENTRAL_PUBLIC = new_signing_key()


def answer(version: int, documents: dict, store: str = "S001", key: bytes = CENTRAL_PRIVATE) -> dict:
    return {
        "store_id": store,
        "version": version,
        "documents": [
            {
                "name": name,
                "version": version,
                "body": body,
                "signature": b64(sign(key, document_message(store, name, version, body))),
            }
            for name, body in documents.items()
        ],
    }


@pytest.fixture
def store(tmp_path) -> DownlinkStore:
    remember_central_key(tmp_path, {"central_key": b64(CENTRAL_PUBLIC)})
    return DownlinkStore(tmp_path, "S001")


def test_applied_documents_survive_a_restart(store, tmp_path):
    store.apply(answer(3, {"settings": {"sync.interval": 5}, "coupons": [1, 2]}))
    reopened = DownlinkStore(tmp_path, "S001")
    assert (reopened.version, reopened.names(), reopened.settings_overrides()) == (
        3,
        ["coupons", "settings"],
        {"sync.interval": 5},
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["central-downlink.key", STATE_FILE]


def test_a_deletion_removes_the_document(store):
    store.apply(answer(1, {"settings": {"sync.interval": 5}, "coupons": [1]}))
    store.apply(answer(2, {"coupons": None}))
    assert store.names() == ["settings"]


def test_one_bad_signature_refuses_the_whole_answer(store):
    store.apply(answer(1, {"settings": {"sync.interval": 5}}))
    forged = answer(2, {"settings": {"sync.interval": 1}, "coupons": [9]})
    forged["documents"][1]["signature"] = b64(sign(new_signing_key()[0], b"x"))
    with pytest.raises(DownlinkError, match="coupons"):
        store.apply(forged)
    assert (store.version, store.names()) == (1, ["settings"])


def test_a_file_tampered_on_disk_is_set_aside(store, tmp_path):
    store.apply(answer(1, {"settings": {"sync.interval": 5}}))
    path = tmp_path / STATE_FILE
    state = json.loads(path.read_text())
    state["documents"]["settings"]["body"]["sync.interval"] = 1
    path.write_text(json.dumps(state))
    reopened = DownlinkStore(tmp_path, "S001")
    assert (reopened.version, reopened.names()) == (0, [])
    assert (tmp_path / (STATE_FILE + ".bad")).exists()


def test_a_full_answer_replaces_the_set(store):
    store.apply(answer(5, {"settings": {"sync.interval": 5}, "coupons": [1]}))
    store.apply(answer(2, {"settings": {"sync.interval": 2}}), full=True)
    assert (store.version, store.names()) == (2, ["settings"])


def test_without_central_key_the_first_answer_key_is_trusted_and_kept(tmp_path):
    store = DownlinkStore(tmp_path, "S001")
    first = answer(1, {"settings": {"sync.interval": 5}})
    first["key"] = b64(CENTRAL_PUBLIC)
    store.apply(first)
    assert DownlinkStore(tmp_path, "S001").key_b64() == b64(CENTRAL_PUBLIC)
