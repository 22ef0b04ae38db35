"""Request bodies: a body nested too deep is a 400 like any malformed body, and a big one is refused unread.

The standard library's JSON decoder overflows Python's stack on ``[[[[...`` a few thousand levels
deep; a view that used it answered 500 and logged a traceback for a body anyone could send to the
enrollment endpoint. Every JSON body is now read within its limit and decoded by orjson.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from edge_agent.downlink import DownlinkError, DownlinkStore
from edge_agent.enroll import EnrollError, enroll
from edge_agent.transport import HttpTransport
from shared.crypto import RequestSigner, new_signing_key
from tests.central.consent_support import customer_of, load, signup
from tests.central.live import serving
from tests.central.support import START
from tests.edge_agent.servers import raw_app, waitress_on_loopback

DEEP = b"[" * 3000  # the standard library gives up after about a thousand levels
PHONE = "13800139001"

# (method, path, the error code its malformed body gets)
ENDPOINTS = [
    ("post", "/api/v1/segments", "invalid_segment"),
    ("post", "/api/v1/segments/preview", "invalid_segment"),
    ("put", "/api/v1/segments/loyal", "invalid_segment"),
    ("post", "/api/v1/triggers", "invalid_trigger"),
    ("post", "/api/v1/coupons/campaigns", "invalid_request"),
    ("post", "/api/v1/identity/identifiers/remove", "invalid_request"),
    ("post", "/api/v1/customers/{customer}/consents", "invalid_consent"),
    ("put", "/api/v1/downlink/documents/S001/settings", "invalid_request"),
    ("post", "/api/v1/enroll", "invalid_request"),
]


@pytest.fixture
def customer(app):
    load(app, [signup("s-1", PHONE, at=START - timedelta(days=1))])
    return customer_of(app, PHONE)


@pytest.mark.parametrize(("method", "path", "code"), ENDPOINTS)
def test_a_body_nested_too_deep_is_a_bad_request(user_client, customer, method, path, code):
    url = path.format(customer=customer)
    response = getattr(user_client, method)(url, data=DEEP, content_type="application/json")
    assert response.status_code == 400, response.get_data()[:200]
    assert response.get_json()["error"]["code"] == code


@pytest.mark.parametrize(("method", "path", "code"), ENDPOINTS)
def test_a_body_larger_than_the_endpoint_takes_is_refused(user_client, customer, method, path, code):
    url = path.format(customer=customer)
    body = b'{"name": "' + b"x" * (4 << 20) + b'"}'  # past every endpoint's limit (segments: 64 KiB)
    response = getattr(user_client, method)(url, data=body, content_type="application/json")
    assert response.status_code == 413, response.get_data()[:200]
    assert response.get_json()["error"] == {
        "code": "too_large",
        "message": "the request body is larger than this server accepts",
    }


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_anyone_on_the_network_gets_a_400_from_the_enrollment_endpoint_not_a_500(app):
    with serving(app) as url:
        response = requests.post(
            f"{url}/api/v1/enroll", data=DEEP, headers={"Content-Type": "application/json"}, timeout=10
        )
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "invalid_request", "message": "the body must be JSON"}


@pytest.mark.parametrize("status", ["201 Created", "400 Bad Request"])
def test_an_agent_enrolling_against_an_answer_nested_too_deep_says_so(tmp_path, status):
    """Whoever answers the technician's enrollment (a proxy, an impostor) cannot crash the command."""
    with waitress_on_loopback(raw_app(status, DEEP)) as url, pytest.raises(EnrollError) as failed:
        enroll(url, "a-token", tmp_path / "credentials.json", timeout=5)
    assert f"central at {url} answered" in str(failed.value)
    assert not (tmp_path / "credentials.json").exists()


def test_an_agent_fetching_its_downlink_from_an_answer_nested_too_deep_says_so(tmp_path):
    """The agent takes a DownlinkError as a failed fetch (one warning, the last good version kept); the
    RecursionError this gave before escaped into the sync run."""
    store = DownlinkStore(tmp_path, "S001")
    signer = RequestSigner("device-1", new_signing_key()[0])
    with waitress_on_loopback(raw_app("200 OK", DEEP)) as url, pytest.raises(DownlinkError, match="not JSON"):
        store.maybe_fetch(HttpTransport(url), signer, reply_version=3, timeout=5)
    assert store.version == 0


# The management APIs that take a JSON object and nothing else, one answer each for the same mistakes.
OBJECT_ENDPOINTS = [
    ("post", "/api/v1/coupons/campaigns"),
    ("post", "/api/v1/identity/identifiers/remove"),
    ("post", "/api/v1/identity/review/1/accept"),
]


@pytest.mark.parametrize(("method", "path"), OBJECT_ENDPOINTS)
@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (b"{}", "text/plain", 415, "unsupported_media_type"),
        (b'{"a": ', "application/json", 400, "the body must be JSON"),
        (b"[1, 2]", "application/json", 400, "the body must be a JSON object"),
    ],
    ids=["not-sent-as-json", "malformed", "not-an-object"],
)
def test_the_management_apis_answer_the_same_mistake_the_same_way(
    user_client, method, path, body, content_type, status, error
):
    response = getattr(user_client, method)(path, data=body, content_type=content_type)
    assert response.status_code == status, response.get_data()[:200]
    got = response.get_json()["error"]
    assert error in (got["code"], got["message"])
