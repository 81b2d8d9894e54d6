"""Supabase Auth's own users (API.md 13), driven as Supabase runs them: a
database with Supabase's roles and its auth.users (pg_test/supabase_fixture.sql),
Supabase Auth's writes made over its own login (supabase_auth_admin, no
right in schema identity), the hook called exactly as Supabase Auth calls
it (its login role, `set local statement_timeout to '2000'`, `select
"identity"."custom_access_token_hook"($1)` with the event as a text
parameter), and every hook answer validated against the hook's schema.

Needs PGHOST/PGPORT of a cluster with the extension installed (test.sh starts one).
"""
import contextlib
import json
import pathlib
import threading
import time
import uuid

import jsonschema
import psycopg
import pytest
from conftest import ERR_SCHEMA, OK_SCHEMA, fresh_database, run_concurrently, server

DB = "supabase_auth"
FIXTURE = (pathlib.Path(__file__).resolve().parent.parent / "pg_test" / "supabase_fixture.sql").read_text()
ORG = "00000000-0000-0000-0000-00000000a0a1"


@pytest.fixture(scope="module")
def admin():
    with fresh_database(DB) as c:
        c.execute(FIXTURE)
        c.execute("select identity.grant_access('supabase_auth_admin', 'hook')")
        c.execute("select identity.grant_access('service_role', 'admin')")
        c.execute("insert into identity.organizations (id, name) values (%s, 'Acme')", [ORG])
        c.execute("select identity.link_supabase_auth()")
        yield c
        c.execute("select identity.unlink_supabase_auth()")


def auth():
    """A connection as Supabase Auth makes it: its own login role."""
    return psycopg.connect(**dict(server(DB), user="supabase_auth_admin"))


def sign_up(conn, email, app=None, user_meta=None, uid=None):
    """GoTrue's sign-up, or auth.admin.createUser: INSERT, then app_metadata
    by an UPDATE, in one transaction."""
    uid = uid or str(uuid.uuid4())
    with conn.transaction():
        conn.execute(
            "insert into auth.users (instance_id, id, aud, role, email, email_confirmed_at, encrypted_password,"
            " raw_app_meta_data, raw_user_meta_data, created_at, updated_at) values"
            " ('00000000-0000-0000-0000-000000000000', %s, 'authenticated', 'authenticated', %s, now(), 'x', %s, %s,"
            " now(), now())",
            [uid, email, json.dumps({"provider": "email", "providers": ["email"]}), json.dumps(user_meta or {})])
        if app:
            conn.execute("update auth.users set raw_app_meta_data = raw_app_meta_data || %s::jsonb where id = %s",
                         [json.dumps(app), uid])
    return uid


def hook(uid, email):
    """As Supabase Auth calls it."""
    now = int(time.time())
    ev = {"user_id": uid, "authentication_method": "password",
          "claims": {"iss": "https://project.supabase.co/auth/v1", "aud": "authenticated", "exp": now + 3600,
                     "iat": now, "sub": uid, "email": email, "phone": "", "role": "authenticated", "aal": "aal1",
                     "amr": [{"method": "password", "timestamp": now}], "session_id": str(uuid.uuid4()),
                     "is_anonymous": False, "app_metadata": {"provider": "email", "providers": ["email"]},
                     "user_metadata": {}}}
    with auth() as c:
        with c.transaction():
            c.execute("set local statement_timeout to '2000'")
            (answer,) = c.execute('select "identity"."custom_access_token_hook"(%s)', [json.dumps(ev)]).fetchone()
    return answer


def user(admin, uid):
    return admin.execute(
        "select jsonb_build_object('email', email, 'phone', phone, 'status', status, 'is_service_user',"
        " is_service_user, 'user_role', user_role, 'organization_id', organization_id)"
        " from identity.users where id = %s", [uid]).fetchone()


@contextlib.contextmanager
def held_for_3s(sql, args):
    """Another transaction holds what `sql` locks, for 3 s at most (a
    regression that waits for it shows as a 3 s statement, not a hang)."""
    holder = psycopg.connect(**server(DB))
    holder.execute(sql, args)
    release = threading.Timer(3.0, holder.rollback)
    release.start()
    try:
        yield
    finally:
        release.join()
        holder.close()


