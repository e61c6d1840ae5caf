"""The JWT codec: claims, lifetimes, and every kind of token it must refuse."""
from __future__ import annotations

import datetime as dt
import uuid

import jwt
import pytest

from calsvc import errors
from calsvc.config import AuthSettings, Secret
from calsvc.tokens import ACCESS, REFRESH, TokenCodec

SECRET = "unit-test-secret-" + "k" * 60  # long enough for HS512 (64 bytes)
OTHER_KEY = "another-secret-entirely-" + "z" * 40
UTC = dt.UTC


@pytest.fixture
def codec() -> TokenCodec:
    return TokenCodec(AuthSettings(secret=Secret(SECRET)))


def claims_of(token: str, algorithm: str = "HS256") -> dict:
    return jwt.decode(token, SECRET, algorithms=[algorithm])


def payload(typ: str = ACCESS, *, user_id: int = 7, family: uuid.UUID | None = None,
            exp_in: dt.timedelta = dt.timedelta(minutes=5), **override) -> dict:
    now = dt.datetime.now(UTC).replace(microsecond=0)
    body = {"sub": str(user_id), "iat": now, "exp": now + exp_in, "jti": str(uuid.uuid4()),
            "typ": typ, "fid": str(family or uuid.uuid4())}
    body.update(override)
    return {k: v for k, v in body.items() if v is not None}


def assert_refused(codec: TokenCodec, token: str, typ: str = ACCESS) -> errors.Unauthorized:
    with pytest.raises(errors.Unauthorized) as info:
        codec.decode(token, typ)
    problem = info.value
    assert problem.status == 401
    assert problem.type == "/problems/unauthorized"
    assert problem.headers["WWW-Authenticate"].startswith("Bearer")
    return problem


# -- issuing --------------------------------------------------------------------------------

