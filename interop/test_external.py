"""External identity providers (API.md 11) with real keys and real tokens:
Clerk-, Auth0- and Supabase-shaped session tokens signed by PyJWT with keys
from cryptography, every forged variant refused, key rotation through
set_issuer_jwks and through a jwks_uri served by a loopback HTTP server
(also down, and serving garbage), and Svix-signed webhooks made by Svix's
own library."""
import datetime
import http.server
import json
import pathlib
import threading
import time
import uuid

import jwt  # PyJWT
import psycopg
import pytest
from conftest import fresh_database, run_concurrently, server
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from svix.webhooks import Webhook

CLERK = "https://clerk.example.com"
AUTH0 = "https://example.us.auth0.com/"
SUPABASE = "https://abcd.supabase.co/auth/v1"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def new_key(alg):
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(private, alg, kid):
    jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(private.public_key()))
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


class Key:
    def __init__(self, alg, kid):
        self.alg, self.kid, self.private = alg, kid, new_key(alg)
        self.jwk = public_jwk(self.private, alg, kid)

    def sign(self, claims, headers=None, kid=True):
        h = {"kid": self.kid} if kid else {}
        h.update(headers or {})
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=h)


def clerk_claims(sub, **extra):
    now = int(time.time())
    c = {"azp": "https://app.example.com", "exp": now + 60, "iat": now, "nbf": now - 5,
         "iss": CLERK, "sid": "sess_2abcDEF", "sub": sub, "v": 2,
         "o": {"id": "org_2clerkorg", "rol": "admin", "slg": "acme"}, "email": f"{sub}@example.com",
         "email_verified": True}
    c.update(extra)
    return c


@pytest.fixture(scope="module")
def conn():
    with fresh_database("external_idp") as c:
        for r in ["anon", "authenticated"]:
            c.execute(f"do $$ begin create role {r} nologin; exception when duplicate_object then null; end $$")
        c.execute("select identity.grant_access('authenticated', 'user')")
        c.execute("select identity.grant_access('anon', 'webhook')")
        yield c


@pytest.fixture(scope="module")
def clerk(conn):
    key = Key("RS256", "ins_clerk_1")
    (org,) = conn.execute("select identity.create_organization('Acme')").fetchone()
    conn.execute("select identity.register_issuer(%s, %s, %s)", [CLERK, json.dumps({"keys": [key.jwk]}), json.dumps({
        "authorized_parties": ["https://app.example.com"], "provisioning": "auto", "match_external_id": True,
        "organization_id": "o.id", "webhook_secret": WHSEC})])
    # Clerk's org id, as Clerk's: only this issuer's o.id claim places users there.
    conn.execute("select identity.set_organization_external_id(%s, 'org_2clerkorg', %s)", [org, CLERK])
    return key, org


def user_of(conn, external_id):
    """The user whose external_id this is, or None."""
    (u,) = conn.execute("select (select identity.user_by_id(id) from identity.users where external_id = %s)",
                        [external_id]).fetchone()
    return u


def authenticate(conn, token):
    """The pinned claims (inside one transaction), or None; and the warning."""
    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary))
    try:
        with conn.transaction():
            (claims,) = conn.execute("select identity.authenticate(%s)", [token]).fetchone()
            (uid,) = conn.execute("select identity.uid()").fetchone()
            if claims is not None:
                assert str(uid) == claims["sub"]
            return claims, notices
    finally:
        conn._notice_handlers.clear()


def test_a_clerk_session_token_provisions_and_signs_in(conn, clerk):
    key, org = clerk
    sub = "user_2" + uuid.uuid4().hex[:20]
    claims, _ = authenticate(conn, key.sign(clerk_claims(sub, given_name="Ada", family_name="Lovelace")))
    assert claims is not None
    user = user_of(conn, sub)
    assert claims["sub"] == user["id"] and claims["sub"] != sub
    assert claims["organization_id"] == str(org) and user["organization_id"] == str(org)
    assert claims["user_role"] == "user" and claims["is_service_user"] is False
    assert claims["role"] == "authenticated"
    assert claims["amr"][0]["method"] == "external" and claims["amr"][0]["provider"] == CLERK
    assert (user["email"], user["first_name"], user["last_name"]) == (f"{sub}@example.com", "Ada", "Lovelace")
    # The same side effects as provision_user.
    (n_tokens, n_subs, created, requested) = conn.execute(
        "select (select count(*) from identity.api_tokens where user_id = %(u)s),"
        " (select count(*) from identity.subscriptions where user_id = %(u)s),"
        " (select count(*) from identity.events where type = 'user.created' and user_id = %(u)s),"
        " (select count(*) from identity.events where type = 'credential.requested' and user_id = %(u)s)",
        {"u": user["id"]}).fetchone()
    assert (n_tokens, n_subs, created, requested) == (1, 1, 1, 1)
    (identity,) = conn.execute("select row_to_json(i) from identity.identities i where subject = %s", [sub]).fetchone()
    assert identity["issuer"] == CLERK and identity["user_id"] == user["id"]
    # A second sign-in is the same user; nothing new is made.
    again, _ = authenticate(conn, key.sign(clerk_claims(sub)))
    assert again["sub"] == claims["sub"]
    assert conn.execute("select count(*) from identity.api_tokens where user_id = %s", [user["id"]]).fetchone()[0] == 1


