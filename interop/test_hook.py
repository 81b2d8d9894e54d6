"""Calls identity.custom_access_token_hook the way Supabase Auth does: as a
role holding only the `hook` grant level, inside a transaction with
`set local statement_timeout to '2000'`, the event sent as a text parameter
by a real driver (psycopg 3). Every answer is validated with a JSON-schema
validator against Supabase Auth's minimum claims schema (or the error shape).

Needs PGHOST/PGPORT of a cluster with the extension installed (test.sh starts one).
"""
import json
import os
import time
import uuid

import jsonschema
import psycopg
import pytest
from conftest import CLAIMS_SCHEMA, ERR_SCHEMA, OK_SCHEMA, run_concurrently

ADMIN = dict(host=os.environ["PGHOST"], port=os.environ["PGPORT"], user="postgres", dbname="interop")
HOOK = dict(ADMIN, user="supabase_auth_admin")

ORG = "00000000-0000-0000-0000-0000000000a1"
USERS = {
    "none": ("00000000-0000-0000-0000-0000000000ff", None),
    "user": ("00000000-0000-0000-0000-0000000000b1", ("user", False, "active")),
    "admin": ("00000000-0000-0000-0000-0000000000b2", ("admin", False, "active")),
    "service": ("00000000-0000-0000-0000-0000000000b3", ("user", True, "active")),
    "suspended": ("00000000-0000-0000-0000-0000000000b4", ("user", False, "suspended")),
    "disabled": ("00000000-0000-0000-0000-0000000000b5", ("admin", False, "disabled")),
}
METHODS = ["password", "otp", "oauth", "sso/saml", "magiclink", "email/signup", "token_refresh",
           "anonymous", "recovery", "invite"]


@pytest.fixture(scope="session", autouse=True)
def database():
    with psycopg.connect(**dict(ADMIN, dbname="postgres"), autocommit=True) as c:
        c.execute("drop database if exists interop")
        c.execute("create database interop")
        for r in ["anon", "authenticated", "service_role", "supabase_auth_admin"]:
            c.execute(f"drop role if exists {r}")
            c.execute(f"create role {r} {'login' if r == 'supabase_auth_admin' else 'nologin'}")
    with psycopg.connect(**ADMIN, autocommit=True) as c:
        c.execute("create extension identity")
        # The documented grant steps (README, "Wiring the hook into Supabase").
        c.execute("select identity.grant_access('supabase_auth_admin', 'hook')")
        c.execute("select identity.grant_access('authenticated', 'user')")
        c.execute("select identity.grant_access('service_role', 'admin')")
        c.execute("insert into identity.organizations (id, name) values (%s, 'Org')", [ORG])
        for kind, (uid, row) in USERS.items():
            if row:
                role, svc, status = row
                c.execute(
                    "insert into identity.users (id, email, organization_id, user_role, is_service_user,"
                    " application_id, status) values (%s, %s, %s, %s, %s, %s, %s)",
                    [uid, f"{kind}@example.com", ORG, role, svc, str(uuid.uuid4()) if svc else None, status])
    yield


def event(uid, method="password", metadata=True, **claims_over):
    claims = {
        "iss": "https://project.supabase.co/auth/v1", "aud": "authenticated",
        "exp": int(time.time()) + 3600, "iat": int(time.time()), "sub": uid,
        "email": "x@example.com", "phone": "", "role": "authenticated", "aal": "aal1",
        "amr": [{"method": method, "timestamp": int(time.time())}],
        "session_id": str(uuid.uuid4()), "is_anonymous": method == "anonymous",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {"is_service_user": True, "user_role": "admin"},
    }
    claims.update(claims_over)
    ev = {"user_id": uid, "claims": claims, "authentication_method": method}
    if metadata:
        ev["metadata"] = {"uuid": str(uuid.uuid4()), "time": "2026-11-21T12:00:00Z",
                          "name": "customize-access-token", "ip_address": "127.0.0.1"}
    return ev


