"""Central writes one access line per request, over a real waitress server: who, what, status, size, time.

The line names the signed device, the online source or the console user; it never holds what was
typed into a query string, and nothing in a path can break it into two lines.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from flask import Flask

from shared.crypto import b64
from tests.central.live import serving
from tests.central.sources_support import new_key, source_event
from tests.central.support import PASSWORD, USERNAME, Agent, create_user, csrf_from, token_for
from tools.processes import Central

LINE = re.compile(
    r"^remote=(?P<remote>\S+) who=(?P<who>\S+) method=(?P<method>\S+) path=(?P<path>\S+)"
    r"(?: query=(?P<query>\S+))? status=(?P<status>\d{3}) bytes=(?P<bytes>\d+) ms=(?P<ms>\d+)$"
)


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    lines = []
    for record in caplog.records:
        if record.name == "central.access":
            match = LINE.match(record.getMessage())
            assert match, record.getMessage()
            lines.append(match.groupdict())
    return lines


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="central.access")
    return caplog


def test_each_request_is_one_line_naming_who_asked(
    make_app: Callable[..., Flask], logged: pytest.LogCaptureFixture
) -> None:
    app = make_app(console__secure_cookie=False)  # plain HTTP over loopback
    agent = Agent()
    create_user(app)
    key = new_key(app)
    with serving(app) as url:
        web = requests.Session()
        enrolled = web.post(
            url + "/api/v1/enroll",
            json={"token": token_for(app), "public_key": b64(agent.public_key), "hostname": "pos-1"},
        )
        assert enrolled.status_code == 201, enrolled.text
        agent.device_id = enrolled.json()["device_id"]
        body = gzip.compress(agent.body([agent.receipt("R1", phone="13812345678")]))
        assert web.post(url + "/api/v1/batches", data=body, headers=agent.signed_headers(body)).status_code == 200
        sent = web.post(
            url + "/api/v1/sources/miniprogram/events",
            json={"schema": 1, "events": [source_event("e1", identifiers={"app_user_id": "u1"})]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert sent.status_code == 200, sent.text
        token = csrf_from(web.get(url + "/console/login").text)
        form = {"username": USERNAME, "password": PASSWORD, "csrf_token": token}
        assert web.post(url + "/console/login", data=form, allow_redirects=False).status_code == 302
        # What a service desk types into the search box stays out of the log.
        assert web.get(url + "/console/customers", params={"q": "13812345678", "page": "1"}).status_code == 200
        assert web.get(url + "/healthz").status_code == 200
        assert requests.post(url + "/api/v1/batches", data=b"x", timeout=10).status_code == 401

    lines = access_lines(logged)
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("POST", "/api/v1/enroll", "201"),
        ("POST", "/api/v1/batches", "200"),
        ("POST", "/api/v1/sources/miniprogram/events", "200"),
        ("GET", "/console/login", "200"),
        ("POST", "/console/login", "302"),
        ("GET", "/console/customers", "200"),
        ("POST", "/api/v1/batches", "401"),
    ]  # a healthy /healthz is left out
    assert [line["who"] for line in lines] == [
        "-",
        f"device:{agent.device_id}",
        "source:miniprogram",
        "-",
        "-",
        f"user:{USERNAME}",
        "-",
    ]
    assert lines[5]["query"] == "q,page"
    assert all(line["remote"] == "127.0.0.1" and int(line["bytes"]) > 0 for line in lines)
    assert "13812345678" not in logged.text


def test_a_path_cannot_add_a_line_or_a_field(app: Flask, logged: pytest.LogCaptureFixture) -> None:
    with serving(app) as url, requests.Session() as web:
        # requests would encode these itself; sent raw, they reach WSGI as typed.
        prepared = requests.Request("GET", url + "/api/v1/x").prepare()
        prepared.url = url + "/api/v1/a%0Awho=user:admin%20status=200?q=%0A"
        assert web.send(prepared).status_code == 404

    (line,) = access_lines(logged)
    assert line["who"] == "-"
    assert line["path"] == "/api/v1/a%0Awho=user:admin%20status=200"
    assert line["status"] == "404"


def test_the_log_can_be_switched_off(make_app: Callable[..., Flask], logged: pytest.LogCaptureFixture) -> None:
    app = make_app(server__access_log=False)
    with serving(app) as url:
        assert requests.get(url + "/console/login", timeout=10).status_code == 200
    assert access_lines(logged) == []


def _raw_request(port: int, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` as is and read the answer until the server closes: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    top, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def test_what_waitress_refuses_itself_is_answered_and_logged_like_the_app(tmp_path: Path) -> None:
    central = Central(tmp_path, f"sqlite:///{tmp_path}/central.db")
    with central.config.open("a") as config:
        config.write("[ingest]\nmax_body_bytes = 1024\n")
    central.start()
    try:
        # Past ingest.max_body_bytes and its margin: waitress answers before reading the body.
        status, headers, body = _raw_request(
            central.port,
            b"POST /api/v1/batches?q=13812345678 HTTP/1.1\r\nHost: central\r\nContent-Length: 10000000\r\n\r\n",
        )
        assert (status, headers["content-type"]) == (413, "application/json")
        assert json.loads(body)["error"]["code"] == "too_large"
        # Chunked framing waitress cannot read.
        status, headers, body = _raw_request(
            central.port,
            b"POST /api/v1/sources/app/events HTTP/1.1\r\nHost: central\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        )
        assert (status, headers["content-type"]) == (400, "application/json")
        assert json.loads(body)["error"]["code"] == "invalid_request"
    finally:
        central.close()
    log = central.process.log.read_text()
    assert "path=/api/v1/batches query=q status=413" in log
    assert "path=/api/v1/sources/app/events status=400" in log
    assert "13812345678" not in log