def test_access_token_claims(codec):
    family = uuid.uuid4()
    now = dt.datetime(2030, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
    issued = codec.issue(ACCESS, 42, family, now=now)
    header = jwt.get_unverified_header(issued.token)
    assert header["alg"] == "HS256"
    claims = jwt.decode(issued.token, SECRET, algorithms=["HS256"],
                        options={"verify_exp": False, "verify_iat": False})
    assert set(claims) == {"sub", "exp", "iat", "jti", "typ", "fid"}
    assert claims["sub"] == "42"
    assert claims["typ"] == "access"
    assert claims["fid"] == str(family)
    assert claims["iat"] == int(now.replace(microsecond=0).timestamp())
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert uuid.UUID(claims["jti"]) == issued.claims.jti
    assert issued.claims.user_id == 42
    assert issued.claims.family_id == family
    assert issued.claims.typ == ACCESS
    assert issued.claims.expires_at == dt.datetime(2030, 1, 2, 3, 19, 5, tzinfo=UTC)


def test_refresh_token_lives_for_the_configured_days(codec):
    now = dt.datetime(2030, 1, 1, tzinfo=UTC)
    issued = codec.issue(REFRESH, 1, uuid.uuid4(), now=now)
    claims = jwt.decode(issued.token, SECRET, algorithms=["HS256"],
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["typ"] == "refresh"
    assert claims["exp"] - claims["iat"] == 30 * 86400
    assert issued.claims.expires_at == now + dt.timedelta(days=30)


def test_lifetimes_and_algorithm_follow_settings():
    codec = TokenCodec(AuthSettings(secret=Secret(SECRET), algorithm="HS512",
                                    access_token_minutes=2, refresh_token_days=1))
    access = codec.issue(ACCESS, 1, uuid.uuid4())
    assert jwt.get_unverified_header(access.token)["alg"] == "HS512"
    claims = claims_of(access.token, "HS512")
    assert claims["exp"] - claims["iat"] == 120
    refresh = claims_of(codec.issue(REFRESH, 1, uuid.uuid4()).token, "HS512")
    assert refresh["exp"] - refresh["iat"] == 86400


def test_every_token_has_its_own_jti(codec):
    family = uuid.uuid4()
    jtis = {codec.issue(ACCESS, 1, family).claims.jti for _ in range(20)}
    assert len(jtis) == 20


# -- decoding -------------------------------------------------------------------------------

@pytest.mark.parametrize("typ", [ACCESS, REFRESH])
def test_round_trip(codec, typ):
    family = uuid.uuid4()
    issued = codec.issue(typ, 5, family)
    claims = codec.decode(issued.token, typ)
    assert claims == issued.claims
    assert claims.user_id == 5 and claims.family_id == family and claims.typ == typ


def test_refresh_token_is_not_an_access_token(codec):
    token = codec.issue(REFRESH, 1, uuid.uuid4()).token
    problem = assert_refused(codec, token, ACCESS)
    assert "access" in problem.detail


def test_access_token_is_not_a_refresh_token(codec):
    token = codec.issue(ACCESS, 1, uuid.uuid4()).token
    problem = assert_refused(codec, token, REFRESH)
    assert "refresh" in problem.detail


@pytest.mark.parametrize("typ", ["id", "", "ACCESS", None])
def test_wrong_or_missing_typ_is_refused(codec, typ):
    token = jwt.encode(payload(typ=typ), SECRET, algorithm="HS256")  # None: no typ claim at all
    assert_refused(codec, token, ACCESS)


def test_alg_none_is_refused(codec):
    token = jwt.encode(payload(), None, algorithm="none")
    assert jwt.get_unverified_header(token)["alg"] == "none"
    assert_refused(codec, token)
    # Even with a signature segment glued on.
    assert_refused(codec, token + "c2lnbmF0dXJl")


def test_wrong_key_is_refused(codec):
    assert_refused(codec, jwt.encode(payload(), OTHER_KEY, algorithm="HS256"))


def test_other_hmac_algorithm_with_the_right_key_is_refused(codec):
    assert_refused(codec, jwt.encode(payload(), SECRET, algorithm="HS512"))


def test_expired_token_is_refused(codec):
    token = jwt.encode(payload(exp_in=dt.timedelta(seconds=-1)), SECRET, algorithm="HS256")
    problem = assert_refused(codec, token)
    assert "expired" in problem.detail


def test_token_issued_long_ago_is_expired(codec):
    issued = codec.issue(ACCESS, 1, uuid.uuid4(), now=dt.datetime.now(UTC) - dt.timedelta(minutes=16))
    assert_refused(codec, issued.token)
    still = codec.issue(ACCESS, 1, uuid.uuid4(), now=dt.datetime.now(UTC) - dt.timedelta(minutes=14))
    assert codec.decode(still.token, ACCESS).user_id == 1


@pytest.mark.parametrize("missing", ["sub", "exp", "iat", "jti", "typ", "fid"])
def test_missing_claim_is_refused(codec, missing):
    body = payload()
    del body[missing]
    assert_refused(codec, jwt.encode(body, SECRET, algorithm="HS256"))


@pytest.mark.parametrize("override", [
    {"sub": "alice"},
    {"jti": "not-a-uuid"},
    {"fid": "not-a-uuid"},
])
def test_malformed_claim_is_refused(codec, override):
    assert_refused(codec, jwt.encode(payload(**override), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("token", [
    "", "garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "Bearer x",
])
def test_garbage_is_refused(codec, token):
    assert_refused(codec, token)


def test_tampered_payload_is_refused(codec):
    token = codec.issue(ACCESS, 1, uuid.uuid4()).token
    head, body, sig = token.split(".")
    forged_body = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(body).replace(b'"sub":"1"', b'"sub":"2"')
    ).decode()
    assert forged_body != body
    assert_refused(codec, f"{head}.{forged_body}.{sig}")


def test_a_verified_access_token_still_expires(codec):
    """Verified access tokens are remembered (a client sends the same one with every request);
    the expiry is checked at every use all the same."""
    user = uuid.uuid4()
    soon = dt.datetime.now(dt.UTC) - codec.access_ttl + dt.timedelta(seconds=1.2)
    issued = codec.issue(ACCESS, 7, user, now=soon)
    assert codec.decode(issued.token, ACCESS) == issued.claims
    assert codec.decode(issued.token, ACCESS) == issued.claims  # remembered
    import time
    time.sleep(max(0.0, issued.claims.expires_at.timestamp() - time.time()) + 0.05)
    with pytest.raises(errors.Unauthorized, match="expired"):
        codec.decode(issued.token, ACCESS)
    # what is remembered is what was verified: the same text as a refresh token is still refused
    with pytest.raises(errors.Unauthorized):
        codec.decode(codec.issue(ACCESS, 7, user).token, REFRESH)