def call_hook(ev, conn=None):
    """As Supabase Auth does: a transaction, a 2 s timeout, the event as a text parameter."""
    own = conn is None
    conn = conn or psycopg.connect(**HOOK)
    try:
        with conn.transaction():
            conn.execute("set local statement_timeout to '2000'")
            text = ev if isinstance(ev, str) else json.dumps(ev)
            (answer,) = conn.execute("select identity.custom_access_token_hook(%s::text::jsonb)", [text]).fetchone()
        return answer
    finally:
        if own:
            conn.close()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("metadata", [True, False])
@pytest.mark.parametrize("kind", list(USERS))
def test_every_method_and_user_kind(kind, metadata, method):
    uid, row = USERS[kind]
    ev = event(uid, method, metadata)
    answer = call_hook(ev)
    if row and row[2] != "active":
        jsonschema.validate(answer, ERR_SCHEMA)
        assert answer["error"]["http_code"] == 403
        return
    jsonschema.validate(answer, OK_SCHEMA)
    claims = answer["claims"]
    for k, v in ev["claims"].items():
        assert claims[k] == v, f"input claim {k} changed"
    assert claims["role"] == "authenticated"
    assert claims["is_service_user"] is (kind == "service")  # never from user_metadata
    assert claims["user_role"] == (row[0] if row else "user")
    assert claims["organization_id"] == (ORG if row else None)
    assert ("application_id" in claims) is (kind == "service")


def test_aud_array_and_optional_claims_keep_types():
    answer = call_hook(event(USERS["admin"][0], "oauth", aud=["authenticated", "api"],
                             client_id="app-1", scope="openid", nbf=1, jti="j-1"))
    jsonschema.validate(answer, OK_SCHEMA)
    assert answer["claims"]["aud"] == ["authenticated", "api"]


@pytest.mark.parametrize("bad", [
    "[1]", '"x"', "null", "{}",
    json.dumps({"user_id": "not-a-uuid", "claims": {}}),
    json.dumps({"user_id": USERS["user"][0]}),
    json.dumps({"user_id": USERS["user"][0], "claims": [1]}),
    json.dumps(event(USERS["user"][0], exp="soon")),
    json.dumps(event(USERS["user"][0], big="x" * 400_000)),
])
def test_malformed_events_answer_400_never_raise(bad):
    answer = call_hook(bad)
    jsonschema.validate(answer, ERR_SCHEMA)
    assert answer["error"]["http_code"] == 400


def test_answers_while_the_user_row_is_locked_for_update():
    uid = USERS["user"][0]
    with psycopg.connect(**ADMIN) as locker:
        locker.execute("select 1 from identity.users where id = %s for update", [uid])
        t0 = time.monotonic()
        answer = call_hook(event(uid))  # would hit the 2 s timeout if it waited for the lock
        elapsed = time.monotonic() - t0
        locker.rollback()
    jsonschema.validate(answer, OK_SCHEMA)
    assert elapsed < 1.0


def test_hook_role_can_do_nothing_else():
    with psycopg.connect(**HOOK) as c:
        for sql in ["select count(*) from identity.users", "select count(*) from identity.api_tokens",
                    "select count(*) from identity.credentials", "select count(*) from identity.audit_log",
                    "select identity.decode_jwt('e30.e30.')",
                    "select identity.grant_access('supabase_auth_admin', 'admin')"]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with c.transaction():
                    c.execute(sql)


def test_other_supabase_roles_cannot_call_the_hook():
    with psycopg.connect(**ADMIN) as c:
        for role in ["anon", "authenticated", "service_role"]:
            (ok,) = c.execute("select has_function_privilege(%s, 'identity.custom_access_token_hook(jsonb)',"
                              " 'execute')", [role]).fetchone()
            assert ok is False, role


def test_concurrent_calls_from_8_connections():
    def worker(_i):
        with psycopg.connect(**HOOK) as c:
            for _ in range(25):
                jsonschema.validate(call_hook(event(USERS["service"][0]), c), OK_SCHEMA)

    _, errors = run_concurrently(8, worker)
    assert errors == []
