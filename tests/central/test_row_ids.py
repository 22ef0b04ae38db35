"""An id past what its column holds names no row: a 404, a 400 naming the range, never a 500.

``customers.id`` and most other ids are INTEGER columns, which PostgreSQL holds in 32 bits: it refuses
to bind 2^31 to one ("integer out of range"), so ``/api/v1/customers/2147483648`` ended in an internal
error on PostgreSQL where SQLite answered "no such customer". Every route with an id in its path is
asked for 2^31 and for 2^63-1 (the most a BIGINT holds), and for 2^31-1, which must be answered as
any id no row has; ids in query strings, JSON bodies and console forms are answered as each answers
an id it cannot use.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import IntegerConverter

from central import db as central_db
from central.identity.models import Customer
from central.params import MAX_INTEGER_ID, MAX_ROW_ID
from tests.central.support import csrf_from, post_form
from tests.central.test_identity_api import feed
from tests.central.test_segments import _save

PAST_INTEGER = 2**31  # one past an INTEGER column on PostgreSQL
PAST_BIGINT = 2**63
UNKNOWN = 4242  # an id no row has, well within any column
NOT_ASCII = "²"  # str.isdigit() says yes, int() refuses it

# What a request sends beside the id in its path, so that only the id can refuse it.
FORMS = {
    "console.decide": {"decision": "accept"},
    "console.add_note": {"text": "called back"},
    "console.split_customer": {"ledger_id": "1"},
    "console.remove_identifier": {"identifier_id": "1"},
}
BODIES = {
    "identity.split_customer": {"ledger_id": 1},
    "coupons.resolve": {"resolution": "refunded at the till"},
}
# Path arguments that are not ids, and a value each accepts.
OTHER_ARGUMENTS = {"decision": "accept"}
_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


@pytest.fixture
def answering(app: Flask) -> Flask:
    """The app answering an unhandled error with a 500, as in production, instead of raising it."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def _id_routes(app: Flask, number: int) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) for every route with an integer in its path, that integer set to ``number``."""
    out = []
    for rule in app.url_map.iter_rules():
        integer = {c for c, converter in app.url_map.converters.items() if issubclass(converter, IntegerConverter)}
        ids = {name for converter, name in _ARGUMENT.findall(rule.rule) if (converter or "default") in integer}
        if ids:
            path = rule.rule
            for found in _ARGUMENT.finditer(rule.rule):
                path = path.replace(found[0], str(number) if found[2] in ids else OTHER_ARGUMENTS[found[2]])
            out += [(rule.endpoint, m, path) for m in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    return out


def _answers(app: Flask, client: FlaskClient, number: int) -> dict[tuple[str, str], tuple[str, int]]:
    """(endpoint, method) -> (the path asked, the status answered) for every route with ``number`` in its path."""
    token = csrf_from(client.get("/console/").get_data(as_text=True))
    out = {}
    for endpoint, method, path in _id_routes(app, number):
        if method == "GET":
            response = client.get(path)
        elif path.startswith("/api/"):
            response = client.open(path, method=method, json=BODIES.get(endpoint, {}))
        else:
            response = client.open(path, method=method, data={**FORMS.get(endpoint, {}), "csrf_token": token})
        out[endpoint, method] = (path, response.status_code)
    return out


def test_every_route_with_an_id_in_its_path_is_asked(answering):
    endpoints = {endpoint for endpoint, _, _ in _id_routes(answering, 1)}
    assert {"customers.customer", "console.customer", "identity.decide", "coupons.revoke"} <= endpoints
    assert len(endpoints) >= 25


@pytest.mark.parametrize("number", [PAST_INTEGER, MAX_ROW_ID])
def test_an_id_in_a_path_past_its_column_is_not_found(answering, user_client, number):
    answered = _answers(answering, user_client, number).items()
    wrong = sorted(f"{method} {path} answered {status}" for (_, method), (path, status) in answered if status != 404)
    assert not wrong, "\n".join(wrong)


def test_the_last_id_an_integer_holds_is_answered_as_an_unknown_one(answering, user_client):
    last = _answers(answering, user_client, MAX_INTEGER_ID)
    unknown = _answers(answering, user_client, UNKNOWN)
    wrong = sorted(
        f"{method} {path} answered {status}, not {unknown[endpoint, method][1]}"
        for (endpoint, method), (path, status) in last.items()
        if status != unknown[endpoint, method][1]
    )
    assert not wrong, "\n".join(wrong)


def _customer(app: Flask) -> int:
    feed(app, {"member_id": "M100", "phone": "13812345678"})
    with central_db.session_factory(app)() as db:
        return int(db.scalars(select(Customer.id)).one())


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/api/v1/segments/loyal/members?after={PAST_INTEGER}", 400),
        (f"/api/v1/coupons/campaigns/{PAST_INTEGER}", 404),
        (f"/api/v1/coupons/campaigns/{PAST_BIGINT}", 404),
        (f"/api/v1/coupons/campaigns/{NOT_ASCII}", 404),
        (f"/console/customers?after={PAST_INTEGER}", 400),
        (f"/console/customers?after={NOT_ASCII}", 400),
        (f"/console/customers/review?after={PAST_INTEGER}", 400),
        ("/console/customers/{customer}?before=1767225600000000.0.99999999999999999999", 400),
        # The fleet and imports pages show their first page for a cursor they cannot read.
        (f"/console/fleet?tokens_before={PAST_INTEGER}", 200),
        (f"/console/fleet?tokens_before={NOT_ASCII}", 200),
        (f"/console/imports?before={NOT_ASCII}", 200),
    ],
)
def test_an_id_in_a_query_past_its_column_is_refused_or_unknown(answering, user_client, path, status):
    _save(answering)
    response = user_client.get(path.format(customer=_customer(answering)))
    assert response.status_code == status, f"{response.status_code}: {response.get_data(as_text=True)[:200]}"
    if path.startswith("/api/v1/segments/"):
        assert response.get_json()["error"] == {
            "code": "invalid_request",
            "message": "after must be an integer between 0 and 2147483647",
        }


