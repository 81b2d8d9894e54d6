"""ES256, RS256 and EdDSA interop with PyJWT (+ cryptography): PyJWT verifies
the tokens identity signs using nothing but identity.jwks(), and
identity.verify_jwt accepts tokens PyJWT signs with a key whose public JWK is
in identity.signing_keys."""
import json
import time

import jwt  # PyJWT
import pytest
from conftest import fresh_database
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ALGS = ["ES256", "RS256", "EdDSA"]


@pytest.fixture(scope="module")
def conn():
    with fresh_database("jwks_interop") as c:
        yield c


@pytest.mark.parametrize("alg", ALGS)
def test_pyjwt_verifies_our_tokens_with_jwks(conn, alg):
    (kid,) = conn.execute("select identity.generate_signing_key(%s)", [alg]).fetchone()
    conn.execute("select identity.activate_signing_key(%s)", [kid])
    (token,) = conn.execute("select identity.sign_jwt('{\"sub\": \"u-1\"}')").fetchone()
    (jwks,) = conn.execute("select identity.jwks()").fetchone()
    keyset = jwt.PyJWKSet.from_dict(jwks)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg and header["kid"] == kid
    key = next(k for k in keyset.keys if k.key_id == kid)
    claims = jwt.decode(token, key.key, algorithms=[alg], audience="authenticated")
    assert claims["sub"] == "u-1"
    # A key PyJWT did not get from our JWKS does not verify it.
    other = {"ES256": ec.generate_private_key(ec.SECP256R1()).public_key(),
             "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
             "EdDSA": ed25519.Ed25519PrivateKey.generate().public_key()}[alg]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other, algorithms=[alg], audience="authenticated")


def pyjwt_key(alg):
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


@pytest.mark.parametrize("alg", ALGS)
def test_we_verify_pyjwt_tokens(conn, alg):
    private = pyjwt_key(alg)
    kid = f"pyjwt-{alg.lower()}"
    algo = jwt.get_algorithm_by_name(alg)
    public_jwk = json.loads(algo.to_jwk(private.public_key()))
    public_jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    conn.execute("insert into identity.signing_keys (kid, alg, public_jwk, private_key_ciphertext, status) "
                 "values (%s, %s, %s, '\\x00', 'next')", [kid, alg, json.dumps(public_jwk)])
    now = int(time.time())
    claims = {"sub": "u-2", "aud": "authenticated", "iat": now, "exp": now + 60, "name": "Zoë"}
    token = jwt.encode(claims, private, algorithm=alg, headers={"kid": kid})
    (valid, verified, reason) = conn.execute("select valid, claims, reason from identity.try_verify_jwt(%s)", [token]).fetchone()
    assert (valid, reason) == (True, None)
    assert verified["name"] == "Zoë"
    # Signed by another key under the same kid: refused.
    forged = jwt.encode(claims, pyjwt_key(alg), algorithm=alg, headers={"kid": kid})
    assert conn.execute("select reason from identity.try_verify_jwt(%s)", [forged]).fetchone() == ("bad signature",)