def test_exchange_gives_our_jwt_that_verify_jwt_and_rls_accept(conn, clerk):
    key, _ = clerk
    sub = "user_2" + uuid.uuid4().hex[:20]
    (ours,) = conn.execute("select identity.exchange_external_token(%s, '10 minutes')", [key.sign(clerk_claims(sub))]).fetchone()
    (claims,) = conn.execute("select identity.verify_jwt(%s)", [ours]).fetchone()
    user = user_of(conn, sub)
    assert claims["sub"] == user["id"] and claims["amr"][0]["provider"] == CLERK
    assert claims["exp"] - claims["iat"] == 600
    with conn.transaction():
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
        assert str(conn.execute("select identity.uid()").fetchone()[0]) == user["id"]
        rows = conn.execute("select id from identity.users").fetchall()
        assert [str(r[0]) for r in rows] == [user["id"]]
    (n,) = conn.execute("select count(*) from identity.audit_log where action = 'external_token.exchanged'"
                        " and actor_id = %s", [user["id"]]).fetchone()
    assert n == 1


def forged(key, other, sub):
    """Every forged or broken variant of a valid Clerk token, by name."""
    now = int(time.time())
    good = clerk_claims(sub)
    pem = key.private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    tampered = key.sign(good).split(".")
    tampered[1] = jwt.utils.base64url_encode(json.dumps(dict(good, sub="user_2victim")).encode()).decode()
    import hmac
    import hashlib
    hs_input = (jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": key.kid}).encode()) + b"." +
                jwt.utils.base64url_encode(json.dumps(good).encode()))
    hs = hs_input + b"." + jwt.utils.base64url_encode(hmac.new(pem, hs_input, hashlib.sha256).digest())
    none = (jwt.utils.base64url_encode(json.dumps({"alg": "none", "kid": key.kid}).encode()) + b"." +
            jwt.utils.base64url_encode(json.dumps(good).encode()) + b".").decode()
    return {
        "alg none": none,
        "alg confusion HS256 with the public key": hs.decode(),
        "signed by another key with the same kid": Key(key.alg, key.kid).sign(good),
        "unknown kid": other.sign(good),
        "expired": key.sign(dict(good, exp=now - 120, iat=now - 600, nbf=now - 600)),
        "not yet valid": key.sign(dict(good, nbf=now + 600)),
        "issued in the future": key.sign(dict(good, iat=now + 600)),
        "no exp": key.sign({k: v for k, v in good.items() if k != "exp"}),
        "wrong azp": key.sign(dict(good, azp="https://evil.example.com")),
        "no azp": key.sign({k: v for k, v in good.items() if k != "azp"}),
        "no sub": key.sign({k: v for k, v in good.items() if k != "sub"}),
        "tampered payload": ".".join(tampered),
        "wrong issuer": key.sign(dict(good, iss="https://clerk.evil.com")),
        "truncated signature": key.sign(good)[:-10],
    }


@pytest.mark.parametrize("variant", list(forged(Key("RS256", "k"), Key("RS256", "k2"), "s").keys()))
def test_every_forged_token_is_refused(conn, clerk, variant):
    key, _ = clerk
    sub = "user_2forged" + uuid.uuid4().hex[:8]
    token = forged(key, Key("RS256", "ins_unknown"), sub)[variant]
    claims, notices = authenticate(conn, token)
    assert claims is None, variant
    assert any("identity.authenticate" in n for n in notices)
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
        conn.execute("select identity.exchange_external_token(%s)", [token])
    # Nothing was provisioned for it.
    assert user_of(conn, sub) is None
    assert conn.execute("select count(*) from identity.identities where subject = %s", [sub]).fetchone()[0] == 0


