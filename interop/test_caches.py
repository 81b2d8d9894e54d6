"""The per-backend copies verify_jwt and sign_jwt read (src/cache.rs) and the
remembered HS256 signatures (api/jwt.rs) never outlive a change: a
long-lived connection that has verified a token sees, on its very next call,
a revocation, a suspension, a deletion, a key change or a secret-less state
committed by another connection; it never sees one that was rolled back;
its own uncommitted change counts inside its transaction only; and in
parallel mode (no cache fill) the answers are the same."""
import time
import uuid

import psycopg
import pytest

from conftest import fresh_database, server

DB = "caches_interop"


@pytest.fixture(scope="module")
def admin():
    with fresh_database(DB) as c:
        yield c


@pytest.fixture()
def reader(admin):
    """The long-lived connection whose caches are under test."""
    with psycopg.connect(**server(DB), autocommit=True) as c:
        yield c


def user(admin, name):
    (p,) = admin.execute("select identity.provision_user(%s, %s)", [f"idp|{name}|{uuid.uuid4()}", f"{uuid.uuid4()}@example.com"]).fetchone()
    return p["user"]["id"]


def token(admin, uid):
    (t,) = admin.execute("select identity.issue_access_token(%s)", [uid]).fetchone()
    return t


def verify(c, t):
    """None when valid, else the refusal's DETAIL."""
    (valid, reason) = c.execute("select valid, reason from identity.try_verify_jwt(%s)", [t]).fetchone()
    return None if valid else reason


def claims(t):
    with psycopg.connect(**server(DB), autocommit=True) as c:
        (p,) = c.execute("select identity.decode_jwt(%s)->'payload'", [t]).fetchone()
    return p


def test_revocation_by_another_connection_is_seen_at_once(admin, reader):
    uid = user(admin, "rev")
    t1, t2 = token(admin, uid), token(admin, uid)
    for _ in range(3):  # the second and third calls come from the copies
        assert verify(reader, t1) is None and verify(reader, t2) is None
    c1 = claims(t1)
    admin.execute("select identity.revoke_jwt(%s, now() + interval '1 hour')", [c1["jti"]])
    assert verify(reader, t1) == "jti revoked"
    assert verify(reader, t2) is None
    admin.execute("select identity.revoke_session(%s)", [claims(t2)["session_id"]])
    assert verify(reader, t2) == "session revoked"


def test_user_state_changes_are_seen_at_once(admin, reader):
    uid = user(admin, "state")
    t = token(admin, uid)
    assert verify(reader, t) is None and verify(reader, t) is None
    admin.execute("select identity.suspend_user(%s)", [uid])
    assert verify(reader, t) == "user suspended"
    admin.execute("select identity.reactivate_user(%s)", [uid])
    # Reactivation does not revive tokens issued before the suspension.
    assert verify(reader, t) == "issued before the user's tokens_valid_after"
    # iat has whole seconds and tokens_valid_after is rounded up (fails
    # closed): a token for the reactivated user is valid from the next second.
    time.sleep(1.1)
    t2 = token(admin, uid)
    assert verify(reader, t2) is None
    # A direct UPDATE (an operator's fix, not our functions) is seen too.
    admin.execute("update identity.users set status = 'suspended' where id = %s", [uid])
    assert verify(reader, t2) == "user suspended"
    admin.execute("update identity.users set status = 'active' where id = %s", [uid])
    assert verify(reader, t2) is None
    admin.execute("select identity.delete_user(%s)", [uid])
    assert verify(reader, t2) == "user deleted"


def test_a_user_created_refusable_is_refused_at_once(admin, reader):
    """The copy of the refusable users is reloaded when a user is inserted:
    one created suspended (by SQL, as an operator might) is refused."""
    uid = user(admin, "seed")
    assert verify(reader, token(admin, uid)) is None  # the copy is loaded
    new = str(uuid.uuid4())
    (t,) = admin.execute("select identity.sign_jwt(jsonb_build_object('sub', %s::text))", [new]).fetchone()
    assert verify(reader, t) is None, "no such user: no user checks"
    admin.execute("insert into identity.users (id, email, status) values (%s, %s, 'suspended')", [new, f"{new}@example.com"])
    assert verify(reader, t) == "user suspended"


def test_a_rolled_back_change_is_never_seen(admin, reader):
    uid = user(admin, "rollback")
    t = token(admin, uid)
    assert verify(reader, t) is None
    with psycopg.connect(**server(DB)) as writer:  # a transaction
        writer.execute("select identity.suspend_user(%s)", [uid])
        writer.execute("select identity.revoke_jwt(%s, now() + interval '1 hour')", [claims(t)["jti"]])
        assert verify(reader, t) is None, "uncommitted: not visible to others"
        writer.rollback()
    assert verify(reader, t) is None


