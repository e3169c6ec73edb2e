"""OIDC bearer tokens: who a request comes from when an issuer is configured.

The issuer's keys are found by OIDC discovery (``<issuer>/.well-known/openid-configuration``
→ ``jwks_uri``) and cached; a token signed with a key id (``kid``) the cache does not
hold refetches them, at most once per ``OAPIP_OIDC_JWKS_REFRESH_S``, so rotated keys are
picked up and a flood of made-up ``kid``s cannot turn into a flood of fetches.

A token is accepted when its signature verifies with one of the issuer's keys under an
allowed asymmetric algorithm (never ``none``, never HS*: a public key must not act as a
shared secret), and ``iss``, ``aud`` (when a client id is configured), ``exp`` and
``nbf`` hold. Every refusal is :class:`~core.exceptions.Unauthorized`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from core.exceptions import ServiceUnavailable, Unauthorized
from core.settings import Settings

__all__ = ["OidcVerifier", "bearer_token"]

_FETCH_TIMEOUT_S = 10.0


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or 401."""
    if not authorization:
        raise Unauthorized(
            "this server needs a bearer token: send Authorization: Bearer <JWT>",
            error="missing_token",
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "the Authorization header must be `Bearer <JWT>`", error="invalid_request"
        )
    return token.strip()


# JWK key type each algorithm family verifies with.
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


@dataclass(frozen=True)
class _Key:
    """One published key and the algorithm its JWK declares (``alg``), if any."""

    jwk: jwt.PyJWK
    declared: str | None

    def fits(self, algorithm: str) -> bool:
        """Whether this key may verify ``algorithm``: the right key type, and the
        algorithm the key declares (if it declares one)."""
        return _KEY_TYPES.get(algorithm[:2]) == self.jwk.key_type and self.declared in (
            None,
            algorithm,
        )


class OidcVerifier:
    """Validates bearer JWTs against one issuer's published keys."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc.issuer, "OidcVerifier needs OAPIP_OIDC_ISSUER"
        self.issuer = settings.oidc.issuer
        self.audience = settings.oidc.client_id
        self.user_claim = settings.oidc.user_claim
        self.algorithms = list(settings.oidc.algorithms)
        self.leeway_s = settings.oidc.leeway_s
        self.refresh_s = settings.oidc.jwks_refresh_s
        self._keys: dict[str, _Key] = {}
        self._unnamed: list[_Key] = []  # keys published without a kid
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _fetch_json(self, client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        try:
            response = await client.get(url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ServiceUnavailable(f"cannot read the OIDC issuer's keys at {url}: {exc}") from exc
        if not isinstance(document, dict):
            raise ServiceUnavailable(f"the OIDC document at {url} is not a JSON object")
        return document

    async def _refresh(self) -> None:
        """Fetch discovery and the JWKS, unless fetched less than ``refresh_s`` ago."""
        async with self._lock:
            if time.monotonic() - self._fetched_at < self.refresh_s:
                return
            discovery_url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            async with httpx.AsyncClient(timeout=_FETCH_TIMEOUT_S) as client:
                discovery = await self._fetch_json(client, discovery_url)
                jwks_uri = discovery.get("jwks_uri")
                if not isinstance(jwks_uri, str):
                    raise ServiceUnavailable(f"{discovery_url} names no jwks_uri")
                jwks = await self._fetch_json(client, jwks_uri)
            keys: dict[str, _Key] = {}
            unnamed: list[_Key] = []
            for entry in jwks.get("keys") or []:
                if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                    continue
                try:
                    key = _Key(jwt.PyJWK(entry), entry.get("alg"))
                except jwt.PyJWTError:
                    continue  # a key type or algorithm this server does not verify with
                if entry.get("kid"):
                    keys[str(entry["kid"])] = key
                else:
                    unnamed.append(key)
            self._keys, self._unnamed = keys, unnamed
            self._fetched_at = time.monotonic()

    async def _candidate_keys(self, kid: str | None) -> list[_Key]:
        if self._fetched_at == float("-inf"):
            await self._refresh()
        if kid is None:
            return self._unnamed or list(self._keys.values())
        if kid not in self._keys:
            await self._refresh()  # keys may have rotated; rate-limited
        if kid not in self._keys:
            raise Unauthorized(f"the token's key id {kid!r} is not one of the issuer's keys")
        return [self._keys[kid]]

    async def user(self, token: str) -> str:
        """The user a valid ``token`` names (its ``user_claim``), or 401."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the bearer token is not a JWT: {exc}") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise Unauthorized(
                f"tokens signed with {algorithm!r} are not accepted; "
                f"use one of {', '.join(self.algorithms)}"
            )
        kid = header.get("kid")
        claims: dict[str, Any] | None = None
        error: Exception | None = None
        for key in await self._candidate_keys(str(kid) if kid is not None else None):
            if not key.fits(algorithm):
                error = jwt.InvalidAlgorithmError(
                    f"the key {kid!r} is a {key.jwk.key_type} key, not one for {algorithm}"
                )
                continue
            try:
                claims = jwt.decode(
                    token,
                    key=key.jwk.key,
                    algorithms=[algorithm],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway_s,
                    options={
                        "require": ["exp", "iss"],
                        "verify_aud": self.audience is not None,
                    },
                )
                break
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                # ValueError/TypeError: key material the crypto library rejects.
                error = exc
        if claims is None:
            raise Unauthorized(f"the bearer token is not valid: {error or 'no key verifies it'}")
        user = claims.get(self.user_claim)
        if not isinstance(user, str) or not user:
            raise Unauthorized(f"the token has no {self.user_claim!r} claim naming the user")
        return user