def test_auth0_tokens_need_the_audience_and_a_linked_subject(conn):
    key = Key("RS256", "auth0-1")
    conn.execute("select identity.register_issuer(%s, %s, %s)", [AUTH0, json.dumps({"keys": [key.jwk]}),
                 json.dumps({"audience": "https://api.example.com", "match_external_id": True})])
    now = int(time.time())
    claims = {"iss": AUTH0, "sub": "auth0|65f1c0ffee", "aud": ["https://api.example.com", AUTH0 + "userinfo"],
              "iat": now, "exp": now + 300, "scope": "openid profile email", "azp": "abc123"}
    # provisioning off (the default): not linked yet.
    got, notices = authenticate(conn, key.sign(claims))
    assert got is None and any("not linked" in n for n in notices)
    got, _ = authenticate(conn, key.sign(dict(claims, aud="https://other.example.com")))
    assert got is None
    # provision_user's external id links on the first sign-in (match_external_id).
    (p,) = conn.execute("select identity.provision_user('auth0|65f1c0ffee', 'zed@example.com')").fetchone()
    got, _ = authenticate(conn, key.sign(claims))
    assert got["sub"] == p["user"]["id"]
    assert conn.execute("select user_id::text from identity.identities where issuer = %s", [AUTH0]).fetchone()[0] == p["user"]["id"]


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_supabase_shaped_tokens_with_es256_and_eddsa(conn, alg):
    iss = f"{SUPABASE}/{alg}"
    key = Key(alg, f"sb-{alg}")
    conn.execute("select identity.register_issuer(%s, %s, %s)", [iss, json.dumps({"keys": [key.jwk]}),
                 json.dumps({"audience": "authenticated", "provisioning": "auto",
                             "email_verified_claim": "user_metadata.email_verified"})])
    now = int(time.time())
    sub = str(uuid.uuid4())
    claims = {"iss": iss, "sub": sub, "aud": "authenticated", "exp": now + 3600, "iat": now, "role": "authenticated",
              "email": f"{sub[:8]}@supabase.example.com", "session_id": str(uuid.uuid4()), "aal": "aal1",
              "amr": [{"method": "password", "timestamp": now}], "is_anonymous": False, "phone": "",
              "user_metadata": {"email_verified": False}}
    # An email Supabase Auth has not verified provisions nobody.
    got, notices = authenticate(conn, key.sign(claims))
    assert got is None and any("user_metadata.email_verified claim is not true" in n for n in notices)
    claims["user_metadata"]["email_verified"] = True
    got, _ = authenticate(conn, key.sign(claims))
    assert got is not None and got["sub"] != sub and got["email"] == claims["email"]
    # The key's alg only: the same key claiming another alg is refused.
    confused = jwt.encode(claims, Key("RS256", key.kid).private, algorithm="RS256", headers={"kid": key.kid})
    got, notices = authenticate(conn, confused)
    assert got is None and any("algorithm" in n for n in notices)


def test_suspended_and_deleted_users_are_refused_and_never_reprovisioned(conn, clerk):
    key, _ = clerk
    sub = "user_2life" + uuid.uuid4().hex[:8]
    first, _ = authenticate(conn, key.sign(clerk_claims(sub)))
    conn.execute("select identity.suspend_user(%s)", [first["sub"]])
    got, notices = authenticate(conn, key.sign(clerk_claims(sub, iat=int(time.time()) + 1)))
    assert got is None and any("not active" in n for n in notices)
    conn.execute("select identity.reactivate_user(%s)", [first["sub"]])
    time.sleep(1.1)
    assert authenticate(conn, key.sign(clerk_claims(sub)))[0]["sub"] == first["sub"]
    conn.execute("select identity.delete_user(%s)", [first["sub"]])
    got, notices = authenticate(conn, key.sign(clerk_claims(sub)))
    assert got is None and any("not active" in n for n in notices)
    assert user_of(conn, sub) is None


@pytest.mark.parametrize("match_external_id", [True, False])
def test_concurrent_first_sign_ins_make_one_user(conn, match_external_id):
    # Without the external id to meet on (match_external_id false), only the
    # lock per (issuer, subject) keeps the 8 sign-ins from making 8 users.
    iss = f"https://race-{str(match_external_id).lower()}.example.com"
    key = Key("ES256", "race")
    conn.execute("select identity.register_issuer(%s, %s, %s)", [iss, json.dumps({"keys": [key.jwk]}),
                 json.dumps({"provisioning": "auto", "match_external_id": match_external_id, "any_audience": True})])
    sub = "user_2race" + uuid.uuid4().hex[:8]
    now = int(time.time())
    token = key.sign({"iss": iss, "sub": sub, "exp": now + 60, "iat": now, "email": f"{sub}@example.com",
                      "email_verified": True})

    def sign_in(_i):
        with psycopg.connect(**server("external_idp")) as c:
            (claims,) = c.execute("select identity.authenticate(%s)", [token]).fetchone()
            c.commit()
            return claims["sub"]

    subs, errors = run_concurrently(8, sign_in)
    assert not errors, errors
    assert len(set(subs)) == 1
    assert conn.execute("select count(*) from identity.users where email = %s", [f"{sub}@example.com"]).fetchone()[0] == 1
    assert conn.execute("select count(*) from identity.identities where subject = %s", [sub]).fetchone()[0] == 1