def test_own_uncommitted_change_counts_inside_the_transaction_only(admin):
    uid = user(admin, "own")
    t = token(admin, uid)
    with psycopg.connect(**server(DB)) as c:
        assert verify(c, t) is None
        c.execute("select identity.revoke_jwt(%s, now() + interval '1 hour')", [claims(t)["jti"]])
        assert verify(c, t) == "jti revoked"
        c.rollback()
        assert verify(c, t) is None, "the copy was rebuilt after the rollback"
        c.execute("update identity.users set status = 'suspended' where id = %s", [uid])
        assert verify(c, t) == "user suspended"
        c.rollback()
        assert verify(c, t) is None


def test_signing_key_changes_reach_other_connections(admin, reader):
    def alg(c):
        (a,) = c.execute("select identity.decode_jwt(identity.sign_jwt('{}'))#>>'{header,alg}'").fetchone()
        return a
    assert alg(reader) == "HS256"
    (kid,) = admin.execute("select identity.generate_signing_key('EdDSA')").fetchone()
    admin.execute("select identity.activate_signing_key(%s)", [kid])
    assert alg(reader) == "EdDSA"
    admin.execute("select identity.retire_signing_key(%s)", [kid])
    assert alg(reader) == "HS256"


def test_a_changed_secret_is_not_bridged_by_a_remembered_signature(admin, reader):
    uid = user(admin, "secret")
    t = token(admin, uid)
    assert verify(reader, t) is None and verify(reader, t) is None
    reader.execute("set identity.jwt_secret = 'another-secret-0123456789-0123456789-abcdef'")
    assert verify(reader, t) == "bad signature"
    reader.execute("reset identity.jwt_secret")
    assert verify(reader, t) is None


def test_parallel_workers_give_the_same_answers(admin, reader):
    uid = user(admin, "parallel")
    good, revoked = token(admin, uid), token(admin, uid)
    admin.execute("select identity.revoke_jwt(%s, now() + interval '1 hour')", [claims(revoked)["jti"]])
    with psycopg.connect(**server(DB), autocommit=True) as c:
        # force_parallel_mode on 15, renamed debug_parallel_query in 16.
        c.execute("select set_config(case when current_setting('server_version_num')::int >= 160000 "
                  "then 'debug_parallel_query' else 'force_parallel_mode' end, 'on', false)")
        c.execute("set parallel_setup_cost = 0")
        c.execute("set parallel_tuple_cost = 0")
        plan = " ".join(r[0] for r in c.execute(
            "explain (costs off) select t, (identity.try_verify_jwt(t)).reason from unnest(%s::text[]) t", [[good, revoked]]))
        assert "Gather" in plan, "the calls run in a parallel worker"
        rows = c.execute("select t, (identity.try_verify_jwt(t)).reason from unnest(%s::text[]) t", [[good, revoked]]).fetchall()
        assert dict(rows) == {good: None, revoked: "jti revoked"}, plan


# verify_api_token remembers the tokens a backend verified and their users'
# rows (src/store/cache.rs, verified_token): every change that matters is
# seen on the next call all the same.


def api_token(admin, uid, scopes=()):
    (tid, tok) = admin.execute(
        "select token_id, token from identity.create_api_token(%s, 'cache', interval '1 day', %s)", [uid, list(scopes)]
    ).fetchone()
    return tid, tok


def verify_api(c, tok):
    """The principal, or the refusal's message."""
    try:
        (p,) = c.execute("select identity.verify_api_token(%s)", [tok]).fetchone()
        return p
    except psycopg.errors.InvalidAuthorizationSpecification as e:
        return e.diag.message_primary


