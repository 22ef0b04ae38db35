"""`edge-agent parse FILE --kind wifi|ble --json`: one object per frame or advertisement, addresses hashed."""

from __future__ import annotations

import json

import pytest

from edge_agent.cli import main


@pytest.fixture
def wifi_sample(samples_dir):
    wifi = samples_dir / "wifi"
    expected = json.loads((wifi / "airodump__expected_probe_requests.json").read_text())
    return wifi / "airodump__80211-sample1.pcap", expected["files"]["airodump__80211-sample1.pcap"]


@pytest.fixture
def vectors(samples_dir):
    return json.loads((samples_dir / "ble" / "ble_vectors.json").read_text())


def run(capsys, *argv):
    assert main(["parse", *map(str, argv)]) == 0
    out, err = capsys.readouterr()
    return [json.loads(line) for line in out.splitlines()], err


def test_wifi_capture_gives_one_object_per_frame_with_addresses_shown_on_request(capsys, wifi_sample):
    path, expected = wifi_sample
    objects, err = run(capsys, path, "--kind", "wifi", "--json", "--show-addresses")
    frames = [o for o in objects if "frame" in o]
    assert len(frames) == expected["frames_total"]
    probes = [o for o in frames if o["probe_request"]]
    assert [(o["frame"], o["address"], o["ssid_hex"], o["frequency_mhz"], o["signal_dbm"]) for o in probes] == [
        (p["frame"], p["sa"], p["ssid_hex"], p["channel_freq_mhz"], p["wlan_radio_signal_dbm_tshark"])
        for p in expected["probe_requests"]
    ]
    assert all(o["reason"] for o in frames if not o["probe_request"])
    assert f"{expected['frames_total']} frames" in err


def test_wifi_addresses_are_hashed_by_default_and_consistently_within_a_run(capsys, wifi_sample):
    path, expected = wifi_sample
    objects, _ = run(capsys, path, "--kind", "wifi", "--json")
    probes = [o for o in objects if o.get("probe_request")]
    raw = {p["sa"] for p in expected["probe_requests"]}
    assert all(o["address"].startswith("h:") for o in probes)
    assert len({o["address"] for o in probes}) == len(raw)
    text = json.dumps(objects)
    assert not any(address in text for address in raw)


def test_ble_dump_gives_one_object_per_line_hex_or_bleak_record(capsys, tmp_path, vectors):
    lines = []
    for vector in vectors:
        if "hex" in vector:
            lines.append(vector["hex"])
        else:
            record = {k: vector[k] for k in ("manufacturer_data", "service_data", "service_uuids") if k in vector}
            lines.append(json.dumps({**record, "address": "C8:2B:96:12:34:56", "rssi": -61}))
    dump = tmp_path / "ble.txt"
    dump.write_text("\n".join(lines) + "\n")
    objects, _ = run(capsys, dump, "--kind", "ble", "--json")
    assert [o["line"] for o in objects] == list(range(1, len(vectors) + 1))
    for vector, obj in zip(vectors, objects, strict=True):
        assert obj["beacon"] is (vector["expected"] is not None), vector["id"]
        if obj["beacon"]:
            assert vector["kind"] in {frame["kind"] for frame in obj["frames"]}, vector["id"]
            if obj["address"] is not None:
                assert obj["address"].startswith("h:")
    assert "C8:2B:96:12:34:56" not in json.dumps(objects)
    shown, _ = run(capsys, dump, "--kind", "ble", "--json", "--show-addresses")
    assert any(o.get("address") == "C8:2B:96:12:34:56" for o in shown)


def test_the_receipt_parse_is_still_the_default(capsys, tmp_path):
    capture = tmp_path / "till.bin"
    capture.write_bytes(b"")
    assert main(["parse", str(capture)]) == 0
    assert "0 receipts" in capsys.readouterr().err