def test_rotation_through_set_issuer_jwks(conn):
    iss = "https://rotate.example.com"
    old, new = Key("ES256", "old"), Key("ES256", "new")
    conn.execute("select identity.register_issuer(%s, %s, '{\"provisioning\": \"auto\", \"any_audience\": true}')",
                 [iss, json.dumps({"keys": [old.jwk]})])
    now = int(time.time())
    c = {"iss": iss, "sub": "rot-1", "exp": now + 60, "iat": now, "email": "rot1@example.com", "email_verified": True}
    assert authenticate(conn, old.sign(c))[0] is not None
    assert authenticate(conn, new.sign(c))[0] is None
    conn.execute("select identity.set_issuer_jwks(%s, %s)", [iss, json.dumps({"keys": [old.jwk, new.jwk]})])
    assert authenticate(conn, new.sign(c))[0] is not None
    conn.execute("select identity.set_issuer_jwks(%s, %s)", [iss, json.dumps({"keys": [new.jwk]})])
    assert authenticate(conn, old.sign(c))[0] is None
    # Several keys: the kid is required.
    conn.execute("select identity.set_issuer_jwks(%s, %s)", [iss, json.dumps({"keys": [old.jwk, new.jwk]})])
    assert authenticate(conn, new.sign(c, kid=False))[0] is None
    (listed,) = [r[0] for r in conn.execute("select identity.list_issuers()") if r[0]["issuer"] == iss]
    assert listed["kids"] == ["old", "new"] and listed["identities"] == 1


def test_issuer_management_is_checked_system_only_and_audited(conn):
    key = Key("RS256", "m1")
    aud = {"audience": "api"}
    bad = [
        ("not-a-jwks", {"nokeys": []}, aud),
        ("private key", {"keys": [dict(key.jwk, d="AAAA")]}, aud),
        ("symmetric", {"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0"}]}, aud),
        ("bad option", {"keys": [key.jwk]}, dict(aud, provisioning="sometimes")),
        ("plain http", {"keys": [key.jwk]}, dict(aud, jwks_uri="http://example.com/jwks")),
        ("bad secret", {"keys": [key.jwk]}, dict(aud, webhook_secret="whsec_x")),
        # Neither aud nor azp checked, and no explicit any_audience.
        ("no audience", {"keys": [key.jwk]}, {}),
        ("no audience, auto", {"keys": [key.jwk]}, {"provisioning": "auto"}),
        ("any_audience with an audience", {"keys": [key.jwk]}, dict(aud, any_audience=True)),
    ]
    for name, jwks, options in bad:
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute("select identity.register_issuer('https://bad.example.com', %s, %s)",
                         [json.dumps(jwks), json.dumps(options)])
    assert conn.execute("select count(*) from identity.issuers where issuer = 'https://bad.example.com'").fetchone()[0] == 0
    with conn.transaction():
        conn.execute("set local role authenticated")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select identity.register_issuer('https://x.example.com', %s)", [json.dumps({"keys": [key.jwk]})])
    conn.execute("select identity.register_issuer('https://m.example.com', %s, %s)",
                 [json.dumps({"keys": [key.jwk]}), json.dumps({"webhook_secret": WHSEC, "audience": "api"})])
    (row,) = conn.execute("select row_to_json(i)::text from identity.issuers i where issuer = 'https://m.example.com'").fetchone()
    assert "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in row and "whsec" not in row
    listed = [r[0] for r in conn.execute("select identity.list_issuers()")]
    m = next(i for i in listed if i["issuer"] == "https://m.example.com")
    assert m["webhook_secret"] is True and "webhook_secret" not in m["options"]
    conn.execute("select identity.remove_issuer('https://m.example.com')")
    with pytest.raises(psycopg.errors.NoDataFound):
        conn.execute("select identity.remove_issuer('https://m.example.com')")
    actions = [r[0] for r in conn.execute("select action from identity.audit_log where target_id = 'https://m.example.com' order by id")]
    assert actions == ["issuer.registered", "issuer.removed"]


