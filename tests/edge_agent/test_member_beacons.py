"""The agent's reading of ``member_beacons``: a usable document resolves its members, anything else nobody."""

from __future__ import annotations

import base64
import os

import pytest

from edge_agent.presence.member_beacons import BeaconDocumentError, resolver_from
from edge_agent.presence.radios import PresenceRadios
from shared import member_beacon as mb
from tests.edge_agent.test_presence_radios import config

AT = 20_422 * mb.DAY_SECONDS + 3600.0


def document(root: bytes, member: str = "M-1") -> dict:
    day = mb.day_of(AT)
    key = base64.b64encode(mb.day_key(root, day)).decode()
    return {"window_seconds": mb.WINDOW_SECONDS, "skew_windows": mb.SKEW_WINDOWS, "days": {str(day): [[member, key]]}}


def test_a_document_resolves_its_members_and_no_document_resolves_nobody():
    root = os.urandom(32)
    assert resolver_from(document(root)).resolve(mb.advertised_id(root, AT), AT) == "M-1"
    assert resolver_from(None).resolve(mb.advertised_id(root, AT), AT) is None


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(days=[]),
        lambda d: d.update(window_seconds=600),
        lambda d: d["days"].update({"today": []}),
        lambda d: next(iter(d["days"].values())).append(["M-2"]),
        lambda d: next(iter(d["days"].values())).append(["M-2", "not base64!"]),
        lambda d: next(iter(d["days"].values())).append(["", base64.b64encode(b"k" * 16).decode()]),
        lambda d: next(iter(d["days"].values())).append(["M-2", base64.b64encode(b"short").decode()]),
    ],
)
def test_malformed_documents_are_refused_with_a_reason(change):
    doc = document(os.urandom(32))
    change(doc)
    with pytest.raises(BeaconDocumentError, match="member_beacons"):
        resolver_from(doc)
    with pytest.raises(BeaconDocumentError):
        resolver_from("not a document")


def test_the_ble_station_takes_the_document_and_a_bad_one_resolves_nobody(tmp_path, caplog):
    root = os.urandom(32)
    radios = PresenceRadios(config(tmp_path, ble_adapter="hci0"), lambda c: None)
    radios.use_beacons(document(root))
    assert radios.stations["ble"].as_dict()["resolvable_members"] == 1
    radios.use_beacons({"days": "?"})
    assert radios.stations["ble"].as_dict()["resolvable_members"] == 0
    assert "member beacons stay anonymous" in caplog.text
    PresenceRadios(config(tmp_path / "off"), lambda c: None).use_beacons(document(root))  # no BLE: nothing to do