def timed_as_auth(*statements):
    """Supabase Auth's statements in one transaction: (seconds, notices)."""
    notices = []
    with auth() as c:
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
        started = time.monotonic()
        for sql, args in statements:
            c.execute(sql, args)
        c.commit()
        return time.monotonic() - started, notices


def test_supabase_auth_admin_has_no_right_in_schema_identity(admin):
    (usage,) = admin.execute("select has_schema_privilege('supabase_auth_admin', 'identity', 'usage')").fetchone()
    (funcs,) = admin.execute(
        "select count(*) from pg_proc where pronamespace = 'identity'::regnamespace"
        " and has_function_privilege('supabase_auth_admin', oid, 'execute')").fetchone()
    assert (usage, funcs) == (True, 1)  # the hook level: custom_access_token_hook only


def test_sign_up_then_the_hook(admin):
    with auth() as c:
        uid = sign_up(c, "ada@example.com")
    (row,) = user(admin, uid)
    assert row == {"email": "ada@example.com", "phone": None, "status": "active", "is_service_user": False,
                   "user_role": "user", "organization_id": None}
    answer = hook(uid, "ada@example.com")
    jsonschema.validate(answer, OK_SCHEMA)
    assert answer["claims"]["sub"] == uid and answer["claims"]["is_service_user"] is False


def test_admin_created_service_user_takes_app_metadata_at_commit(admin):
    with auth() as c:
        uid = sign_up(c, "svc@example.com", app={"is_service_user": True, "organization_id": ORG,
                                                 "user_role": "admin", "application_name": "billing"})
    (row,) = user(admin, uid)
    assert (row["is_service_user"], row["organization_id"], row["user_role"]) == (True, ORG, "admin")
    answer = hook(uid, "svc@example.com")
    jsonschema.validate(answer, OK_SCHEMA)
    assert answer["claims"]["is_service_user"] is True
    assert answer["claims"]["organization_id"] == ORG


def test_user_metadata_never_sets_a_flag(admin):
    with auth() as c:
        uid = sign_up(c, "mallory@example.com",
                      user_meta={"is_service_user": True, "organization_id": ORG, "user_role": "admin"})
        # ... nor does editing it later (supabase.auth.updateUser({data})).
        with c.transaction():
            c.execute("update auth.users set raw_user_meta_data = %s where id = %s",
                      [json.dumps({"is_service_user": True, "user_role": "system"}), uid])
    (row,) = user(admin, uid)
    assert (row["is_service_user"], row["user_role"], row["organization_id"]) == (False, "user", None)
    claims = hook(uid, "mallory@example.com")["claims"]
    assert (claims["is_service_user"], claims["user_role"], claims["organization_id"]) == (False, "user", None)


def test_a_ban_refuses_tokens_at_once_and_its_lift_restores(admin):
    with auth() as c:
        uid = sign_up(c, "banned@example.com")
    (token,) = admin.execute("select token from identity.create_api_token(%s, 'k')", [uid]).fetchone()
    with auth() as c:
        c.execute("update auth.users set banned_until = now() + interval '100 years' where id = %s", [uid])
        c.commit()
    assert user(admin, uid)[0]["status"] == "suspended"
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
        admin.execute("select identity.verify_api_token(%s)", [token])
    jsonschema.validate(hook(uid, "banned@example.com"), ERR_SCHEMA)
    with auth() as c:
        c.execute("update auth.users set banned_until = 'epoch' where id = %s", [uid])  # a ban in the past
        c.commit()
    assert user(admin, uid)[0]["status"] == "active"
    admin.execute("select identity.verify_api_token(%s)", [token])


def test_email_and_phone_follow_and_deletes_delete(admin):
    with auth() as c:
        soft = sign_up(c, "soft@example.com")
        hard = sign_up(c, "hard@example.com")
        c.execute("update auth.users set email = 'soft2@example.com', phone = '15550100' where id = %s", [soft])
        c.commit()
    assert user(admin, soft)[0]["email"] == "soft2@example.com" and user(admin, soft)[0]["phone"] == "15550100"
    with auth() as c:
        # GoTrue's soft delete: the email becomes a hash in the same UPDATE.
        c.execute("update auth.users set deleted_at = now(), email = md5(email) || '@deleted.local',"
                  " phone = null where id = %s", [soft])
        c.execute("delete from auth.users where id = %s", [hard])
        c.commit()
    assert user(admin, soft) is None and user(admin, hard) is None
    (tombstones,) = admin.execute("select count(*) from identity.deleted_users where id in (%s, %s)",
                                  [soft, hard]).fetchone()
    assert tombstones == 2