class JwksServer:
    """A loopback HTTP server for one JWKS; `body` is what it serves."""

    def __init__(self):
        outer = self
        self.body, self.hits = b"{}", 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, keys):
        self.body = json.dumps({"keys": [k.jwk for k in keys]}).encode()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(conn, iss, pred, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        rows = [r[0] for r in conn.execute("select identity.list_issuers()") if r[0]["issuer"] == iss]
        if rows and pred(rows[0]):
            return rows[0]
        time.sleep(0.2)
    raise AssertionError(f"timed out: {rows}")


def test_jwks_uri_is_fetched_rotated_and_survives_a_bad_server(conn):
    srv = JwksServer()
    a, b = Key("RS256", "uri-a"), Key("ES256", "uri-b")
    srv.serve([a])
    iss = "https://uri.example.com"
    conn.execute("select identity.register_issuer(%s, null, %s)", [iss, json.dumps({
        "jwks_uri": f"http://127.0.0.1:{srv.port}/.well-known/jwks.json", "jwks_refresh_seconds": 2,
        "provisioning": "auto", "any_audience": True})])
    wait_for(conn, iss, lambda i: i["kids"] == ["uri-a"])
    now = int(time.time())
    c = {"iss": iss, "sub": "uri-1", "exp": now + 120, "iat": now, "email": "uri1@example.com", "email_verified": True}
    assert authenticate(conn, a.sign(c))[0] is not None
    # Rotation at the provider: a token of the new key is refused until the
    # worker fetched the new set (never waited for), then accepted.
    srv.serve([a, b])
    end = time.time() + 20
    while authenticate(conn, b.sign(c))[0] is None:
        assert time.time() < end, "the new key never arrived"
        time.sleep(0.3)
    # Garbage and an invalid set: the last good set stays, the error is shown.
    srv.body = b"<html>not json</html>"
    wait_for(conn, iss, lambda i: i["jwks_error"] and "not JSON" in i["jwks_error"])
    srv.body = json.dumps({"keys": [dict(a.jwk, d="AAAA")]}).encode()
    wait_for(conn, iss, lambda i: i["jwks_error"] and "public keys only" in i["jwks_error"])
    assert authenticate(conn, a.sign(c))[0] is not None and authenticate(conn, b.sign(c))[0] is not None
    # The server goes away: the same.
    srv.stop()
    failed = wait_for(conn, iss, lambda i: i["jwks_error"] and "fetch failed" in i["jwks_error"])
    assert failed["kids"] == ["uri-a", "uri-b"]
    assert authenticate(conn, b.sign(c))[0] is not None
    conn.execute("select identity.remove_issuer(%s)", [iss])


# --- webhooks -----------------------------------------------------------------


def delivery(event, secret=WHSEC, msg_id=None, at=None, body=None):
    body = body if body is not None else json.dumps(event)
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    at = at or datetime.datetime.now(datetime.timezone.utc)
    sig = Webhook(secret).sign(msg_id, at, body)
    headers = {"svix-id": msg_id, "svix-timestamp": str(int(at.timestamp())), "svix-signature": sig,
               "content-type": "application/json", "user-agent": "Svix-Webhooks/1.40.0"}
    return headers, body


def clerk_user(ty, sub, email=None, first="Grace", last="Hopper", status="verified"):
    if ty == "user.deleted":
        return {"type": ty, "object": "event", "data": {"id": sub, "deleted": True, "object": "user"}}
    return {"type": ty, "object": "event", "data": {
        "id": sub, "object": "user", "first_name": first, "last_name": last,
        "primary_email_address_id": "idn_primary",
        "email_addresses": [{"id": "idn_other", "email_address": f"other-{sub}@example.com",
                             "verification": {"status": "verified", "strategy": "email_code"}},
                            {"id": "idn_primary", "email_address": email or f"{sub}@example.com",
                             "verification": {"status": status, "strategy": "email_code"}}]}}


def hook(conn, headers, body, role="anon"):
    with conn.transaction():
        conn.execute(f"set local role {role}")
        return conn.execute("select identity.handle_webhook(%s, %s, %s)", [CLERK, json.dumps(headers), body]).fetchone()[0]


def counts(conn):
    return conn.execute("select (select count(*) from identity.users), (select count(*) from identity.webhook_deliveries),"
                        " (select count(*) from identity.audit_log), (select count(*) from identity.identities)").fetchone()


def test_a_signed_user_created_provisions_and_a_replay_is_a_duplicate(conn, clerk):
    sub = "user_2hook" + uuid.uuid4().hex[:8]
    headers, body = delivery(clerk_user("user.created", sub))
    # Svix's own verifier accepts what we accept.
    Webhook(WHSEC).verify(body, headers)
    got = hook(conn, headers, body)
    user = user_of(conn, sub)
    assert got == {"status": "processed", "user_id": user["id"]}
    assert (user["email"], user["first_name"], user["last_name"]) == (f"{sub}@example.com", "Grace", "Hopper")
    assert hook(conn, headers, body) == {"status": "duplicate", "user_id": user["id"]}
    # The same user signs in with a session token afterwards.
    key, _ = clerk
    assert authenticate(conn, key.sign(clerk_claims(sub)))[0]["sub"] == user["id"]
    # Updated: the profile follows.
    headers, body = delivery(clerk_user("user.updated", sub, email=f"new-{sub}@example.com", first="Amazing", last=None))
    assert hook(conn, headers, body)["status"] == "processed"
    user = conn.execute("select identity.user_by_id(%s)", [user["id"]]).fetchone()[0]
    assert (user["email"], user["first_name"], user["last_name"]) == (f"new-{sub}@example.com", "Amazing", None)
    # Deleted: the user goes; the subject stays refused.
    headers, body = delivery(clerk_user("user.deleted", sub))
    assert hook(conn, headers, body) == {"status": "processed", "user_id": user["id"]}
    assert conn.execute("select count(*) from identity.users where id = %s", [user["id"]]).fetchone()[0] == 0
    assert authenticate(conn, key.sign(clerk_claims(sub)))[0] is None
    other = {"type": "session.created", "object": "event", "data": {"id": "sess_1"}}
    headers, body = delivery(other)
    assert hook(conn, headers, body) == {"status": "ignored", "user_id": None}


def test_bad_deliveries_are_refused_and_write_nothing(conn, clerk):
    sub = "user_2bad" + uuid.uuid4().hex[:8]
    event = clerk_user("user.created", sub)
    headers, body = delivery(event)
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=6)
    cases = {
        "tampered body": (headers, body.replace("Grace", "Mallory")),
        "wrong secret": delivery(event, secret="whsec_" + "A" * 32),
        "old timestamp": delivery(event, at=old),
        "future timestamp": delivery(event, at=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=6)),
        "no signature": ({k: v for k, v in headers.items() if k != "svix-signature"}, body),
        "other id": (dict(headers, **{"svix-id": "msg_other"}), body),
        "v2 only": (dict(headers, **{"svix-signature": headers["svix-signature"].replace("v1,", "v2,")}), body),
    }
    before = counts(conn)
    for name, (h, b) in cases.items():
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            hook(conn, h, b)
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
        with conn.transaction():
            conn.execute("set local role anon")
            conn.execute("select identity.handle_webhook('https://unknown.example.com', %s, %s)", [json.dumps(headers), body])
    assert counts(conn) == before
    # The anon role may call handle_webhook and nothing else of section 11.
    with conn.transaction():
        conn.execute("set local role anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select identity.list_issuers()")


