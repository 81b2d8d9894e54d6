"""Derived tokens die with their parent (issue 13): a JWT from
exchange_api_token, and websocket / agent tokens minted by a caller signed
in with an API token, carry the token's id and are refused at the next
verification on every connection once the token is revoked, deleted with
its user, or rotated out after its grace; tokens minted by a caller signed
in with a session JWT carry its session_id, so revoke_session ends them.
Bounded work: a huge argument is refused before any work, and a cancel or
statement_timeout acts at once."""
import json
import time

import psycopg
import pytest

from conftest import fresh_database, server

DB = "lifecycle_interop"


@pytest.fixture(scope="module")
def admin():
    with fresh_database(DB) as c:
        c.execute("do $$ begin create role authenticated nologin; exception when duplicate_object then null; end $$")
        c.execute("select identity.grant_access('authenticated', 'user')")
        yield c


@pytest.fixture()
def reader(admin):
    """A long-lived connection that verifies before and after each change."""
    with psycopg.connect(**server(DB), autocommit=True) as c:
        yield c


def service_user(admin, name):
    (org,) = admin.execute("select identity.create_organization(%s)", [name]).fetchone()
    uid, token = admin.execute("select user_id, token from identity.create_service_user(%s, %s)",
                               [f"{name}@lifecycle.test", org]).fetchone()
    (token_id,) = admin.execute("select (identity.verify_api_token(%s))->>'token_id'", [token]).fetchone()
    return str(uid), token, token_id


def refusal(c, jwt, audience=None):
    (valid, reason) = c.execute("select valid, reason from identity.try_verify_jwt(%s, %s)", [jwt, audience]).fetchone()
    return None if valid else reason


def minted_by(c, token, sql):
    """`sql` run as the caller signed in with `token` (authenticate, in one transaction)."""
    with c.transaction():
        c.execute("set local role authenticated")
        assert c.execute("select identity.authenticate(%s)", [token]).fetchone()[0] is not None
        (out,) = c.execute(sql).fetchone()
    return out


def test_exchanged_jwt_dies_with_its_api_token(admin, reader):
    uid, token, token_id = service_user(admin, "exch")
    (jwt,) = admin.execute("select identity.exchange_api_token(%s)", [token]).fetchone()
    (claims,) = admin.execute("select identity.decode_jwt(%s)->'payload'", [jwt]).fetchone()
    assert claims["token_id"] == token_id
    for _ in range(3):  # seen before: the remembered signature path too
        assert refusal(reader, jwt) is None
    # Audited, with the token and the user.
    (n,) = admin.execute("select count(*) from identity.audit_log where action = 'api_token.exchanged' "
                         "and target_id = %s and actor_id = %s", [token_id, uid]).fetchone()
    assert n == 1
    admin.execute("select identity.revoke_api_token(%s)", [token_id])
    assert "derived from is revoked" in refusal(reader, jwt)
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification, match="API token is no longer valid"):
        reader.execute("select identity.verify_jwt(%s)", [jwt])


def test_rotation_ends_derived_tokens_after_the_grace(admin, reader):
    uid, token, token_id = service_user(admin, "rot")
    (jwt,) = admin.execute("select identity.exchange_api_token(%s)", [token]).fetchone()
    admin.execute("select identity.rotate_api_token(%s, '1 second')", [token_id])
    assert refusal(reader, jwt) is None, "within the grace"
    time.sleep(1.5)
    assert "derived from" in refusal(reader, jwt)
    # Rotated without grace: at once.
    (new_token,) = admin.execute("select token from identity.create_api_token(%s, 'second')", [uid]).fetchone()
    (new_id,) = admin.execute("select (identity.verify_api_token(%s))->>'token_id'", [new_token]).fetchone()
    (jwt2,) = admin.execute("select identity.exchange_api_token(%s)", [new_token]).fetchone()
    assert refusal(reader, jwt2) is None
    admin.execute("select identity.rotate_api_token(%s)", [new_id])
    assert "derived from" in refusal(reader, jwt2)


def test_deleted_with_its_user(admin, reader):
    uid, token, _ = service_user(admin, "del")
    (jwt,) = admin.execute("select identity.exchange_api_token(%s)", [token]).fetchone()
    assert refusal(reader, jwt) is None
    admin.execute("select identity.delete_user(%s)", [uid])
    assert refusal(reader, jwt) is not None