def test_api_token_changes_are_seen_at_once(admin, reader):
    uid = user(admin, "api")
    tid, tok = api_token(admin, uid, ["read"])
    for _ in range(3):  # the second and third calls come from memory
        p = verify_api(reader, tok)
        assert p["token_id"] == str(tid) and p["scopes"] == ["read"] and p["user_role"] == "user"
    # The user's row: role, organization, service flag.
    (org,) = admin.execute("select identity.create_organization('Cache Org')").fetchone()
    admin.execute("update identity.users set user_role = 'admin', organization_id = %s where id = %s", [org, uid])
    p = verify_api(reader, tok)
    assert p["user_role"] == "admin" and p["organization_id"] == str(org)
    # The token's row: scopes, expiry (a direct UPDATE, as an operator might).
    admin.execute("update identity.api_tokens set scopes = '{read,write}' where id = %s", [tid])
    assert verify_api(reader, tok)["scopes"] == ["read", "write"]
    admin.execute("update identity.api_tokens set expires_at = now() - interval '1 second' where id = %s", [tid])
    assert verify_api(reader, tok) == "API token has expired"
    admin.execute("update identity.api_tokens set expires_at = now() + interval '1 hour' where id = %s", [tid])
    assert verify_api(reader, tok)["token_id"] == str(tid)
    # Suspension, revocation, rotation, deletion.
    admin.execute("select identity.suspend_user(%s)", [uid])
    assert verify_api(reader, tok) == "API token's user is not active"
    admin.execute("select identity.reactivate_user(%s)", [uid])
    assert verify_api(reader, tok)["token_id"] == str(tid)
    admin.execute("select identity.revoke_api_token(%s)", [tid])
    assert verify_api(reader, tok) == "API token has been revoked"
    tid2, tok2 = api_token(admin, uid)
    assert verify_api(reader, tok2)["token_id"] == str(tid2)
    (new,) = admin.execute("select token from identity.rotate_api_token(%s)", [tid2]).fetchone()
    assert verify_api(reader, tok2) == "API token has been revoked", "rotated out, no grace"
    assert verify_api(reader, new)["user_id"] == str(uid)
    admin.execute("select identity.delete_user(%s)", [uid])
    assert verify_api(reader, new) == "invalid API token"


def test_an_api_token_revocation_rolled_back_is_never_seen(admin, reader):
    uid = user(admin, "api-rollback")
    tid, tok = api_token(admin, uid)
    assert verify_api(reader, tok)["token_id"] == str(tid)
    with psycopg.connect(**server(DB)) as writer:
        writer.execute("select identity.revoke_api_token(%s)", [tid])
        assert verify_api(writer, tok) == "API token has been revoked", "its own change counts"
        assert verify_api(reader, tok)["token_id"] == str(tid), "uncommitted: not visible to others"
        writer.rollback()
        assert verify_api(writer, tok)["token_id"] == str(tid), "forgotten again on rollback"
    assert verify_api(reader, tok)["token_id"] == str(tid)


def test_last_used_at_is_written_at_most_once_a_minute(admin, reader):
    uid = user(admin, "api-used")
    tid, tok = api_token(admin, uid)
    used = lambda: admin.execute("select last_used_at from identity.api_tokens where id = %s", [tid]).fetchone()[0]
    assert used() is None
    verify_api(reader, tok)
    first = used()
    assert first is not None
    with psycopg.connect(**server(DB), autocommit=True) as other:
        for c in (reader, other, reader, other):
            verify_api(c, tok)
    assert used() == first


# Beyond 50,000 revoked rows the copies give way to the shared revocation
# filters (src/pg/shared_filter.rs): a key the filter rules out costs no
# probe, and nothing a revocation can do gets past it.

BIG = "caches_filter_interop"


@pytest.fixture(scope="module")
def big():
    """A database with 50,001 revoked jtis and sessions (the copies' limit
    is 50,000), and a reader connection that has warmed up on it."""
    with fresh_database(BIG) as admin:
        admin.execute("insert into identity.revoked_jwts (jti, expires_at) "
                      "select 'filler-' || i, now() + interval '1 day' from generate_series(1, 50001) i")
        admin.execute("insert into identity.revoked_sessions (session_id) "
                      "select md5('filler' || i)::uuid from generate_series(1, 50001) i")
        # Counted now, so autovacuum does not invalidate the tables mid-test.
        admin.execute("vacuum analyze identity.revoked_jwts, identity.revoked_sessions")
        yield admin


def big_user(admin):
    (p,) = admin.execute("select identity.provision_user(%s, %s)", [f"idp|{uuid.uuid4()}", f"{uuid.uuid4()}@example.com"]).fetchone()
    return p["user"]["id"]


def probes(c):
    """Index scans of the two revocation tables by c's backend not yet
    reported (the counts grow across transactions until flushed, which
    happens at most once a second, and only when idle: read inside one
    transaction, differences are exact)."""
    return c.execute("select pg_stat_get_xact_numscans('identity.revoked_jwts_pkey'::regclass), "
                     "pg_stat_get_xact_numscans('identity.revoked_sessions_pkey'::regclass)").fetchone()


