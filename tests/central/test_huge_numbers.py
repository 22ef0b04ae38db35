"""Numbers in paths and query strings past what the database holds are a 404 or a 400, never a 500.

Flask's ``int`` converter and ``int()`` take any number of digits; SQLite cannot bind an integer
past 2^63-1 and PostgreSQL refuses it as out of range, so ``/api/v1/customers/99999999999999999999``
ended in an internal error and a traceback instead of "no such customer".
"""

from __future__ import annotations

import pytest

HUGE = "9" * 25


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/customers/{HUGE}",
        f"/api/v1/customers/{HUGE}/tags",
        f"/console/customers/{HUGE}",
        f"/console/imports/{HUGE}",
        f"/api/v1/imports/{HUGE}/report.csv",
    ],
)
def test_an_id_past_any_row_is_not_found(user_client, path):
    assert user_client.get(path).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/customers?offset={HUGE}",
        f"/api/v1/identity/review?offset={HUGE}",
        f"/api/v1/segments/loyal/members?after={HUGE}",
        f"/api/v1/segments/loyal/history?before={HUGE}",
    ],
)
def test_a_cursor_or_offset_past_any_row_is_a_bad_request(app, user_client, path):
    from tests.central.test_segments import _save

    _save(app)
    response = user_client.get(path)
    assert response.status_code == 400, response.get_data()[:300]
    assert response.get_json()["error"]["code"] == "invalid_request"