def test_websocket_and_agent_tokens_inherit_token_scopes_and_die_with_it(admin, reader):
    uid, _, _ = service_user(admin, "ws")
    (token,) = admin.execute("select token from identity.create_api_token(%s, 'scoped', scopes => %s)",
                             [uid, ["credentials:read", "users:read"]]).fetchone()
    (token_id,) = admin.execute("select (identity.verify_api_token(%s))->>'token_id'", [token]).fetchone()
    ws = minted_by(admin, token, "select identity.create_websocket_token()")
    agent = minted_by(admin, token, "select identity.create_agent_token()")
    profile = minted_by(admin, token, "select identity.current_user()")
    for t, aud in [(ws, "websocket"), (agent, "agent"), (profile["tokens"]["websocket"], "websocket"),
                   (profile["tokens"]["agent"], "agent")]:
        (c,) = admin.execute("select identity.decode_jwt(%s)->'payload'", [t]).fetchone()
        assert c["token_id"] == token_id and c["scopes"] == ["credentials:read", "users:read"], c
        assert refusal(reader, t, aud) is None
    admin.execute("select identity.revoke_api_token(%s)", [token_id])
    for t, aud in [(ws, "websocket"), (agent, "agent")]:
        assert "derived from" in refusal(reader, t, aud)


def test_tokens_minted_in_a_session_end_with_it(admin, reader):
    uid, _, _ = service_user(admin, "sess")
    (jwt,) = admin.execute("select identity.issue_access_token(%s)", [uid]).fetchone()
    (sid,) = admin.execute("select identity.decode_jwt(%s)->'payload'->>'session_id'", [jwt]).fetchone()
    ws = minted_by(admin, jwt, "select identity.create_websocket_token()")
    agent = minted_by(admin, jwt, "select identity.create_agent_token()")
    for t in [ws, agent]:
        (c,) = admin.execute("select identity.decode_jwt(%s)->'payload'", [t]).fetchone()
        assert c["session_id"] == sid
    assert refusal(reader, ws, "websocket") is None
    admin.execute("select identity.revoke_session(%s)", [sid])
    assert refusal(reader, ws, "websocket") == "session revoked"
    assert refusal(reader, agent, "agent") == "session revoked"


def test_a_websocket_token_acts_as_no_login(admin):
    """In request.jwt.claims (PostgREST without jwt-aud), a websocket token
    made from a scoped API token can read within its scopes and mint,
    change or reveal nothing, not even an unscoped 90-day API token."""
    uid, _, _ = service_user(admin, "nologin")
    (token,) = admin.execute("select token from identity.create_api_token(%s, 'scoped', scopes => %s)",
                             [uid, ["tokens:write", "users:read"]]).fetchone()
    ws = minted_by(admin, token, "select identity.create_websocket_token()")
    (claims,) = admin.execute("select identity.verify_jwt(%s, 'websocket')", [ws]).fetchone()
    admin.autocommit = False
    try:
        admin.execute("set local role authenticated")
        admin.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
        assert admin.execute("select identity.user_by_id(%s)->>'id'", [uid]).fetchone()[0] == uid
        for sql in ["select identity.create_api_token(%(u)s, 'wide')", "select identity.create_websocket_token()",
                    "select identity.create_agent_token()", "select identity.update_user(%(u)s, '{\"first_name\": \"x\"}')",
                    "select identity.create_credential('openrouter', 'x', 'sk-or-v1-nologin-0001')"]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with admin.transaction():
                    admin.execute(sql, {"u": uid})
        (profile,) = admin.execute("select identity.current_user()").fetchone()
        assert profile["tokens"] == {"websocket": None, "agent": None}
    finally:
        admin.rollback()
        admin.autocommit = True


def test_an_audience_is_always_checked(admin):
    """identity.jwt_audience = '' does not turn the check off: websocket and
    agent tokens still fail verify_jwt as sign-ins."""
    uid, _, _ = service_user(admin, "aud")
    (ws,) = admin.execute("select identity.create_websocket_token(%s)", [uid]).fetchone()
    with psycopg.connect(**server(DB), autocommit=True) as c:
        c.execute("set identity.jwt_audience = ''")
        assert "aud" in refusal(c, ws)
        (jwt,) = c.execute("select identity.issue_access_token(%s)", [uid]).fetchone()
        assert refusal(c, jwt) is None


