"""The HTTP transport against real loopback servers: TLS trust three ways, and failures in words."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from edge_agent.central_url import CentralUrlError, check_central_url
from edge_agent.outbox import Capture
from edge_agent.sync import SyncJob
from edge_agent.tls import TlsSettingError, parse_fingerprint
from edge_agent.transport import HttpTransport, TransportError
from shared.crypto import RequestSigner, new_signing_key
from tests.edge_agent.servers import json_app, raw_app, waitress_on_loopback
from tools.certs import issue, make_authority
from tools.faultproxy import Fault, FaultProxy


@pytest.fixture(scope="module")
def authority():
    return make_authority()


@pytest.fixture
def plain():
    with waitress_on_loopback(json_app()) as url:
        yield url


@pytest.fixture
def tls_proxy(plain, authority):
    proxy = FaultProxy(plain, tls=issue(authority).context()).start()
    yield proxy
    proxy.close()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("cdp.example.com", "lacks http:// or https:// (for example https://cdp.example.com)"),
        ("127.0.0.1:8000/", "lacks http:// or https:// (for example https://127.0.0.1:8000)"),
        ("ftp://cdp.example.com", "must start with http:// or https://, not ftp://"),
        ("https://", "names no host"),
        ("http://cdp.example.com:99999", "invalid port"),
    ],
)
def test_unusable_urls_are_refused_with_how_to_write_them(url, fragment):
    with pytest.raises(CentralUrlError) as info:
        check_central_url(url)
    assert fragment in str(info.value)
    assert repr(url.strip()) in str(info.value)


def test_a_good_url_loses_its_trailing_slash():
    assert check_central_url(" https://cdp.example.com/ ") == "https://cdp.example.com"


def test_headers_of_the_answer_are_kept(plain):
    reply = HttpTransport(plain).get("/healthz", 5)
    assert reply.status == 200
    assert reply.header("date") is not None and reply.header("DATE") == reply.headers["Date"]


def test_tls_with_the_ca_file(tls_proxy, authority, tmp_path):
    ca = authority.write(tmp_path / "ca.pem")
    assert HttpTransport(tls_proxy.url, ca_file=str(ca)).get("/healthz", 5).status == 200


def test_fingerprints_are_read_as_openssl_prints_them(authority):
    cert = issue(authority)
    colons = ":".join(cert.fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    assert parse_fingerprint(f"sha256 Fingerprint={colons}") == cert.fingerprint
    assert parse_fingerprint(colons) == cert.fingerprint


def test_a_pinned_fingerprint_accepts_that_certificate_whoever_signed_it(plain, tmp_path):
    self_signed = issue(make_authority("nobody trusts this"))
    proxy = FaultProxy(plain, tls=self_signed.context()).start()
    try:
        assert HttpTransport(proxy.url, fingerprint=self_signed.fingerprint).get("/healthz", 5).status == 200
        with pytest.raises(TransportError) as info:
            HttpTransport(proxy.url, fingerprint="ab" * 32).get("/healthz", 5)
    finally:
        proxy.close()
    message = str(info.value)
    assert "fingerprint mismatch" in message
    assert f"expected {'ab' * 32}, got {self_signed.fingerprint}" in message


def test_a_certificate_from_another_ca_is_refused_naming_the_ca_file(tls_proxy, tmp_path):
    other = make_authority("another CA").write(tmp_path / "other-ca.pem")
    with pytest.raises(TransportError) as info:
        HttpTransport(tls_proxy.url, ca_file=str(other)).get("/healthz", 5)
    host = tls_proxy.url.removeprefix("https://")
    assert str(info.value) == f"central's certificate at {host} is not signed by the CA in {other}"


def test_without_a_ca_file_the_system_store_is_used_and_the_fix_is_named(tls_proxy):
    with pytest.raises(TransportError) as info:
        HttpTransport(tls_proxy.url).get("/healthz", 5)
    assert "not signed by a CA this PC trusts: set sync.ca_file" in str(info.value)


def test_a_certificate_for_another_name_is_refused(plain, authority, tmp_path):
    proxy = FaultProxy(plain, tls=issue(authority, ("cdp.example.com",)).context()).start()
    try:
        with pytest.raises(TransportError) as info:
            HttpTransport(proxy.url, ca_file=str(authority.write(tmp_path / "ca.pem"))).get("/healthz", 5)
    finally:
        proxy.close()
    assert f"central's certificate is not valid for 127.0.0.1:{proxy.port}" in str(info.value)


def test_unusable_tls_settings_name_the_setting(tmp_path, plain):
    with pytest.raises(TlsSettingError, match=r"sync.ca_file /nonexistent/ca.pem does not exist"):
        HttpTransport(plain, ca_file="/nonexistent/ca.pem")
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello")
    with pytest.raises(TlsSettingError, match="holds no PEM certificate"):
        HttpTransport(plain, ca_file=str(not_pem))
    with pytest.raises(TlsSettingError, match=r"sync.tls_fingerprint 'abc' is not a SHA-256 fingerprint"):
        HttpTransport(plain, fingerprint="abc")


def test_https_to_a_plain_http_server_fails_fast_and_says_so(plain):
    https = plain.replace("http://", "https://")
    transport = HttpTransport(https, connect_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        transport.post("/api/v1/enroll", b"{}", {}, 30.0)
    assert time.monotonic() - started < 5  # the connect timeout plus a probe, not the 30 s read timeout
    host = plain.removeprefix("http://")
    assert str(info.value).startswith(f"central at {host} speaks plain HTTP, not TLS: use http://{host}")


def test_refused_connections_and_timeouts_are_described():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransportError, match=rf"127.0.0.1:{port} refused the connection \(is central running"):
        HttpTransport(f"http://127.0.0.1:{port}").get("/healthz", 5)


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [
        (Fault.STALL, "accepted the connection but did not answer within 0.3 s"),
        (Fault.DROP, "closed the connection without answering"),
        (Fault.CUT, "cut its answer short"),
    ],
)
def test_faults_after_connecting_are_described(plain, fault, fragment):
    proxy = FaultProxy(plain, stall_seconds=1.0).start()
    # Only the stall is about the read timeout; the others must not hit it when the machine is slow
    # to let central answer (a cut answer is cut after central's answer has begun).
    timeout = 0.3 if fault is Fault.STALL else 10.0
    try:
        proxy.script(fault)
        with pytest.raises(TransportError) as info:
            HttpTransport(proxy.url).post("/api/v1/batches", b"x" * 100, {}, timeout)
    finally:
        proxy.close()
    assert fragment in str(info.value)
    assert "Traceback" not in str(info.value) and "urllib3" not in str(info.value)


@pytest.mark.parametrize("status", ["307 Temporary Redirect", "308 Permanent Redirect", "302 Found"])
def test_a_redirect_is_not_followed_and_says_where_it_pointed(status):
    """A 307 or 308 makes an HTTP client send the same body again to the new address: a batch of
    customers' phone numbers, signed, to wherever a proxy (or whoever answers in its place) says."""
    elsewhere = raw_app("200 OK", b'{"accepted": []}')
    with waitress_on_loopback(elsewhere) as other:
        target = f"{other}/api/v1/batches"
        with waitress_on_loopback(raw_app(status, b"", [("Location", target)])) as url:
            transport = HttpTransport(url)
            with pytest.raises(TransportError) as info:
                transport.post("/api/v1/batches", b"13812345678", {"X-CDP-Device": "d"}, 5)
            with pytest.raises(TransportError) as relative:
                transport.get("/healthz", 5)
    assert elsewhere.calls == []
    assert str(info.value) == (
        f"central at {url} answered {status[:3]} redirecting to {target}; the agent does not follow redirects:"
        f" use {other} as central's URL"
    )
    assert str(relative.value).endswith("if central moved, use its new address as central's URL")


