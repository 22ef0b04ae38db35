"""Scan to panel latency: from a scanner's write on a pty to the event on the cashier panel's stream.

A real ``edge-agent run`` (set up offline by tools/panel_till.py) reads its serial scanner from a
pty; this process writes each scan into the pty and reads the panel's server-sent events as the
page's ``EventSource`` would, timing each scan from the write to the end of its event. Scans go one
at a time, so the figure is the path's latency, not a queue's: a fresh member code (verified, and
its digest committed to the replay cache with ``synchronous=FULL``), a forged one, a product barcode
and a payment code in turn. Then, if Debian's chromium is installed, the same mix goes to the page
in headless Chromium and is timed from the write to the DOM update (a MutationObserver in the page
notes the wall-clock time). The baseline, measured in the same run, is a GET of the panel's
stylesheet over a kept-alive loopback connection: what any answer from the agent's process costs.
Target: p99 at most 50 ms (issue 7).
"""

from __future__ import annotations

import http.client
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from bench.common import line, load_note, median
from tools.panel_till import CHROMIUM, OBSERVE, Chain, PanelTill

TARGET_P99 = 0.050
PRODUCT = "6901234567892"
PAYMENT = "134567890123456789"


class EventStream:
    """The panel's /events as a browser reads it: one parsed card per call."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.connection.request("GET", "/events", headers={"Accept": "text/event-stream"})
        self.response = self.connection.getresponse()

    def next_card(self) -> dict[str, object]:
        while True:
            raw = self.response.fp.readline()
            if not raw:
                raise RuntimeError("the panel closed its event stream")
            if raw.startswith(b"data: "):
                return dict(orjson.loads(raw[6:]))

    def close(self) -> None:
        self.connection.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _payloads(chain: Chain, scans: int, prefix: str) -> list[tuple[str, str]]:
    payloads: list[tuple[str, str]] = []
    for n in range(scans):
        kind = ("member", "forged", "product", "payment")[n % 4]
        member = f"{prefix}{n // 4:05d}"
        if kind == "member":
            payloads.append((kind, chain.code(member)))
        elif kind == "forged":
            payloads.append((kind, chain.forged_code(member)))
        else:
            payloads.append((kind, PRODUCT if kind == "product" else PAYMENT))
    return payloads


def main(scans: int = 1000, browser_scans: int = 200) -> None:
    print(f"panel: scan to panel latency over {scans} scans, one at a time ({load_note()})")
    chain = Chain()
    payloads = _payloads(chain, scans, "M-")
    in_browser = _payloads(chain, browser_scans, "B-") if CHROMIUM.exists() else []
    browser: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        till = PanelTill(Path(tmp), chain, {})
        till.start()
        try:
            stream = EventStream(till.port)
            baseline = _baseline(till.port, 200)
            latencies: dict[str, list[float]] = {"member": [], "forged": [], "product": [], "payment": []}
            for kind, payload in payloads:
                started = time.perf_counter()
                till.scan(payload)
                card = stream.next_card()
                latencies[kind].append(time.perf_counter() - started)
                expected = {"member": "member", "forged": "rejected"}.get(kind, kind)
                assert card["kind"] == expected, (kind, card)
            stream.close()
            browser = _browser(till, in_browser, shown=len(payloads)) if in_browser else []
        finally:
            till.stop()
    every = [x for values in latencies.values() for x in values]
    p50, p99 = median(every), percentile(every, 0.99)
    line("baseline: GET /panel.css, loopback, median", f"{baseline * 1000:.2f} ms")
    for kind, values in latencies.items():
        line(
            f"{kind} scans ({len(values)}): p50 / p99",
            f"{median(values) * 1000:.2f} / {percentile(values, 0.99) * 1000:.2f} ms",
        )
    line(f"all scans ({len(every)}): p50", f"{p50 * 1000:.2f} ms ({p50 / baseline:.1f}x baseline)")
    line(f"all scans ({len(every)}): p99", f"{p99 * 1000:.2f} ms (target <= {TARGET_P99 * 1000:.0f} ms)")
    line("all scans: max", f"{max(every) * 1000:.2f} ms, mean {statistics.fmean(every) * 1000:.2f} ms")
    if browser:
        line(
            f"in headless Chromium ({len(browser)}): p50 / p99",
            f"{median(browser) * 1000:.2f} / {percentile(browser, 0.99) * 1000:.2f} ms (write to DOM update)",
        )
    else:
        line("in headless Chromium", f"not measured: {CHROMIUM} is missing")


def _browser(till: PanelTill, payloads: list[tuple[str, str]], shown: int) -> list[float]:
    """Seconds from each scan's write to the page showing it, in headless Chromium (``shown``: scans so far)."""
    from playwright.sync_api import sync_playwright

    latencies = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(till.url)
            page.wait_for_selector(f"#panel[data-seq='{shown}']", timeout=10_000)  # the last scan, on connecting
            page.evaluate(OBSERVE)
            for n, (_kind, payload) in enumerate(payloads):
                written = till.scan(payload)
                handle = page.wait_for_function("(seq) => window.shown[seq]", arg=shown + 1 + n, timeout=10_000)
                latencies.append(handle.json_value() / 1000 - written)
        finally:
            browser.close()
    return latencies


def _baseline(port: int, requests: int) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        connection.request("GET", "/panel.css")
        connection.getresponse().read()
        times.append(time.perf_counter() - started)
    connection.close()
    return median(times)