def test_huge_and_deep_arguments_are_refused_before_work(admin):
    """A million scopes: 22023 at once, well inside a 100 ms timeout; deep
    JSON: 22023, never XX000."""
    uid, _, _ = service_user(admin, "bounded")
    with psycopg.connect(**server(DB), autocommit=True) as c:
        c.execute("set statement_timeout = '100ms'")
        scopes = [f"s{i}" for i in range(1_000_000)]
        t0 = time.monotonic()
        with pytest.raises(psycopg.Error) as e:
            c.execute("select identity.create_agent_token(%s, '1 hour', %s)", [uid, scopes])
        assert e.value.sqlstate in ("22023", "57014"), e.value
        assert time.monotonic() - t0 < 5
        c.execute("reset statement_timeout")
        deep = "[" * 200 + "]" * 200
        for sql in ["select identity.update_user(%s, %s::jsonb)",
                    "select identity.update_credential(%s, %s::jsonb)"]:
            with pytest.raises(psycopg.Error) as e:
                c.execute(sql, [uid, '{"metadata": ' + deep + "}"])
            assert e.value.sqlstate == "22023", (sql, e.value.sqlstate, str(e.value))
        big = json.dumps({"metadata": {"k": "x" * 20000}})
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid value"):
            c.execute("select identity.update_user(%s, %s::jsonb)", [uid, big])


def act_as(c, uid, sql, args=()):
    """(sqlstate or 'ok', value) of `sql` as user `uid`, claims as the hook
    builds them from the user's row now (issued after every change so far:
    a change of role or organization refuses tokens issued up to the end of
    its second); rolled back."""
    (claims,) = c.execute(
        "select jsonb_build_object('sub', id, 'role', 'authenticated', 'user_role', user_role, "
        "'organization_id', organization_id, 'is_service_user', is_service_user, "
        "'iat', floor(extract(epoch from clock_timestamp()))::bigint + 1) from identity.users where id = %s",
        [uid]).fetchone()
    c.autocommit = False
    try:
        c.execute("set local role authenticated")
        c.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
        try:
            (v,) = c.execute(sql, args).fetchone()
            return "ok", v
        except psycopg.Error as e:
            return e.sqlstate, None
    finally:
        c.rollback()
        c.autocommit = True


def test_a_users_data_follow_them_to_another_organization(admin):
    orgs, admins = {}, {}
    for k in ["a", "b"]:
        (orgs[k],) = admin.execute("select identity.create_organization(%s)", [f"Move {k}"]).fetchone()
        (p,) = admin.execute("select identity.provision_user(%s, %s, organization_id => %s)",
                             [f"idp|move-admin-{k}", f"move-admin-{k}@lifecycle.test", orgs[k]]).fetchone()
        admins[k] = p["user"]["id"]
        admin.execute("select identity.update_user(%s, '{\"user_role\": \"admin\"}')", [admins[k]])
    (p,) = admin.execute("select identity.provision_user('idp|mover', 'mover@lifecycle.test', organization_id => %s)",
                         [orgs["a"]]).fetchone()
    uid = p["user"]["id"]
    secret = "sk-or-v1-mover-secret-0001"
    with admin.transaction():
        admin.execute("set local role authenticated")
        admin.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps({"sub": uid, "role": "authenticated"})])
        (cred,) = admin.execute("select identity.create_credential('openrouter', 'mine', %s)->>'id'", [secret]).fetchone()
        admin.execute("select identity.record_credential_usage(%s, 2)", [cred])
    checks = [
        ("select identity.get_credential(%s)->>'id'", [cred]),
        ("select identity.credential_usage(%s)->>'calls'", [cred]),
        ("select count(*)::text from identity.list_api_tokens(%s)", [uid]),
        ("select identity.subscription_status(%s)->>'status'", [uid]),
        ("select count(*)::text from identity.credentials where user_id = %s", [uid]),
        ("select count(*)::text from identity.credential_usage where user_id = %s", [uid]),
    ]

    def seen_by(who):
        return [act_as(admin, admins[who], sql, args) for sql, args in checks]

    assert [s for s, _ in seen_by("a")] == ["ok"] * len(checks)
    assert seen_by("a")[4] == ("ok", "1") and seen_by("b")[4] == ("ok", "0")
    admin.execute("select identity.update_user(%s, %s::jsonb)", [uid, json.dumps({"organization_id": str(orgs["b"])})])
    after_a, after_b = seen_by("a"), seen_by("b")
    assert [s for s, _ in after_a[:4]] == ["P0002"] * 4, after_a
    assert after_a[4:] == [("ok", "0"), ("ok", "0")], "the old organization's admins see none of it"
    assert [s for s, _ in after_b] == ["ok"] * len(checks)
    assert after_b[4:] == [("ok", "1"), ("ok", "1")], "the new organization's admins do"
    (org,) = admin.execute("select organization_id::text from identity.credentials where id = %s", [cred]).fetchone()
    assert org == str(orgs["b"])
    # The secret, re-sealed for the new organization, still decrypts.
    assert act_as(admin, uid, "select identity.reveal_credential_secret(%s)", [cred]) == ("ok", secret)
