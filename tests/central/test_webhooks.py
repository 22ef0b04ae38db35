"""Webhook calls: signed, retried with backoff against a real loopback receiver, dead-lettered, cancelled,
and kept off HQ's own network unless allowed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from sqlalchemy import select

from central import db as central_db
from central import outbound
from central.campaigns import triggers, webhooks
from central.campaigns.models import DEAD, DELIVERED, WebhookDelivery
from tests.central.consent_support import consent_event, customer_of, load, signup

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
SECRET = "s3cret-shared-with-the-receiver"
# The tests' receivers listen on loopback, an address webhooks are refused by default.
POLICY = webhooks.Policy(
    max_attempts=3, backoff_seconds=60, backoff_max_seconds=3600, timeout_seconds=5, allow_private=True
)


class Receiver:
    """A real HTTP server on loopback answering each POST with the next programmed status."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.calls: list[tuple[dict[str, str], bytes]] = []


@contextmanager
def receiving(statuses: list[int]) -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver(statuses)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.calls.append((dict(self.headers), body))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _fire(app, url: str, phone: str) -> int:
    declared = triggers.check(
        "bday-hook", "birthday", {"days_before": 3, "channel": "sms"}, "webhook", {"url": url, "secret": SECRET}, 0.0
    )
    with central_db.session_factory(app)() as db:
        triggers.declare(db, declared, actor="test", now=NOW)
        db.commit()
    load(
        app,
        [
            signup("s", phone, birthday=date(1990, 11, 24), at=NOW - timedelta(days=9)),
            consent_event("c", phone, granted=True, at=NOW - timedelta(days=8)),
        ],
    )
    with central_db.session_factory(app)() as db:
        assert triggers.evaluate_all(db, NOW, "Asia/Shanghai", "test")["queued"] == 1
    return customer_of(app, phone)


def _deliver(app, at: datetime) -> dict[str, int]:
    with central_db.session_factory(app)() as db:
        return webhooks.deliver_due(db, lambda: at, POLICY, timezone="Asia/Shanghai")


def _delivery(app):
    with central_db.session_factory(app)() as db:
        return db.execute(select(WebhookDelivery.__table__)).one()


def test_a_call_is_signed_retried_with_backoff_and_delivered(app):
    with receiving([500, 503]) as (receiver, url):
        customer = _fire(app, url, "13905730001")
        assert _deliver(app, NOW) == {"delivered": 0, "retry": 1, "dead": 0, "cancelled": 0}
        assert _delivery(app).next_attempt_at == NOW + timedelta(seconds=60)
        assert _deliver(app, NOW + timedelta(seconds=59))["retry"] == 0  # not due yet
        assert _deliver(app, NOW + timedelta(seconds=60))["retry"] == 1
        assert _delivery(app).next_attempt_at == NOW + timedelta(seconds=180)  # doubled
        assert _deliver(app, NOW + timedelta(seconds=180))["delivered"] == 1
        assert _deliver(app, NOW + timedelta(days=1))["delivered"] == 0  # delivered once
    assert len(receiver.calls) == 3
    headers, body = receiver.calls[-1]
    sent_at = int((NOW + timedelta(seconds=180)).timestamp())
    assert webhooks.verify(SECRET, headers[webhooks.SIGNATURE_HEADER], body, sent_at)
    assert not webhooks.verify("another-secret-entirely", headers[webhooks.SIGNATURE_HEADER], body, sent_at)
    assert not webhooks.verify(SECRET, headers[webhooks.SIGNATURE_HEADER], body + b" ", sent_at)
    assert not webhooks.verify(SECRET, headers[webhooks.SIGNATURE_HEADER], body, sent_at + 3600)  # replayed late
    document = orjson.loads(body)
    assert (document["trigger"], document["customer_id"], document["occasion"]) == ("bday-hook", customer, "2026")
    assert document["detail"] == {"birthday": "1990-11-24"}
    row = _delivery(app)
    assert (row.status, row.attempts) == (DELIVERED, 3)


