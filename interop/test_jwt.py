"""HS256 interop with an independent JWT library (PyJWT): it verifies the
tokens identity.sign_jwt makes, and identity.verify_jwt accepts the tokens it
makes, and refuses what it must (wrong key, alg none, expired)."""
import os
import time
import uuid

import jwt  # PyJWT
import pytest
from conftest import fresh_database

SECRET = os.environ["IDENTITY_TEST_JWT_SECRET"]


@pytest.fixture(scope="module")
def conn():
    with fresh_database("jwt_interop") as c:
        yield c


def verify(conn, token, audience=None):
    return conn.execute("select valid, claims, reason from identity.try_verify_jwt(%s, %s)", [token, audience]).fetchone()


def test_pyjwt_verifies_our_tokens(conn):
    (token,) = conn.execute("select identity.sign_jwt(%s::jsonb)", ['{"sub": "u-1", "role": "authenticated"}']).fetchone()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == "u-1"
    assert claims["exp"] - claims["iat"] == 3600
    assert uuid.UUID(claims["jti"]).version == 4
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, SECRET + "x", algorithms=["HS256"], audience="authenticated")


def test_we_verify_pyjwt_tokens(conn):
    now = int(time.time())
    token = jwt.encode({"sub": "u-2", "aud": "authenticated", "iat": now, "exp": now + 60,
                        "nested": {"a": [1, "ü"]}}, SECRET, algorithm="HS256")
    valid, claims, reason = verify(conn, token)
    assert (valid, reason) == (True, None)
    assert claims["nested"] == {"a": [1, "ü"]}


@pytest.mark.parametrize("case", ["wrong_key", "alg_none", "expired", "hs512", "wrong_aud"])
def test_we_refuse_bad_pyjwt_tokens(conn, case):
    now = int(time.time())
    claims = {"sub": "u-3", "aud": "authenticated", "iat": now, "exp": now + 60}
    token = {
        "wrong_key": lambda: jwt.encode(claims, "another-secret-of-enough-length-0000", algorithm="HS256"),
        "alg_none": lambda: jwt.encode(claims, None, algorithm="none"),
        "expired": lambda: jwt.encode(dict(claims, exp=now - 3600), SECRET, algorithm="HS256"),
        "hs512": lambda: jwt.encode(claims, SECRET, algorithm="HS512"),
        "wrong_aud": lambda: jwt.encode(dict(claims, aud="other"), SECRET, algorithm="HS256"),
    }[case]()
    valid, _, reason = verify(conn, token)
    assert valid is False
    assert reason == {"wrong_key": "bad signature", "alg_none": 'alg "none" is not allowed', "expired": "expired",
                      "hs512": 'alg "HS512" is not allowed', "wrong_aud": 'wrong aud (expected "authenticated")'}[case]
