"""Errors over HTTP (API.md 16): inside a PostgREST request (request.method
set, as PostgREST sets it for every request), the extension's errors leave
as PostgREST's custom error (SQLSTATE PGRST) whose message is the response
body and whose detail is the status and headers; the same calls outside a
request keep their SQLSTATEs."""
import json

import psycopg
import pytest

from conftest import fresh_database, server

DB = "http_status"
UID = "00000000-0000-0000-0000-0000000e6001"


@pytest.fixture(scope="module")
def db():
    with fresh_database(DB) as c:
        c.execute("do $$ begin create role authenticated nologin; exception when duplicate_object then null; end $$")
        c.execute("select identity.grant_access('authenticated', 'user')")
        c.execute("insert into identity.users (id, email) values (%s, 'http@interop.test')", [UID])
        yield c


def request(sql, args=(), method="POST"):
    """One PostgREST-style request: its own transaction, the role, the
    request settings, the call. Returns the error raised (or None)."""
    with psycopg.connect(**server(DB)) as c:
        c.execute("set local role authenticated")
        c.execute("select set_config('request.method', %s, true)", [method])
        c.execute("select set_config('request.path', '/rpc/x', true)")
        c.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps({"sub": UID, "role": "authenticated"})])
        try:
            c.execute(sql, args)
        except psycopg.Error as e:
            return e
        return None


@pytest.mark.parametrize("sql,code,status,header", [
    ("select identity.verify_jwt('a.b.c')", "28000", 401, ("WWW-Authenticate", 'Bearer error="invalid_token"')),
    ("select identity.revoke_api_token('00000000-0000-0000-0000-00000000dead')", "P0002", 404, None),
    (f"select identity.suspend_user('{UID}')", "42501", 403, None),
    (f"select identity.create_api_token('{UID}', repeat('n', 300))", "22023", 400, None),
])
def test_each_refusal_has_its_status(db, sql, code, status, header):
    e = request(sql)
    assert e is not None and e.sqlstate == "PGRST", e
    body = json.loads(e.diag.message_primary)
    assert set(body) == {"code", "message", "details", "hint"} and body["code"] == code
    resp = json.loads(e.diag.message_detail)
    assert resp["status"] == status
    if header:
        assert resp["headers"][header[0]] == header[1]
    # Outside a request (no request.method): the SQLSTATE itself.
    outside = request(sql, method="")
    assert outside.sqlstate == code


def test_a_busy_row_is_503_with_retry_after(db):
    """A user's own open transaction holds their row: an admin's change is
    55P03 at once, which a client should retry: 503 with Retry-After."""
    with psycopg.connect(**server(DB)) as user:
        user.execute("set local role authenticated")
        user.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps({"sub": UID, "role": "authenticated"})])
        user.execute("select identity.update_user(%s, '{\"first_name\": \"Busy\"}')", [UID])
        with psycopg.connect(**server(DB)) as admin:
            admin.execute("select set_config('request.method', 'POST', true)")
            with pytest.raises(psycopg.Error) as e:
                admin.execute("select identity.suspend_user(%s)", [UID])
        user.rollback()
    assert e.value.sqlstate == "PGRST"
    assert json.loads(e.value.diag.message_primary)["code"] == "55P03"
    resp = json.loads(e.value.diag.message_detail)
    assert (resp["status"], resp["headers"]["Retry-After"]) == (503, "1")