def test_a_call_that_keeps_failing_is_dead_lettered_and_can_be_retried(app, user_client):
    with receiving([500, 500, 500, 200]) as (receiver, url):
        _fire(app, url, "13905730002")
        at = NOW
        for _ in range(3):
            _deliver(app, at)
            at += timedelta(hours=1)
        row = _delivery(app)
        assert (row.status, row.attempts, row.last_error) == (DEAD, 3, "HTTP 500")
        assert _deliver(app, at + timedelta(days=1)) == {"delivered": 0, "retry": 0, "dead": 0, "cancelled": 0}
        dead = user_client.get("/api/v1/webhooks/dead").get_json()["dead"]
        assert [(d["id"], d["last_error"]) for d in dead] == [(row.id, "HTTP 500")]
        assert user_client.post(f"/api/v1/webhooks/{row.id}/retry").status_code == 200
        assert _deliver(app, NOW + timedelta(days=2))["delivered"] == 1
    assert len(receiver.calls) == 4


def test_an_unreachable_receiver_counts_as_a_failed_attempt(app):
    with receiving([]) as (_, url):
        pass  # the port is closed again: connections are refused
    _fire(app, url, "13905730003")
    assert _deliver(app, NOW)["retry"] == 1
    assert "Connection" in (_delivery(app).last_error or "")


def test_a_withdrawal_before_delivery_cancels_the_call(app):
    with receiving([]) as (receiver, url):
        _fire(app, url, "13905730004")
        load(app, [consent_event("w", "13905730004", granted=False, at=NOW - timedelta(minutes=1))])
        assert _deliver(app, NOW)["cancelled"] == 1
    assert receiver.calls == []
    assert _delivery(app).status == webhooks.CANCELLED


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_webhook_to_this_machine_or_hqs_network_is_refused_unless_allowed(app, host):
    """A marketer's webhook URL cannot make central call HQ's own services (server-side request forgery):
    the address connected to is checked, so a name that resolves to one is refused as well."""
    strict = webhooks.Policy(max_attempts=2, backoff_seconds=60, backoff_max_seconds=3600, timeout_seconds=5)
    with receiving([200]) as (receiver, url):
        _fire(app, url.replace("127.0.0.1", host), "13905730003")
        with central_db.session_factory(app)() as db:
            assert webhooks.deliver_due(db, lambda: NOW, strict)["retry"] == 1
        row = _delivery(app)
        assert row.last_error.startswith("refused: ") and "webhooks.allow_private_addresses" in row.last_error
        assert (f"{host} (127.0.0.1)" if host == "localhost" else "127.0.0.1 is not a public address") in row.last_error
        assert receiver.calls == []
        with central_db.session_factory(app)() as db:  # allowed: HQ's receivers live there
            assert webhooks.deliver_due(db, lambda: NOW + timedelta(hours=1), POLICY)["delivered"] == 1
    assert len(receiver.calls) == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database involved
@pytest.mark.parametrize(
    ("address", "reachable"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # a cloud's metadata service
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 - an address to classify, not to bind
        ("224.0.0.1", False),
        ("203.0.113.5", False),
        ("::1", False),
        ("fd00::1", False),
        ("fe80::1%eth0", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_only_public_addresses_are_called(backend, address, reachable):
    assert outbound.public(address) is reachable


class _Connected:
    """What a socket connected to ``address`` reports (there is no public receiver to connect to here)."""

    def __init__(self, address: str) -> None:
        self.address, self.closed = address, False

    def getpeername(self) -> tuple[str, int]:
        return self.address, 80

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database involved
@pytest.mark.parametrize("allow_private", [False, True])
def test_a_public_receiver_is_called_over_https_only(backend, allow_private):
    """A webhook's body names customers (and their identifiers in an administrator's export): plain
    http:// would carry them in clear across the internet, so a public address must be https://."""
    plain = _Connected("8.8.8.8")
    with pytest.raises(outbound.BlockedAddress, match=r"plain http://.*use its https:// address"):
        outbound.check_peer(plain, "hooks.example.com", allow_private=allow_private, plain=True)  # type: ignore[arg-type]
    assert plain.closed
    secure = _Connected("8.8.8.8")
    assert outbound.check_peer(secure, "hooks.example.com", allow_private=allow_private, plain=False) is secure  # type: ignore[arg-type]
    assert not secure.closed


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database involved
def test_hqs_own_receivers_may_take_plain_http_when_allowed(backend):
    inside = _Connected("10.1.2.3")
    assert outbound.check_peer(inside, "crm.hq.lan", allow_private=True, plain=True) is inside  # type: ignore[arg-type]
    with pytest.raises(outbound.BlockedAddress, match="not a public address"):
        outbound.check_peer(_Connected("10.1.2.3"), "crm.hq.lan", allow_private=False, plain=True)  # type: ignore[arg-type]