def test_the_filter_spares_the_probes(big):
    uid = big_user(big)
    tokens = [token(big, uid) for _ in range(50)]
    with psycopg.connect(**server(BIG)) as c:
        assert verify(c, tokens[0]) is None  # the copies found too big; the filter built
        before = probes(c)
        assert all(verify(c, t) is None for t in tokens[1:])
        assert probes(c) == before, "49 new tokens, no probe"
        c.commit()
        # A revoked key is a "maybe": probed, and refused.
        big.execute("select identity.revoke_jwt(%s, now() + interval '1 hour')", [claims(tokens[0])["jti"]])
        before = probes(c)
        assert verify(c, tokens[0]) == "jti revoked"
        assert probes(c)[0] == before[0] + 1


def reader_on(db):
    c = psycopg.connect(**server(db), autocommit=True)
    return c


def test_revocations_through_the_filter_are_seen_at_once(big):
    uid = big_user(big)
    t1, t2 = token(big, uid), token(big, uid)
    with reader_on(BIG) as r:
        for _ in range(2):
            assert verify(r, t1) is None and verify(r, t2) is None
        big.execute("select identity.revoke_jwt(%s, now() + interval '1 hour')", [claims(t1)["jti"]])
        assert verify(r, t1) == "jti revoked"
        big.execute("select identity.revoke_session(%s)", [claims(t2)["session_id"]])
        assert verify(r, t2) == "session revoked"


@pytest.mark.parametrize("how", ["disabled trigger", "disabled in one transaction", "replica role", "copy"])
def test_no_way_of_inserting_a_revocation_gets_past_the_filter(big, how):
    uid = big_user(big)
    t, s = token(big, uid), token(big, uid)
    jti, sid = claims(t)["jti"], claims(s)["session_id"]
    with reader_on(BIG) as r:
        assert verify(r, t) is None and verify(r, s) is None
        if how == "disabled trigger":
            # What pg_restore --disable-triggers does around its COPY.
            for table in ("revoked_jwts", "revoked_sessions"):
                big.execute(f"alter table identity.{table} disable trigger all")
            big.execute("insert into identity.revoked_jwts (jti, expires_at) values (%s, now() + interval '1 hour')", [jti])
            big.execute("insert into identity.revoked_sessions (session_id) values (%s)", [sid])
            for table in ("revoked_jwts", "revoked_sessions"):
                big.execute(f"alter table identity.{table} enable always trigger revocation_filter")
                big.execute(f"alter table identity.{table} enable always trigger cached_table_changed")
        elif how == "disabled in one transaction":
            with psycopg.connect(**server(BIG)) as w:
                w.execute("alter table identity.revoked_jwts disable trigger revocation_filter")
                w.execute("alter table identity.revoked_sessions disable trigger revocation_filter")
                w.execute("insert into identity.revoked_jwts (jti, expires_at) values (%s, now() + interval '1 hour')", [jti])
                w.execute("insert into identity.revoked_sessions (session_id) values (%s)", [sid])
                w.execute("alter table identity.revoked_jwts enable always trigger revocation_filter")
                w.execute("alter table identity.revoked_sessions enable always trigger revocation_filter")
        elif how == "replica role":
            with psycopg.connect(**server(BIG)) as w:
                w.execute("set local session_replication_role = replica")
                w.execute("insert into identity.revoked_jwts (jti, expires_at) values (%s, now() + interval '1 hour')", [jti])
                w.execute("insert into identity.revoked_sessions (session_id) values (%s)", [sid])
        else:
            with big.cursor().copy("copy identity.revoked_jwts (jti, expires_at) from stdin") as cp:
                cp.write_row([jti, "2100-01-01"])
            with big.cursor().copy("copy identity.revoked_sessions (session_id) from stdin") as cp:
                cp.write_row([sid])
        assert verify(r, t) == "jti revoked", how
        assert verify(r, s) == "session revoked", how
        # And the filter is in use again afterwards (rebuilt by the first
        # call, which probes).
        u, v = token(big, uid), token(big, uid)
        r.execute("begin")
        verify(r, u)
        before = probes(r)
        verify(r, v)
        assert probes(r) == before, "no probe"
        r.execute("commit")


def test_a_new_connection_loads_no_copy_of_a_table_the_filter_holds():
    """Over 1,000 revoked rows (cache.rs FILTERED_ROWS) a backend leaves
    the table to the shared filter: a new connection's first check scans
    neither revocation table (it used to copy both whole, up to 50,000
    rows each), and a revocation is still refused at once."""
    with fresh_database("caches_mid_interop") as admin:
        admin.execute("insert into identity.revoked_jwts (jti, expires_at) "
                      "select 'mid-' || i, now() + interval '1 day' from generate_series(1, 1500) i")
        admin.execute("insert into identity.revoked_sessions (session_id) "
                      "select md5('mid' || i)::uuid from generate_series(1, 1500) i")
        admin.execute("vacuum analyze identity.revoked_jwts, identity.revoked_sessions")
        uid = big_user(admin)
        first, second, revoked = (token(admin, uid) for _ in range(3))
        with psycopg.connect(**server("caches_mid_interop")) as c:
            assert verify(c, first) is None  # builds the filter (once per server)
        with psycopg.connect(**server("caches_mid_interop")) as c:
            before = probes(c)
            assert verify(c, second) is None
            assert probes(c) == before, "no copy loaded and no probe"
            c.commit()
            admin.execute("select identity.revoke_jwt(identity.decode_jwt(%s)->'payload'->>'jti', now() + interval '1 hour')",
                          [revoked])
            assert verify(c, revoked) == "jti revoked"


