"""Odd requests to the Function URL API: each gets a 4xx JSON answer that says what was wrong
and what is accepted; never a 500 for a caller's mistake, never a stack trace."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from tests.api_support import api  # noqa: F401  (fixture)

GUID = "12345678-1234-1234-1234-123456789abc"


def _no_trace(resp: requests.Response) -> dict:
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.text
    return resp.json()


@pytest.mark.parametrize("body, content_type", [
    (b"\xff\xfe\x00{", "application/octet-stream"),  # base64 in the event, not UTF-8 once decoded
    (b"\xff\xfe\x00{", "application/json"),
    (b'{"instances": ["\xff"]}', "application/json; charset=latin-1"),
    (b"\x00" * 10, "application/json"),
    (json.dumps({"instances": [GUID + "\n"]}).encode(), "application/json"),
    (json.dumps({"instances": [{"guid": GUID}]}).encode(), "application/json"),
    (json.dumps({"services": ["../etc"]}).encode(), "application/json"),
    (json.dumps({"instances": [GUID] * 1001}).encode(), "application/json"),
    (json.dumps({"forced": "yes"}).encode(), "application/json"),
    (json.dumps("hello").encode(), "application/json"),
    (b"[" * 100000, "application/json"),  # deep nesting beyond the size limit
    (b"[" * 5000 + b"]" * 5000, "application/json"),  # deep nesting within it
])
def test_bad_reconcile_bodies_are_400(api, body, content_type):  # noqa: F811
    url, _store, _sfn, _machine = api
    resp = requests.post(url + "/b/reconcile", data=body, headers={"content-type": content_type}, timeout=30)
    payload = _no_trace(resp)
    assert resp.status_code == 400, payload
    assert "accepted" in payload["error"]


def test_base64_body_of_valid_json_is_accepted(api):  # noqa: F811
    url, _store, _sfn, _machine = api
    body = json.dumps({"instances": [GUID.upper()]}).encode()
    resp = requests.post(url + "/b/reconcile", data=body, headers={"content-type": "application/octet-stream"},
                         timeout=30)
    assert resp.status_code == 202, resp.text
    assert resp.json()["selection"]["instances"] == [GUID]


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=101", "limit=-1", "limit=%C2%B2", "limit=1e3",
                                   "limit=%00", "limit=" + "9" * 5000])
def test_bad_run_limits_are_400(api, query):  # noqa: F811
    url, *_ = api
    resp = requests.get(url + "/b/runs?" + query, timeout=30)
    payload = _no_trace(resp)
    assert resp.status_code == 400, payload
    assert "accepted" in payload["error"]


@pytest.mark.parametrize("run_id", ["x" * 3000, "%00", "..%2F..%2Fetc", "%F0%9F%92%A5", "a%20b", "%ff"])
def test_odd_run_ids_are_404_not_500(api, run_id):  # noqa: F811
    url, *_ = api
    resp = requests.get(url + "/b/runs/" + run_id, timeout=30)
    payload = _no_trace(resp)
    assert resp.status_code in (400, 404), payload
    assert len(resp.text) < 2000  # the id is not echoed back whole


def test_query_strings_on_other_routes_are_ignored(api):  # noqa: F811
    url, *_ = api
    assert requests.get(url + "/b/status?x=%ff&x=2", timeout=30).status_code == 200
    assert requests.get(url + "/b/orphans?" + "a=1&" * 500, timeout=30).status_code == 200


def test_direct_events_with_broken_base64(api):  # noqa: F811
    """An event as the Function URL would pass it, with a body that is not base64 at all."""
    from mockstack.aws import LambdaContext
    from mockstack.frontdoor import function_url_event
    from tests.api_support import load_api_handler

    handler = load_api_handler()
    context = LambdaContext("api", "arn:aws:lambda:us-east-1:123456789012:function:api", 256, 30)
    for raw in ("!!!not base64!!!", base64.b64encode(b"\xff\xfe").decode()):
        event = function_url_event("POST", "/b/reconcile", "", {"content-type": "application/octet-stream"}, b"x")
        event["body"], event["isBase64Encoded"] = raw, True
        out = handler(event, context)
        assert out["statusCode"] == 400, out
        assert "accepted" in json.loads(out["body"])["error"]
