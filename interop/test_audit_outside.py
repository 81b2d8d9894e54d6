"""Reads of secrets and refused attempts are recorded even when the caller's
transaction rolls back or fails, or its backend is terminated after the call
returned: the record goes through shared memory to a background writer that
commits on its own (src/pg/audit_queue.rs)."""
import json
import time

import psycopg
import pytest

from conftest import fresh_database, server

OWNER = "00000000-0000-0000-0000-0000000e3001"
OTHER = "00000000-0000-0000-0000-0000000e3002"
DB = "audit_outside"


def wait_for(c, sql, args=(), seconds=10.0):
    end = time.time() + seconds
    while time.time() < end:
        if c.execute(sql, args).fetchone()[0]:
            return True
        time.sleep(0.02)
    return False


def as_user(c, uid):
    c.execute("select set_config('request.jwt.claims', %s, false)", [json.dumps({"sub": uid, "role": "authenticated"})])


@pytest.fixture(scope="module")
def db():
    with fresh_database(DB) as c:
        c.execute("insert into identity.users (id, email) values (%s, 'owner@outside.test'), (%s, 'other@outside.test')",
                  [OWNER, OTHER])
        as_user(c, OWNER)
        cred = c.execute("select identity.create_credential('openrouter', 'main', 'sk-or-v1-outside-0001')->>'id'").fetchone()[0]
        c.execute("select set_config('request.jwt.claims', '', false)")
        yield c, cred


def count(c, action, target):
    return c.execute("select count(*) from identity.audit_log where action = %s and target_id = %s", [action, target]).fetchone()[0]


def test_a_reveal_in_a_rolled_back_transaction_is_recorded(db):
    c, cred = db
    before = count(c, "credential.revealed", cred)
    with psycopg.connect(**server(DB)) as t:  # not autocommit: one transaction
        as_user(t, OWNER)
        assert t.execute("select identity.reveal_credential_secret(%s)", [cred]).fetchone()[0] == "sk-or-v1-outside-0001"
        t.rollback()
    assert wait_for(c, "select count(*) = %s from identity.audit_log where action = 'credential.revealed' and target_id = %s",
                    [before + 1, cred])
    row = c.execute("select actor_id, actor_kind, actor_role from identity.audit_log where action = 'credential.revealed' "
                    "and target_id = %s order by id desc limit 1", [cred]).fetchone()
    assert (str(row[0]), row[1], row[2]) == (OWNER, "user", "postgres")


def test_a_refused_reveal_is_recorded_although_the_transaction_fails(db):
    c, cred = db
    before = count(c, "credential.refused", cred)
    with psycopg.connect(**server(DB)) as t:
        as_user(t, OTHER)
        with pytest.raises(psycopg.errors.NoDataFound):
            t.execute("select identity.reveal_credential_secret(%s)", [cred])
        t.rollback()
    assert wait_for(c, "select count(*) = %s from identity.audit_log where action = 'credential.refused' and target_id = %s",
                    [before + 1, cred])
    d = c.execute("select details from identity.audit_log where action = 'credential.refused' and target_id = %s "
                  "order by id desc limit 1", [cred]).fetchone()[0]
    assert d == {"operation": "reveal", "sqlstate": "P0002", "message": "credential does not exist"}
    # The refusal names no organization (the caller may not know it).
    assert c.execute("select organization_id from identity.audit_log where action = 'credential.refused' "
                     "order by id desc limit 1").fetchone()[0] is None


def test_a_terminated_backend_loses_nothing_it_recorded(db):
    c, cred = db
    before = count(c, "credential.revealed", cred)
    t = psycopg.connect(**server(DB))
    as_user(t, OWNER)
    pid = t.execute("select pg_backend_pid()").fetchone()[0]
    t.execute("select identity.reveal_credential_secret(%s)", [cred])  # open transaction, never committed
    c.execute("select pg_terminate_backend(%s, 5000)", [pid])
    with pytest.raises(psycopg.OperationalError):
        t.execute("select 1")
    t.close()
    assert wait_for(c, "select count(*) = %s from identity.audit_log where action = 'credential.revealed' and target_id = %s",
                    [before + 1, cred])


def test_refused_attempts_on_tokens_and_keys_are_recorded(db):
    c, _ = db
    with psycopg.connect(**server(DB)) as t:
        as_user(t, OTHER)
        with pytest.raises(psycopg.errors.NoDataFound):
            t.execute("select identity.create_api_token(%s, 'not mine')", [OWNER])
        t.rollback()
    assert wait_for(c, "select exists (select from identity.audit_log where action = 'api_token.refused' "
                       "and target_id = %s and details->>'operation' = 'manage')", [OWNER])
    with pytest.raises(psycopg.errors.NoDataFound):
        c.execute("select identity.revoke_signing_key('no-such-kid')")
    assert wait_for(c, "select exists (select from identity.audit_log where action = 'signing_key.refused' "
                       "and target_id = 'no-such-kid' and details->>'operation' = 'revoke')")
    # The chains stay valid with rows from the writer among the others.
    assert wait_for(c, "select (identity.verify_audit_log()->>'valid')::boolean")
