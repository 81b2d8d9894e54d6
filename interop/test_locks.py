"""A user's own open transaction never delays an admin's action on that
user (issue 13): two connections, the user's transaction left open after a
credential change, an admin suspending, updating and deleting the user
under a 2 s statement_timeout (the old row lock made each wait forever)."""
import json
import time

import psycopg
import pytest

from conftest import fresh_database, server

DB = "locks_interop"


@pytest.fixture(scope="module")
def admin():
    with fresh_database(DB) as c:
        c.execute("do $$ begin create role authenticated nologin; exception when duplicate_object then null; end $$")
        c.execute("select identity.grant_access('authenticated', 'user')")
        c.execute("set statement_timeout = '2s'")
        yield c


def new_user(admin, name):
    (p,) = admin.execute("select identity.provision_user(%s, %s)", [f"idp|{name}", f"{name}@locks.test"]).fetchone()
    return p["user"]["id"], p["api_token"]


def as_user_open(uid):
    """A connection acting as `uid` inside an open transaction."""
    c = psycopg.connect(**server(DB))
    c.execute("set local role authenticated")
    c.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps({"sub": uid, "role": "authenticated"})])
    return c


def timed(admin, sql, args):
    t0 = time.monotonic()
    admin.execute(sql, args)
    return time.monotonic() - t0


@pytest.mark.parametrize("change", ["update_credential", "create_credential", "record_usage", "api_token_used"])
def test_admin_actions_do_not_wait_for_the_users_transaction(admin, change):
    uid, token = new_user(admin, f"locked-{change}")
    (cred,) = admin.execute("select identity.create_system_credential(%s, 'openrouter', 'sk-or-v1-locks-0001', 100)->>'id'",
                            [uid]).fetchone()
    own = as_user_open(uid)
    (own_cred,) = own.execute("select identity.create_credential('anthropic', 'own', 'sk-locks-own-0003')->>'id'").fetchone()
    own.commit()
    own.close()
    user = as_user_open(uid)
    try:
        if change == "update_credential":
            user.execute("select identity.update_credential(%s, '{\"credit_limit\": 50}')", [own_cred])
        elif change == "create_credential":
            user.execute("select identity.create_credential('openai', 'mine', 'sk-locks-own-0002', true)")
        elif change == "record_usage":
            user.execute("select identity.record_credential_usage(%s, 1.5)", [cred])
        else:
            user.execute("select identity.verify_api_token(%s)", [token])  # writes last_used_at
        # The admin acts while that transaction is open: none of these waits.
        assert timed(admin, "select identity.update_user(%s, '{\"description\": \"audited\"}')", [uid]) < 1
        assert timed(admin, "select identity.suspend_user(%s, 'locks')", [uid]) < 1
        assert timed(admin, "select identity.reactivate_user(%s)", [uid]) < 1
        assert timed(admin, "select identity.delete_user(%s)", [uid]) < 1
        # Deleted for every check at once, whatever the open transaction does.
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            admin.execute("select identity.verify_api_token(%s)", [token])
        # A deferred deletion cannot be undone: the user is not there for
        # update_user, reactivate_user or suspend_user.
        for sql in ("select identity.update_user(%s, '{\"status\": \"active\"}')",
                    "select identity.reactivate_user(%s)", "select identity.suspend_user(%s)"):
            with pytest.raises(psycopg.errors.NoDataFound):
                admin.execute(sql, [uid])
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            admin.execute("select identity.verify_api_token(%s)", [token])
        user.commit()
    finally:
        user.close()
    # The next call removes what the open transaction held.
    admin.execute("select identity.delete_user(%s)", [uid])
    (n,) = admin.execute("select count(*) from identity.users where id = %s", [uid]).fetchone()
    assert n == 0
    (n,) = admin.execute("select count(*) from identity.credentials where user_id = %s", [uid]).fetchone()
    assert n == 0


def test_a_user_changing_their_own_row_gets_an_answer_not_a_wait(admin):
    """If the user's open transaction changes their own row (a profile
    update), the admin's change cannot take the row: 55P03 at once."""
    uid, token = new_user(admin, "self-edit")
    user = as_user_open(uid)
    try:
        user.execute("select identity.update_user(%s, '{\"first_name\": \"Me\"}')", [uid])
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable, match="another transaction"):
            admin.execute("select identity.suspend_user(%s)", [uid])
        assert time.monotonic() - t0 < 1
        user.rollback()
    finally:
        user.close()
    admin.execute("select identity.suspend_user(%s)", [uid])
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
        admin.execute("select identity.verify_api_token(%s)", [token])


def test_a_role_without_privileges_blocks_no_lock_of_the_extension(admin):
    """Every advisory-lock key the extension used to take (the audit chain's
    (1231232, 1), a subject's first sign-in (1231233, ...), a user's
    credentials (0x1dc7ed, ...)) held by a role with no privilege at all,
    and that role trying the lock rows themselves: verify_audit_log (which
    chains), a default credential and an audited refusal all go through
    under the 2 s statement_timeout."""
    with psycopg.connect(**server("postgres"), autocommit=True) as su:
        su.execute("drop role if exists locks_nobody")
        su.execute("create role locks_nobody login")
    uid, _ = new_user(admin, "lock-blocker")
    (cred,) = admin.execute("select identity.create_system_credential(%s, 'openrouter', 'sk-or-v1-locks-0009', 100)->>'id'",
                            [uid]).fetchone()
    b = uuid_first4(uid)
    nobody = psycopg.connect(**{**server(DB), "user": "locks_nobody"})
    try:
        nobody.execute("select pg_advisory_lock(1231232, 1)")
        nobody.execute("select pg_advisory_lock(%s, %s)", [0x1dc7ed, b])
        for k in range(-2048, 2048):
            nobody.execute("select pg_try_advisory_lock(1231233, %s)", [k])
        for sql in ("select from identity.mutexes for update", "select count(*) from identity.mutexes",
                    "lock table identity.mutexes in access exclusive mode"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                nobody.execute(sql)
            nobody.rollback()
        nobody.execute("select pg_advisory_lock(1231232, 1)")  # still held, in a new transaction
        assert admin.execute("select identity.verify_audit_log()->>'valid'").fetchone()[0] == "true"
        admin.execute("select identity.set_default_credential(%s)", [cred])
        with pytest.raises(psycopg.errors.NoDataFound):
            admin.execute("select identity.retire_signing_key('locks-nope')")
    finally:
        nobody.close()
        with psycopg.connect(**server("postgres"), autocommit=True) as su:
            su.execute("drop role if exists locks_nobody")


def uuid_first4(uid):
    """The user's key in the old advisory lock: the first 4 bytes of its id."""
    return int.from_bytes(bytes.fromhex(uid.replace("-", "")[:8]), "big", signed=True)