def test_a_short_connection_probes_its_users_and_loads_no_copy():
    """With many users a check can refuse, a new connection probes the users
    it meets (remembering each), and loads the copy of them (an index-only
    scan of users_token_state) only once it has probed a sixteenth as many:
    a short connection loads nothing, a long one loads it once, and the
    answers are the same either way."""
    with fresh_database("caches_users_interop") as admin:
        admin.execute("insert into identity.users (id, email, status) select md5('su' || i)::uuid, "
                      "'su' || i || '@example.com', 'suspended' from generate_series(1, 400) i")
        ok, bad = big_user(admin), big_user(admin)
        t_ok, t_bad = token(admin, ok), token(admin, bad)
        admin.execute("select identity.suspend_user(%s)", [bad])
        admin.execute("vacuum analyze identity.users")
        (fillers,) = admin.execute("select array_agg(identity.sign_jwt(jsonb_build_object('sub', md5('su' || i)::uuid))) "
                                   "from generate_series(1, 150) i").fetchone()
        with psycopg.connect(**server("caches_users_interop")) as c:
            loads = lambda: c.execute("select pg_stat_get_xact_numscans('identity.users_token_state'::regclass)").fetchone()[0]
            assert verify(c, t_ok) is None
            assert verify(c, t_bad) == "user suspended"
            assert loads() == 0, "two users probed, no copy loaded"
            assert all(verify(c, t) == "user suspended" for t in fillers)
            assert loads() == 1, "loaded once, after about 25 probes"
            assert verify(c, t_bad) == "user suspended" and verify(c, t_ok) is None
            c.commit()
            admin.execute("select identity.reactivate_user(%s)", [bad])
            # Seen at once: reactivation keeps earlier tokens refused.
            assert verify(c, t_bad) == "issued before the user's tokens_valid_after"


def test_a_rolled_back_revocation_stays_a_maybe_only(big):
    uid = big_user(big)
    t = token(big, uid)
    with reader_on(BIG) as r:
        assert verify(r, t) is None
        with psycopg.connect(**server(BIG)) as w:
            w.execute("select identity.revoke_jwt(%s, now() + interval '1 hour')", [claims(t)["jti"]])
            assert verify(w, t) == "jti revoked"
            assert verify(r, t) is None
            w.rollback()
        assert verify(r, t) is None, "a false positive of the filter is probed, not refused"


def test_the_hook_sees_every_change_of_the_user_at_once(admin, reader):
    """The hook reads the user's row from the backend's copy (src/store/cache.rs,
    user_state): role, organization, service flag and status changes made by
    another connection are in its very next answer."""
    uid = user(admin, "hook")
    ev = {"user_id": uid, "claims": {"aud": "authenticated", "exp": 2000000000, "iat": 1999996400, "sub": uid,
          "email": "h@example.com", "phone": "", "role": "authenticated", "aal": "aal1",
          "session_id": str(uuid.uuid4()), "is_anonymous": False}}

    def hook():
        (a,) = reader.execute("select identity.custom_access_token_hook(%s)", [psycopg.types.json.Jsonb(ev)]).fetchone()
        return a

    for _ in range(2):
        assert hook()["claims"]["user_role"] == "user"
    (org,) = admin.execute("select identity.create_organization('Hook Org')").fetchone()
    admin.execute("update identity.users set user_role = 'admin', organization_id = %s where id = %s", [org, uid])
    c = hook()["claims"]
    assert c["user_role"] == "admin" and c["organization_id"] == str(org)
    admin.execute("update identity.users set is_service_user = true where id = %s", [uid])
    assert hook()["claims"]["is_service_user"] is True
    admin.execute("select identity.suspend_user(%s)", [uid])
    assert hook()["error"]["http_code"] == 403
    admin.execute("select identity.reactivate_user(%s)", [uid])
    assert "claims" in hook()
    admin.execute("select identity.delete_user(%s)", [uid])
    assert hook()["error"]["http_code"] == 403