def test_out_of_order_events(conn, clerk):
    # updated before created: provisions; the late created finds the user.
    sub = "user_2ooo" + uuid.uuid4().hex[:8]
    got = hook(conn, *delivery(clerk_user("user.updated", sub, first="Early")))
    assert got["status"] == "processed" and got["user_id"]
    late = hook(conn, *delivery(clerk_user("user.created", sub)))
    assert late == {"status": "processed", "user_id": got["user_id"]}
    assert conn.execute("select count(*) from identity.users where external_id = %s", [sub]).fetchone()[0] == 1
    # deleted before created: a tombstone; the late created does nothing.
    sub = "user_2tomb" + uuid.uuid4().hex[:8]
    assert hook(conn, *delivery(clerk_user("user.deleted", sub))) == {"status": "processed", "user_id": None}
    assert hook(conn, *delivery(clerk_user("user.created", sub))) == {"status": "ignored", "user_id": None}
    assert user_of(conn, sub) is None
    key, _ = clerk
    assert authenticate(conn, key.sign(clerk_claims(sub)))[0] is None


def test_eight_concurrent_deliveries_of_one_event(conn, clerk):
    sub = "user_2conc" + uuid.uuid4().hex[:8]
    headers, body = delivery(clerk_user("user.created", sub))

    def deliver(_i):
        with psycopg.connect(**server("external_idp")) as c:
            c.execute("set role anon")
            (r,) = c.execute("select identity.handle_webhook(%s, %s, %s)", [CLERK, json.dumps(headers), body]).fetchone()
            c.commit()
            return r

    results, errors = run_concurrently(8, deliver)
    assert not errors, errors
    statuses = sorted(r["status"] for r in results)
    assert statuses == ["duplicate"] * 7 + ["processed"]
    assert len({r["user_id"] for r in results}) == 1
    assert conn.execute("select count(*) from identity.users where external_id = %s", [sub]).fetchone()[0] == 1