def test_eight_concurrent_sign_ups(admin):
    emails = [f"crowd{i}@example.com" for i in range(8)]

    def one(i):
        with auth() as c:
            return sign_up(c, emails[i], app={"organization_id": ORG} if i % 2 else None)

    ids, errors = run_concurrently(8, one)
    assert errors == []
    (n,) = admin.execute("select count(*) from identity.supabase_auth_users where user_id = any(%s::uuid[])",
                         [ids]).fetchone()
    assert n == 8
    for i, uid in enumerate(ids):
        answer = hook(uid, emails[i])
        jsonschema.validate(answer, OK_SCHEMA)
        assert answer["claims"]["organization_id"] == (ORG if i % 2 else None)


def test_never_waits_on_identitys_locks_nor_fails_the_statement(admin):
    with auth() as c:
        uid = sign_up(c, "busy@example.com")
    with held_for_3s("select 1 from identity.users where id = %s for update", [uid]):
        took, notices = timed_as_auth(
            ("update auth.users set banned_until = now() + interval '1 day' where id = %s", [uid]))
    assert took < 1.0, took
    assert any("is not linked or not followed" in n for n in notices), notices
    (audited,) = admin.execute(
        "select count(*) from identity.audit_log where action = 'supabase_auth.not_followed' and target_id = %s",
        [uid]).fetchone()
    assert audited == 1
    # The ban is pending, and the next follow of any auth user does it.
    assert user(admin, uid)[0]["status"] == "active"
    with auth() as c:
        sign_up(c, "busy-next@example.com")
    assert user(admin, uid)[0]["status"] == "suspended"


def test_a_deletion_that_finds_the_row_busy_refuses_tokens_at_once_and_completes_later(admin):
    with auth() as c:
        uid = sign_up(c, "busy-delete@example.com")
    (token,) = admin.execute("select token from identity.create_api_token(%s, 'k')", [uid]).fetchone()
    with held_for_3s("select 1 from identity.users where id = %s for update", [uid]):
        took, _ = timed_as_auth(("delete from auth.users where id = %s", [uid]))
    assert took < 1.0, took
    # Its API tokens were revoked at once: refused now.
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
        admin.execute("select identity.verify_api_token(%s)", [token])
    # link_supabase_auth follows links whose auth row is gone: the deletion completes.
    admin.execute("select identity.link_supabase_auth()")
    assert user(admin, uid) is None
    (links,) = admin.execute("select count(*) from identity.supabase_auth_users where user_id = %s", [uid]).fetchone()
    assert links == 0


def test_never_waits_for_an_identity_transaction_taking_the_same_email(admin):
    uid = str(uuid.uuid4())
    # An open identity transaction inserting the email: a plain insert of
    # the same email would wait for it (the unique index).
    with held_for_3s("insert into identity.users (email) values ('race@example.com')", []):
        took, notices = timed_as_auth(
            ("insert into auth.users (id, email, email_confirmed_at, created_at)"
             " values (%s, 'race@example.com', now(), now())", [uid]))
    assert took < 1.0, took
    assert any("is not linked or not followed" in n for n in notices), notices
    assert user(admin, uid) is None


def test_an_unconfirmed_email_is_no_user_until_confirmed(admin):
    uid = str(uuid.uuid4())
    with auth() as c:
        c.execute("insert into auth.users (id, email, created_at) values (%s, 'cfo@victim.example', now())", [uid])
        c.commit()
    assert user(admin, uid) is None
    # ... so it holds no email in identity.
    admin.execute("select identity.provision_user('user_cfo', 'cfo@victim.example')")
    (n,) = admin.execute("select count(*) from identity.users where lower(email) = 'cfo@victim.example'").fetchone()
    assert n == 1


def test_a_row_identity_cannot_take_is_left_unlinked(admin):
    admin.execute("insert into identity.users (email) values ('only-identity@example.com')")
    with auth() as c:
        uid = sign_up(c, "only-identity@example.com")  # the statement succeeds
    assert user(admin, uid) is None
    answer = hook(uid, "only-identity@example.com")  # unknown to identity: passed through
    jsonschema.validate(answer, OK_SCHEMA)
    assert answer["claims"]["is_service_user"] is False
