"""An id past what its column holds names no row: a 404, a 400 naming the range, never a 500.

``customers.id`` and most other ids are INTEGER columns, which PostgreSQL holds in 32 bits: it refuses
to bind 2^31 to one ("integer out of range"), so ``/api/v1/customers/2147483648`` ended in an internal
error on PostgreSQL where SQLite answered "no such customer". Every route with an id in its path is
asked for 2^31 and for 2^63-1 (the most a BIGINT holds), and for 2^31-1, which must be answered as
any id no row has.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import IntegerConverter

from central.params import MAX_INTEGER_ID, MAX_ROW_ID
from tests.central.support import csrf_from

PAST_INTEGER = 2**31  # one past an INTEGER column on PostgreSQL
UNKNOWN = 4242  # an id no row has, well within any column

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
