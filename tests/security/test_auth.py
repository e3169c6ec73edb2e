"""OIDC: tokens from a real issuer on loopback, checked by a gateway configured with it.

Every refusal is 401 (bad or missing token, with ``WWW-Authenticate: Bearer``) or 403
(a valid token on another user's tree), with an OGC exception body.
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.security.conftest import AUDIENCE, OidcGateway, auth
from tests.support import assert_ogc_exception

UNAUTHORIZED = "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/unauthorized"
FORBIDDEN = "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/forbidden"


@pytest.fixture
def alice() -> str:
    return f"alice-{uuid.uuid4().hex[:6]}"


def _refused(response: requests.Response) -> dict:
    body = assert_ogc_exception(response, 401, UNAUTHORIZED)
    assert response.headers["WWW-Authenticate"].startswith("Bearer"), response.headers
    return body


def test_valid_token_on_own_tree_and_unprefixed(oidc_gateway: OidcGateway, alice: str):
    token = oidc_gateway.issuer.token(alice)
    for api in (oidc_gateway.api(alice), oidc_gateway.api(None)):
        response = requests.get(f"{api}/processes", headers=auth(token), timeout=30)
        assert response.status_code == 200, response.text
        response = requests.get(f"{api}/jobs", headers=auth(token), timeout=30)
        assert response.status_code == 200, response.text


def test_ec_key_token_is_accepted(oidc_gateway: OidcGateway, alice: str):
    token = oidc_gateway.issuer.token(alice, kid="ec-1")
    response = requests.get(f"{oidc_gateway.api(alice)}/jobs", headers=auth(token), timeout=30)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/", "/conformance", "/api"])
@pytest.mark.parametrize("prefixed", [True, False], ids=["prefixed", "unprefixed"])
def test_public_pages_need_no_token(oidc_gateway: OidcGateway, path: str, prefixed: bool):
    base = oidc_gateway.api("someone" if prefixed else None)
    response = requests.get(base + path, timeout=30)
    assert response.status_code == 200, response.text


def test_swagger_ui_and_root_api_are_public(oidc_gateway: OidcGateway):
    for path in ("/swagger-ui/oapip/", "/api", "/"):
        response = requests.get(oidc_gateway.url + path, timeout=30)
        assert response.status_code == 200, (path, response.text)


def test_no_token(oidc_gateway: OidcGateway, alice: str):
    response = requests.get(f"{oidc_gateway.api(alice)}/processes", timeout=30)
    _refused(response)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="ogc-api"'


@pytest.mark.parametrize(
    "header",
    ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer not-a-jwt", "Bearer a.b.c", "Token abc"],
)
def test_malformed_authorization(oidc_gateway: OidcGateway, alice: str, header: str):
    response = requests.get(
        f"{oidc_gateway.api(alice)}/processes", headers={"Authorization": header}, timeout=30
    )
    _refused(response)


def _bad_tokens(issuer, user: str) -> dict[str, str]:
    now = int(time.time())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    valid = issuer.token(user)
    header, payload, signature = valid.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["preferred_username"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return {
        "expired": issuer.token(user, exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        "not-yet-valid": issuer.token(user, nbf=now + 3600, exp=now + 7200),
        "wrong-issuer": issuer.token(user, iss="http://127.0.0.1:1/other-realm"),
        "wrong-audience": issuer.token(user, aud="another-client"),
        "no-audience": issuer.token(user, aud=None),
        "no-expiry": issuer.token(user, exp=None),
        "alg-none": issuer.unsigned_token(user),
        "hs256-with-public-key": issuer.hs256_with_public_key(user),
        "unknown-kid": issuer.token(user, kid="no-such-key", key=stranger),
        "known-kid-wrong-key": issuer.token(user, kid="rsa-1", key=stranger),
        "rsa-kid-ec-alg": issuer.token(user, kid="rsa-1", key=issuer.keys["ec-1"]),
        "tampered-payload": f"{header}.{forged}.{signature}",
        "stripped-signature": f"{header}.{payload}.",
        "no-user-claim": issuer.token(user, preferred_username=None),
    }


BAD_TOKEN_CASES = [
    "expired",
    "not-yet-valid",
    "wrong-issuer",
    "wrong-audience",
    "no-audience",
    "no-expiry",
    "alg-none",
    "hs256-with-public-key",
    "unknown-kid",
    "known-kid-wrong-key",
    "rsa-kid-ec-alg",
    "tampered-payload",
    "stripped-signature",
    "no-user-claim",
]


@pytest.mark.parametrize("case", BAD_TOKEN_CASES)
def test_bad_token_is_refused(oidc_gateway: OidcGateway, alice: str, case: str):
    token = _bad_tokens(oidc_gateway.issuer, alice)[case]
    for api in (oidc_gateway.api(alice), oidc_gateway.api(None)):
        response = requests.get(f"{api}/processes", headers=auth(token), timeout=30)
        body = _refused(response)
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], body


def test_token_user_is_not_path_user(oidc_gateway: OidcGateway, alice: str):
    token = oidc_gateway.issuer.token(alice)
    bob = f"bob-{uuid.uuid4().hex[:6]}"
    for path in ("/processes", "/jobs", "/processes/echo", f"/jobs/{uuid.uuid4()}"):
        response = requests.get(oidc_gateway.api(bob) + path, headers=auth(token), timeout=30)
        assert_ogc_exception(response, 403, FORBIDDEN)


def test_reserved_user_name_in_token_is_forbidden(oidc_gateway: OidcGateway):
    token = oidc_gateway.issuer.token("anonymous")
    response = requests.get(f"{oidc_gateway.api(None)}/jobs", headers=auth(token), timeout=30)
    assert_ogc_exception(response, 403, FORBIDDEN)


def test_rotated_key_is_fetched_on_unknown_kid(oidc_gateway: OidcGateway, alice: str):
    issuer = oidc_gateway.issuer
    kid = f"rsa-{uuid.uuid4().hex[:6]}"
    issuer.add_key(kid)  # published after the gateway cached the keys
    before = issuer.jwks_fetches
    token = issuer.token(alice, kid=kid)
    response = requests.get(f"{oidc_gateway.api(alice)}/jobs", headers=auth(token), timeout=30)
    assert response.status_code == 200, response.text
    assert issuer.jwks_fetches > before
    # Known now: no further fetch.
    fetched = issuer.jwks_fetches
    response = requests.get(f"{oidc_gateway.api(alice)}/jobs", headers=auth(token), timeout=30)
    assert response.status_code == 200 and issuer.jwks_fetches == fetched


def test_audience_is_the_client_id(oidc_gateway: OidcGateway, alice: str):
    token = oidc_gateway.issuer.token(alice, aud=["other", AUDIENCE])
    response = requests.get(f"{oidc_gateway.api(alice)}/jobs", headers=auth(token), timeout=30)
    assert response.status_code == 200, response.text