@pytest.mark.parametrize("ledger_id", [PAST_BIGINT, 10**30, 0])
def test_a_ledger_id_in_a_body_past_its_column_is_a_bad_request_naming_the_range(answering, user_client, ledger_id):
    customer = _customer(answering)
    response = user_client.post(f"/api/v1/identity/customers/{customer}/split", json={"ledger_id": ledger_id})
    assert response.status_code == 400, f"{response.status_code}: {response.get_data(as_text=True)[:200]}"
    assert response.get_json()["error"] == {
        "code": "invalid_request",
        "message": f"ledger_id must be the integer id of a ledger row, from 1 to {MAX_ROW_ID}",
    }


@pytest.mark.parametrize(
    ("action", "form"),
    [
        ("identifiers/remove", {"identifier_id": str(PAST_INTEGER)}),
        ("identifiers/remove", {"identifier_id": NOT_ASCII}),
        ("split", {"ledger_id": str(PAST_BIGINT)}),
        ("split", {"ledger_id": NOT_ASCII}),
    ],
)
def test_an_id_in_a_console_form_past_its_column_is_a_bad_request(answering, user_client, action, form):
    customer = _customer(answering)
    response = post_form(user_client, f"/console/customers/{customer}/{action}", form)
    assert response.status_code == 400, f"{response.status_code}: {response.get_data(as_text=True)[:200]}"


@pytest.mark.parametrize("back_to", [str(PAST_INTEGER), NOT_ASCII])
def test_a_review_decision_goes_back_to_the_queue_from_a_customer_it_cannot_name(answering, user_client, back_to):
    response = post_form(user_client, "/console/customers/review/1", {"decision": "accept", "customer": back_to})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/customers/review")