def test_the_plain_http_address_behind_the_readme_nginx_names_the_https_one():
    """nginx's `return 301 https://$host$request_uri` for port 80, as the README configures it."""
    moved = raw_app("301 Moved Permanently", b"", [("Location", "https://cdp.example.com/api/v1/batches")])
    with waitress_on_loopback(moved) as url, pytest.raises(TransportError) as info:
        HttpTransport(url).post("/api/v1/batches", b"{}", {}, 5)
    assert str(info.value).endswith("use https://cdp.example.com as central's URL")


@pytest.mark.parametrize("url", ["https://user:s3cret@cdp.example.com", "https://s3cret@cdp.example.com:8443"])
def test_a_url_carrying_a_password_is_refused_without_repeating_it(url):
    """Agents sign every request with their device key; a password in the URL would only end up in
    logs, status files and heartbeats, which print central's URL."""
    with pytest.raises(CentralUrlError) as info:
        check_central_url(url)
    assert "must not carry a user name or password" in str(info.value)
    assert "s3cret" not in str(info.value)


# What central's console answers under /console/ to a request meant for its API: a whole HTML page.
CONSOLE_PAGE = (
    '<!doctype html>\n<html lang="zh-CN">\n<head>\n  <meta charset="utf-8">\n  <title>零售 CDP 控制台</title>\n'
    "</head>\n<body>\n" + "  <p>请登录</p>\n" * 200 + "</body>\n</html>\n"
).encode()
HTML = [("Content-Type", "text/html; charset=utf-8")]


def test_a_web_page_for_an_answer_becomes_one_line_naming_its_type_and_what_to_check():
    app = raw_app("400 BAD REQUEST", CONSOLE_PAGE, HTML)
    with waitress_on_loopback(app) as url:
        reply = HttpTransport(url + "/console/").post("/api/v1/batches", b"{}", {}, 5)
    assert reply.status == 400 and reply.foreign
    assert reply.body.decode() == (
        "not central's API but a text/html answer ('<!doctype html>'); check central's URL: it must be"
        " central's base address, e.g. https://cdp.example.com, with no path such as /console/"
    )
    assert len(reply.body) <= 200  # what the sync job and the downlink keep of an error body


def test_the_sync_warning_about_a_web_page_is_one_line_without_html(outbox, caplog):
    outbox.append([Capture.of("pos.receipt", {"receipt_no": "R1", "total": "1.00"}, "2026-11-23T02:00:00Z")])
    with waitress_on_loopback(raw_app("400 BAD REQUEST", CONSOLE_PAGE, HTML)) as url:
        sync = SyncJob(outbox, HttpTransport(url + "/console/"), RequestSigner("dev_x", new_signing_key()[0]))
        with caplog.at_level(logging.WARNING):
            sync.run()
        sync.close()
    assert sync.status.last_error == (
        "central answered 400: not central's API but a text/html answer ('<!doctype html>'); check central's URL:"
        " it must be central's base address, e.g. https://cdp.example.com, with no path such as /console/"
    )
    [warning] = [r.getMessage() for r in caplog.records if "sync failed" in r.getMessage()]
    assert "\n" not in warning and "<html" not in warning and "请登录" not in warning


def test_central_s_own_json_errors_are_kept_as_they_are():
    body = b'{"error": {"code": "invalid_batch", "message": "events must be a list"}}'
    with waitress_on_loopback(raw_app("400 BAD REQUEST", body, [("Content-Type", "application/json")])) as url:
        reply = HttpTransport(url).post("/api/v1/batches", b"{}", {}, 5)
    assert (reply.status, reply.body, reply.foreign) == (400, body, False)