def test_another_issuer_never_reaches_clerks_users(conn, clerk):
    # A second registered issuer with every permissive option signs Clerk's
    # subjects, Clerk's organization id and webhooks about Clerk's users:
    # none of it reaches them (issue 30, item 3).
    key, org = clerk
    sub = "user_2victim" + uuid.uuid4().hex[:8]
    victim, _ = authenticate(conn, key.sign(clerk_claims(sub)))
    assert victim["organization_id"] == str(org)
    evil, evil_secret = Key("ES256", "evil-1"), "whsec_" + "QkJC" * 8
    iss = "https://evil.example.com"
    conn.execute("select identity.register_issuer(%s, %s, %s)", [iss, json.dumps({"keys": [evil.jwk]}), json.dumps({
        "any_audience": True, "provisioning": "auto", "match_external_id": True,
        "organization_id": "o.id", "webhook_secret": evil_secret})])
    now = int(time.time())
    claims = {"iss": iss, "sub": sub, "exp": now + 60, "iat": now, "email": f"evil-{sub}@evil.example.com",
              "email_verified": True, "o": {"id": "org_2clerkorg"}}
    got, _ = authenticate(conn, evil.sign(claims))
    assert got is not None and got["sub"] != victim["sub"] and got["organization_id"] is None
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
        conn.execute("select identity.exchange_external_token(%s)", [key.sign(dict(clerk_claims(sub), iss=iss))])

    def evil_hook(event):
        headers, body = delivery(event, secret=evil_secret)
        return conn.execute("select identity.handle_webhook(%s, %s, %s)", [iss, json.dumps(headers), body]).fetchone()[0]

    assert evil_hook(clerk_user("user.updated", sub, email=f"mallory-{sub}@evil.example.com"))["user_id"] != victim["sub"]
    assert evil_hook(clerk_user("user.deleted", sub))["user_id"] != victim["sub"]
    user = conn.execute("select identity.user_by_id(%s)", [victim["sub"]]).fetchone()[0]
    assert (user["email"], user["first_name"], user["organization_id"]) == (f"{sub}@example.com", None, str(org))
    assert authenticate(conn, key.sign(clerk_claims(sub)))[0]["sub"] == victim["sub"]
    # Clerk's own webhook still reaches its user.
    assert hook(conn, *delivery(clerk_user("user.updated", sub)))["user_id"] == victim["sub"]
    conn.execute("select identity.remove_issuer(%s)", [iss])


def test_an_email_clerk_has_not_verified_is_never_taken(conn, clerk):
    # issue 30, item 11: neither to provision with nor to replace a user's email.
    sub = "user_2unv" + uuid.uuid4().hex[:8]
    got = hook(conn, *delivery(clerk_user("user.created", sub, status="unverified")))
    assert got == {"status": "ignored", "user_id": None} and user_of(conn, sub) is None
    got = hook(conn, *delivery(clerk_user("user.created", sub)))
    assert got["status"] == "processed"
    got = hook(conn, *delivery(clerk_user("user.updated", sub, email=f"unv-{sub}@example.com", status="unverified")))
    assert got["status"] == "processed" and user_of(conn, sub)["email"] == f"{sub}@example.com"


@pytest.mark.parametrize("uri", ["https://127.0.0.1:9/jwks.json", "https://localhost:9/jwks.json",
                                 "https://[::1]:9/jwks.json", "http://127.0.0.1:9/jwks.json"])
def test_jwks_uri_on_a_private_address_is_never_fetched(conn, uri):
    """With identity.jwks_allow_private_addresses off (the default; the
    interop cluster turns it on for its loopback key servers), a jwks_uri
    whose host is (or resolves to) a loopback address, over https or plain
    http, is refused by the fetcher before it connects. (Private and
    link-local ranges are refused the same way, `address_allowed`'s unit
    test; no test here may send traffic to them.)"""
    conn.execute("alter system set identity.jwks_allow_private_addresses = off")
    conn.execute("select pg_reload_conf()")
    time.sleep(0.5)
    iss = "https://private-" + uri.split("//")[1].split("/")[0].replace(":", "-").strip("[]") + ".example.com"
    try:
        conn.execute("select identity.register_issuer(%s, null, %s)", [iss, json.dumps({
            "jwks_uri": uri, "audience": "private-app"})])
        row = wait_for(conn, iss, lambda i: i.get("jwks_error") is not None)
        assert "may not reach" in row["jwks_error"], row["jwks_error"]
        assert row["kids"] == []
    finally:
        conn.execute("select identity.remove_issuer(%s)", [iss])
        conn.execute("alter system reset identity.jwks_allow_private_addresses")
        conn.execute("select pg_reload_conf()")
        time.sleep(0.5)


# --- Supabase Auth's own tokens (API.md 13) -----------------------------------

SUPABASE_FIXTURE = (pathlib.Path(__file__).resolve().parent.parent / "pg_test" / "supabase_fixture.sql").read_text()


def supabase_token(key, iss, sub, email, **over):
    """An access token shaped as Supabase Auth issues them (ES256, kid)."""
    now = int(time.time())
    c = {"iss": iss, "sub": sub, "aud": "authenticated", "exp": now + 3600, "iat": now, "email": email,
         "phone": "", "app_metadata": {"provider": "email", "providers": ["email"]}, "user_metadata": {},
         "role": "authenticated", "aal": "aal1", "amr": [{"method": "password", "timestamp": now}],
         "session_id": str(uuid.uuid4()), "is_anonymous": False}
    c.update(over)
    return key.sign(c, headers={"typ": "JWT"})


