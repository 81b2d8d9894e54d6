"""Every check of a token reads the latest committed state, whatever the
caller's isolation level: a REPEATABLE READ or SERIALIZABLE transaction
that began before a revocation committed refuses the revoked token at its
next call (a check under the transaction's snapshot would accept it until
the transaction ends)."""
import psycopg
import pytest

from conftest import fresh_database, server

DB = "isolation_checks"
UID = "00000000-0000-0000-0000-0000000e5001"


@pytest.fixture(scope="module")
def admin():
    with fresh_database(DB) as c:
        c.execute("insert into identity.users (id, email) values (%s, 'iso@example.com')", [UID])
        yield c


def fresh_token(admin, name):
    (token,) = admin.execute("select token from identity.create_api_token(%s, %s)", [UID, name]).fetchone()
    (token_id,) = admin.execute("select (identity.verify_api_token(%s))->>'token_id'", [token]).fetchone()
    return token, token_id


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_a_revocation_committed_during_a_long_transaction_is_seen(admin, isolation):
    token, token_id = fresh_token(admin, f"iso-{isolation}")
    (derived,) = admin.execute("select identity.exchange_api_token(%s)", [token]).fetchone()
    (jwt,) = admin.execute("select identity.sign_jwt(jsonb_build_object('sub', %s::text, 'jti', %s::text))",
                           [UID, f"iso-jti-{isolation}"]).fetchone()
    (sid_jwt,) = admin.execute("select identity.sign_jwt(jsonb_build_object('sub', %s::text, 'session_id', "
                               "'00000000-0000-0000-0000-0000000e5e55'))", [UID]).fetchone()
    with psycopg.connect(**server(DB)) as t:
        t.execute(f"begin isolation level {isolation}")
        # The transaction's snapshot is taken, and every token is good.
        assert t.execute("select identity.verify_api_token(%s)->>'user_id'", [token]).fetchone()[0] == UID
        assert t.execute("select (identity.try_verify_jwt(%s)).valid", [derived]).fetchone()[0]
        assert t.execute("select (identity.try_verify_jwt(%s)).valid", [jwt]).fetchone()[0]
        assert t.execute("select (identity.try_verify_jwt(%s)).valid", [sid_jwt]).fetchone()[0]
        admin.execute("select identity.revoke_api_token(%s)", [token_id])
        admin.execute("select identity.revoke_jwt(%s, now() + interval '1 hour')", [f"iso-jti-{isolation}"])
        admin.execute("select identity.revoke_session('00000000-0000-0000-0000-0000000e5e55')")
        # The same transaction, after the revocations committed elsewhere.
        assert t.execute("select (identity.try_verify_jwt(%s)).reason", [derived]).fetchone()[0] \
            == "the API token it was derived from is revoked, expired or gone"
        assert t.execute("select (identity.try_verify_jwt(%s)).reason", [jwt]).fetchone()[0] == "jti revoked"
        assert t.execute("select (identity.try_verify_jwt(%s)).reason", [sid_jwt]).fetchone()[0] == "session revoked"
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            t.execute("select identity.verify_api_token(%s)", [token])
        t.rollback()
    admin.execute("delete from identity.revoked_sessions")


def test_a_suspension_committed_during_a_long_transaction_is_seen(admin):
    (jwt,) = admin.execute("select identity.issue_access_token(%s)", [UID]).fetchone()
    token, _ = fresh_token(admin, "iso-suspend")
    with psycopg.connect(**server(DB)) as t:
        t.execute("begin isolation level repeatable read")
        assert t.execute("select (identity.try_verify_jwt(%s)).valid", [jwt]).fetchone()[0]
        assert t.execute("select identity.verify_api_token(%s)->>'user_id'", [token]).fetchone()[0] == UID
        admin.execute("select identity.suspend_user(%s)", [UID])
        try:
            assert t.execute("select (identity.try_verify_jwt(%s)).reason", [jwt]).fetchone()[0] == "user suspended"
            with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
                t.execute("select identity.verify_api_token(%s)", [token])
            t.rollback()
        finally:
            admin.execute("select identity.reactivate_user(%s)", [UID])
