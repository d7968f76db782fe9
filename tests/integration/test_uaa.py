"""UAA emulator over real HTTP: grants, claims, errors, expiry, refresh (uaa.md)."""

import base64
import json
import time

import pytest
import requests

from mockstack.base import EmulatorServer
from mockstack.uaa import TokenAuthority, UAAEmulator, fetch_token


def _claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture
def uaa():
    emulator = UAAEmulator(
        clients={"reconciler": {"secret": "s3cret", "authorities": ["cloud_controller.admin_read_only"]}},
        users={"admin": "adminpw"},
    )
    with EmulatorServer(emulator) as server:
        yield emulator, server


def test_client_credentials_with_basic_auth(uaa):
    emulator, server = uaa
    r = requests.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"},
                      auth=("reconciler", "s3cret"), headers={"Accept": "application/json"}, timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "jti"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 43199
    assert body["scope"] == "cloud_controller.admin_read_only"
    assert len(body["jti"]) == 32
    header, payload, signature = body["access_token"].split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==="))["alg"] == "HS256"
    claims = _claims(body["access_token"])
    assert claims["sub"] == claims["client_id"] == claims["cid"] == claims["azp"] == "reconciler"
    assert claims["authorities"] == claims["scope"] == ["cloud_controller.admin_read_only"]
    assert claims["grant_type"] == "client_credentials" and claims["zid"] == "uaa"
    assert claims["iss"] == f"{server.url}/oauth/token"
    assert "cloud_controller" in claims["aud"]
    assert "user_id" not in claims and "user_name" not in claims
    assert claims["exp"] - claims["iat"] == 43199
    assert emulator.authority.validate(body["access_token"])["client_id"] == "reconciler"


def test_client_credentials_with_form_fields_like_cf_cli(uaa):
    _, server = uaa
    r = requests.post(f"{server.url}/oauth/token", timeout=5, data={
        "client_id": "reconciler", "client_secret": "s3cret", "grant_type": "client_credentials"})
    assert r.status_code == 200
    assert fetch_token(server.url, "reconciler", "s3cret")


def test_password_grant_like_cf_cli_and_refresh(uaa):
    emulator, server = uaa
    r = requests.post(f"{server.url}/oauth/token", timeout=5,
                      headers={"Authorization": "Basic Y2Y6", "Accept": "application/json"},
                      data={"grant_type": "password", "password": "adminpw", "username": "admin"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"access_token", "token_type", "refresh_token", "expires_in", "scope", "jti"} <= set(body)
    claims = _claims(body["access_token"])
    assert claims["user_name"] == "admin" and claims["grant_type"] == "password"
    assert claims["sub"] == claims["user_id"] and claims["cid"] == "cf"
    assert "cloud_controller.admin" in claims["scope"]
    # a refresh token is not an access token
    assert _claims(body["refresh_token"])["jti"].endswith("-r")
    assert emulator.authority.validate(body["refresh_token"]) is None
    again = requests.post(f"{server.url}/oauth/token", timeout=5, headers={"Authorization": "Basic Y2Y6"},
                          data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert again.status_code == 200
    assert again.json()["access_token"] != body["access_token"]
    assert emulator.authority.validate(again.json()["access_token"])["user_name"] == "admin"
    bad = requests.post(f"{server.url}/oauth/token", timeout=5, headers={"Authorization": "Basic Y2Y6"},
                        data={"grant_type": "refresh_token", "refresh_token": "garbage"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"


@pytest.mark.parametrize("data,auth,status,error,description", [
    ({"grant_type": "client_credentials"}, ("reconciler", "wrong"), 401, "invalid_client", "Bad credentials"),
    ({"grant_type": "client_credentials"}, ("nobody", "x"), 401, "invalid_client", "Bad credentials"),
    ({"grant_type": "password", "username": "admin", "password": "nope"}, ("cf", ""), 401, "invalid_client",
     "Bad credentials"),
    ({"grant_type": "password", "username": "admin", "password": "adminpw"}, ("reconciler", "s3cret"), 401,
     "invalid_client", "Unauthorized grant type"),
    ({"grant_type": "implicit_magic"}, ("reconciler", "s3cret"), 400, "unsupported_grant_type",
     "Unsupported grant type"),
    ({}, ("reconciler", "s3cret"), 400, "invalid_request", "Missing grant type"),
])
def test_error_bodies(uaa, data, auth, status, error, description):
    _, server = uaa
    r = requests.post(f"{server.url}/oauth/token", data=data, auth=auth, timeout=5)
    assert r.status_code == status
    assert r.json() == {"error": error, "error_description": description}
    assert r.headers["Cache-Control"] == "no-store"
    if description == "Bad credentials":
        assert r.headers["WWW-Authenticate"].startswith('Basic realm="UAA/client"')


def test_legacy_error_style_and_scope_narrowing():
    emulator = UAAEmulator({"c": {"secret": "s", "authorities": "bosh.admin bosh.read"}}, error_style="legacy")
    with EmulatorServer(emulator) as server:
        r = requests.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=("c", "bad"), timeout=5)
        assert r.json()["error"] == "unauthorized"
        r = requests.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials",
                                                              "scope": "bosh.read"}, auth=("c", "s"), timeout=5)
        assert r.json()["scope"] == "bosh.read"
        r = requests.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials",
                                                              "scope": "uaa.admin"}, auth=("c", "s"), timeout=5)
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


def test_expiry_is_configurable_and_expired_tokens_do_not_validate():
    emulator = UAAEmulator({"c": {"secret": "s", "authorities": ["bosh.admin"]}}, expires_in=1)
    with EmulatorServer(emulator) as server:
        body = requests.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"},
                             auth=("c", "s"), timeout=5).json()
        assert body["expires_in"] == 1
        assert emulator.authority.validate(body["access_token"]) is not None
        deadline = time.time() + 5
        while emulator.authority.validate(body["access_token"]) is not None and time.time() < deadline:
            time.sleep(0.2)
        assert emulator.authority.validate(body["access_token"]) is None
        emulator.expires_in = 600
        later = requests.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"},
                              auth=("c", "s"), timeout=5).json()
        assert later["expires_in"] == 600


def test_authority_rejects_tampering_rotation_and_audience():
    authority = TokenAuthority()
    now = int(time.time())
    token = authority.mint({"jti": "a", "exp": now + 60, "aud": ["cloud_controller"], "scope": ["x"]})
    assert authority.validate(token, audience="cloud_controller") is not None
    assert authority.validate(token, audience="bosh") is None
    header, payload, sig = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"jti": "a", "exp": now + 9999}).encode()).rstrip(b"=").decode()
    assert authority.validate(f"{header}.{forged}.{sig}") is None
    assert authority.validate("not-a-token") is None and authority.validate("") is None
    assert TokenAuthority().validate(token) is None  # another key
    authority.rotate_key()
    assert authority.validate(token) is None


def test_token_keys_and_opaque_tokens(uaa):
    emulator, server = uaa
    keys = requests.get(f"{server.url}/token_keys", timeout=5).json()["keys"]
    assert keys[0]["alg"] == "HS256" and keys[0]["kty"] == "MAC"
    r = requests.post(f"{server.url}/oauth/token", auth=("reconciler", "s3cret"), timeout=5,
                      data={"grant_type": "client_credentials", "token_format": "opaque"})
    token = r.json()["access_token"]
    assert "." not in token
    assert emulator.authority.validate(token)["client_id"] == "reconciler"