def test_supabase_auths_own_tokens_through_its_jwks_uri(conn):
    conn.execute(SUPABASE_FIXTURE)
    linked, other = str(uuid.uuid4()), str(uuid.uuid4())
    conn.execute("insert into auth.users (id, email, email_confirmed_at, created_at)"
                 " values (%s, 'sb-linked@example.com', now(), now())", [linked])
    conn.execute("select identity.link_supabase_auth()")
    # A user identity made itself (not from auth.users).
    conn.execute("insert into identity.users (id, email) values (%s, 'sb-other@example.com')", [other])
    srv = JwksServer()
    a, b = Key("ES256", "sb-a"), Key("ES256", "sb-b")
    srv.serve([a])
    iss = "https://abcdefghijklmnop.supabase.co/auth/v1"
    try:
        # Registered by jwks_uri alone: no key pasted; refused until fetched.
        conn.execute("select identity.register_issuer(%s, null, %s)", [iss, json.dumps({
            "jwks_uri": f"http://127.0.0.1:{srv.port}/auth/v1/.well-known/jwks.json", "jwks_refresh_seconds": 2,
            "audience": "authenticated", "subject_is_user_id": True})])
        wait_for(conn, iss, lambda i: i["kids"] == ["sb-a"], timeout=10)
        claims, _ = authenticate(conn, supabase_token(a, iss, linked, "sb-linked@example.com"))
        assert claims is not None and claims["sub"] == linked
        # pre_request, with identity.claims_source 'verified' (it verifies
        # the Bearer JWT itself), as PostgREST runs it.
        with conn.transaction():
            conn.execute("set local identity.claims_source = 'verified'")
            conn.execute("select set_config('request.headers', %s, true)",
                         [json.dumps({"authorization": "Bearer " + supabase_token(a, iss, linked, "x@example.com")})])
            conn.execute("select identity.pre_request()")
            assert str(conn.execute("select identity.uid()").fetchone()[0]) == linked
        # verify_jwt and try_verify_jwt accept it too (its claims), and refuse
        # another audience.
        t = supabase_token(a, iss, linked, "sb-linked@example.com", user_role="system", is_service_user=True,
                           organization_id=str(uuid.uuid4()), scopes=["*"])
        (claims,) = conn.execute("select identity.verify_jwt(%s)", [t]).fetchone()
        assert claims["sub"] == linked and claims["iss"] == iss
        # identity's claim names say what identity.users says, never the token.
        assert (claims["user_role"], claims["is_service_user"], claims["organization_id"]) == ("user", False, None)
        assert "scopes" not in claims
        assert conn.execute("select valid, code from identity.try_verify_jwt(%s)", [t]).fetchone() == (True, None)
        assert conn.execute("select valid, code from identity.try_verify_jwt(%s, 'other')", [t]).fetchone() == (
            False, "wrong_audience")
        t = supabase_token(a, iss, other, "sb-other@example.com")
        assert conn.execute("select valid, code from identity.try_verify_jwt(%s)", [t]).fetchone() == (
            False, "not_linked")
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            conn.execute("select identity.verify_jwt(%s)", [t])
        # Any other user, and a sub that is no uuid: refused.
        for sub in [other, str(uuid.uuid4()), "not-a-uuid"]:
            claims, _ = authenticate(conn, supabase_token(a, iss, sub, "sb-other@example.com"))
            assert claims is None, sub
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification) as e:
            conn.execute("select identity.exchange_external_token(%s)", [supabase_token(a, iss, other, "o@example.com")])
        assert e.value.diag.message_detail.startswith("not_linked")
        # Rotation at Supabase: the new key's tokens are accepted once fetched.
        srv.serve([a, b])
        end = time.time() + 20
        while authenticate(conn, supabase_token(b, iss, linked, "sb-linked@example.com"))[0] is None:
            assert time.time() < end, "the rotated key never arrived"
            time.sleep(0.3)
        # revoke_session and revoke_jwt speak for Supabase's session and jti.
        sid = str(uuid.uuid4())
        t = supabase_token(a, iss, linked, "sb-linked@example.com", session_id=sid, jti="sb-jti-1")
        assert authenticate(conn, t)[0] is not None
        conn.execute("select identity.revoke_session(%s)", [sid])
        assert authenticate(conn, t)[0] is None
        assert conn.execute("select valid, code from identity.try_verify_jwt(%s)", [t]).fetchone() == (
            False, "token_revoked")
        t = supabase_token(a, iss, linked, "sb-linked@example.com", jti="sb-jti-2")
        conn.execute("select identity.revoke_jwt('sb-jti-2', now() + interval '1 hour')")
        assert authenticate(conn, t)[0] is None
        # A ban in Supabase Auth refuses its own tokens at once.
        conn.execute("update auth.users set banned_until = now() + interval '1 day' where id = %s", [linked])
        assert authenticate(conn, supabase_token(a, iss, linked, "sb-linked@example.com"))[0] is None
    finally:
        srv.stop()
        conn.execute("select identity.remove_issuer(%s)", [iss])
        conn.execute("select identity.unlink_supabase_auth()")
