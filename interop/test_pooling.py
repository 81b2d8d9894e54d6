"""An identity never outlives its transaction (API.md section 8), where it
matters: connections that many clients share.

- pgbouncer in transaction mode with one server connection per pool
  (interop/run.sh starts it), several clients interleaving;
- one direct connection reused by many requests, as PostgREST's own pool
  reuses its connections.

Requests are what PostgREST sends (SET LOCAL ROLE, request.jwt.claims and
request.headers set locally, identity.pre_request()), or apps calling
identity.authenticate, in explicit transactions and autocommit statements,
committed, rolled back and in savepoints. After every request the client
looks at every form an identity can take (the helpers, actor(), jwt(),
current_user(), the Postgres role, identity.verified_claims, the rows a
policy lets through) and must see exactly its own, or none."""
import json
import os
import random
import threading

import psycopg
import pytest

from conftest import fresh_database, server

DB = "pooling"
USERS = ["a", "b", "c"]


def pgbouncer(dbname):
    return dict(host="127.0.0.1", port=os.environ["IDENTITY_PGBOUNCER_PORT"], user="ignored", dbname=dbname,
                # pgbouncer 1.18 in transaction mode has no prepared statements.
                prepare_threshold=None, autocommit=True)


@pytest.fixture(scope="module")
def world():
    with fresh_database(DB) as c:
        for r in ["anon", "authenticated"]:
            c.execute(f"do $$ begin create role {r} nologin; exception when duplicate_object then null; end $$")
        for r in ["authenticator", "authenticator_verified"]:
            c.execute(f"do $$ begin create role {r} login noinherit; exception when duplicate_object then null; end $$")
            c.execute(f"grant anon, authenticated to {r}")
        # The verified pool's server connections read only pinned claims.
        c.execute("alter role authenticator_verified in database pooling set identity.claims_source = 'verified'")
        c.execute("select identity.grant_access('authenticated', 'user')")
        c.execute("select identity.grant_access('anon', 'user')")
        c.execute("select identity.grant_access('authenticator', 'user')")
        c.execute("select identity.grant_access('authenticator_verified', 'user')")
        (org,) = c.execute("select identity.create_organization('Pool Org')").fetchone()
        w = {"org": org, "admin": c}
        for u in USERS:
            (p,) = c.execute("select identity.provision_user(%s, %s, organization_id => %s)",
                             [f"idp|pool|{u}", f"pool-{u}@example.com", org]).fetchone()
            uid = p["user"]["id"]
            (jwt,) = c.execute("select identity.issue_access_token(%s)", [uid]).fetchone()
            (claims,) = c.execute("select identity.decode_jwt(%s)->'payload'", [jwt]).fetchone()
            w[u] = {"id": uid, "jwt": jwt, "api": p["api_token"], "claims": json.dumps(claims)}
        c.execute("create table public.docs (id serial primary key, owner uuid not null)")
        for u in USERS:
            c.execute("insert into public.docs (owner) select %s from generate_series(1, 2)", [w[u]["id"]])
        c.execute("alter table public.docs enable row level security")
        c.execute("create policy own on public.docs for select using (owner = identity.uid())")
        c.execute("grant select on public.docs to public")
        yield w
    with psycopg.connect(**server("postgres"), autocommit=True) as c:
        for r in ["authenticator", "authenticator_verified"]:
            c.execute(f"drop role if exists {r}")


OBSERVE = """
select identity.uid()::text, identity.org_id()::text, identity.actor(), identity.jwt(),
       identity.claim('sub'), current_setting('identity.verified_claims'), current_user::text,
       (select coalesce(array_agg(distinct owner::text), '{}') from public.docs), pg_backend_pid()
"""


def observe(cur, expect_user, nobody=False):
    """Every form of identity in this transaction; checks it names exactly
    `expect_user` (a world entry, or None for no identity: no pin, or with
    `nobody` the pin of a failed identity.authenticate)."""
    uid, org, actor, jwt, sub, pin, role, owners, pid = cur.execute(OBSERVE).fetchone()
    seen = {"uid": uid, "actor": actor.get("user_id"), "sub": sub, "owners": owners,
            "jwt": jwt.get("sub") if jwt else None}
    if expect_user is None:
        assert seen == {"uid": None, "actor": None, "sub": None, "owners": [], "jwt": None}, seen
        assert org is None and pin == ("null" if nobody else ""), (org, pin)
    else:
        want = expect_user["id"]
        assert seen == {"uid": want, "actor": want, "sub": want, "owners": [want], "jwt": want}, seen
        (me,) = cur.execute("select identity.\"current_user\"()->'user'->>'id'").fetchone()
        assert me == want
    return role, pin, pid


def headers(cur, h):
    cur.execute("select set_config('request.headers', %s, true)", [json.dumps(h)])


def request(conn, world, kind, u, mode):
    """One request of `kind` for user `u`; returns the backend pid it ran on."""
    me = world[u]
    with conn.cursor() as cur:
        if kind == "authenticate_jwt":
            cur.execute("begin")
            cur.execute("set local role authenticated")
            cur.execute("select identity.authenticate(%s)", [me["jwt"]])
            role, pin, pid = observe(cur, me)
            assert pin != ""
            cur.execute("commit")
        elif kind == "authenticate_api_token":
            cur.execute("begin")
            cur.execute("select identity.authenticate(%s)", [me["api"]])
            # A revoked token pins nobody for the rest of the transaction.
            _, _, pid = observe(cur, me if not me.get("revoked") else None, nobody=bool(me.get("revoked")))
            cur.execute("commit")
        elif kind == "authenticate_then_rollback":
            cur.execute("begin")
            cur.execute("select identity.authenticate(%s)", [me["jwt"]])
            _, _, pid = observe(cur, me)
            cur.execute("rollback")
        elif kind == "pin_in_rolled_back_savepoint":
            cur.execute("begin")
            cur.execute("savepoint s")
            cur.execute("select identity.authenticate(%s)", [me["jwt"]])
            cur.execute("rollback to savepoint s")
            _, _, pid = observe(cur, None)
            cur.execute("commit")
        elif kind == "postgrest_claims":
            # PostgREST verified the JWT and sets its claims locally.
            cur.execute("begin")
            cur.execute("set local role authenticated")
            cur.execute("select set_config('request.jwt.claims', %s, true)", [me["claims"]])
            headers(cur, {"authorization": "Bearer " + me["jwt"]})
            cur.execute("select identity.pre_request()")
            # In mode verified the claims alone are not trusted: pre_request
            # verified the Bearer JWT and pinned it.
            role, _, pid = observe(cur, me)
            assert role == "authenticated"
            cur.execute("commit")
        elif kind == "postgrest_claims_only":
            cur.execute("begin")
            cur.execute("set local role authenticated")
            cur.execute("select set_config('request.jwt.claims', %s, true)", [me["claims"]])
            _, _, pid = observe(cur, me if mode == "request" else None)
            cur.execute("commit")
        elif kind == "postgrest_api_key":
            cur.execute("begin")
            cur.execute("set local role anon")
            cur.execute("""select set_config('request.jwt.claims', '{"role": "anon"}', true)""")
            headers(cur, {"x-api-key": me["api"], "accept": "application/json"})
            if me.get("revoked"):
                with pytest.raises(psycopg.Error) as e:
                    cur.execute("select identity.pre_request()")
                assert e.value.sqlstate == "PT401" and "revoked" in str(e.value)
                assert me["api"] not in str(e.value)
                cur.execute("rollback")
                (pid,) = conn.execute("select pg_backend_pid()").fetchone()
                return pid
            cur.execute("select identity.pre_request()")
            role, _, pid = observe(cur, me)
            assert role == "authenticated"
            cur.execute("commit")
        elif kind == "postgrest_anonymous":
            cur.execute("begin")
            cur.execute("set local role anon")
            cur.execute("""select set_config('request.jwt.claims', '{"role": "anon"}', true)""")
            headers(cur, {"accept": "application/json"})
            cur.execute("select identity.pre_request()")
            role, _, pid = observe(cur, None)
            assert role == "anon"
            cur.execute("commit")
        elif kind == "autocommit_nothing":
            # No transaction, no claims: a statement on its own.
            role, _, pid = observe(cur, None)
            assert role in ("authenticator", "authenticator_verified")
        elif kind == "autocommit_authenticate":
            # The pin made by one autocommit statement ends with it.
            cur.execute("select identity.authenticate(%s) ->> 'sub'", [me["jwt"]])
            assert cur.fetchone()[0] == me["id"]
            _, _, pid = observe(cur, None)
        else:
            raise AssertionError(kind)
    return pid


KINDS = ["authenticate_jwt", "authenticate_api_token", "authenticate_then_rollback",
         "pin_in_rolled_back_savepoint", "postgrest_claims", "postgrest_claims_only",
         "postgrest_api_key", "postgrest_anonymous", "autocommit_nothing", "autocommit_authenticate"]


def connect(transport, mode):
    dbname = DB if mode == "request" else "pooling_verified"
    if transport == "pgbouncer":
        return psycopg.connect(**pgbouncer(dbname))
    user = "authenticator" if mode == "request" else "authenticator_verified"
    return psycopg.connect(**{**server(DB), "user": user}, autocommit=True)


@pytest.mark.parametrize("mode", ["request", "verified"])
@pytest.mark.parametrize("transport", ["pgbouncer", "direct"])
def test_interleaved_clients_never_see_each_other(world, transport, mode):
    """Three clients (pgbouncer) or one connection (direct, PostgREST's
    pool), 240 requests of every kind in a seeded random order; then user c's
    API token is revoked and every client's next request with it is refused."""
    rng = random.Random(f"{transport}-{mode}")
    n_clients = 3 if transport == "pgbouncer" else 1
    clients = [connect(transport, mode) for _ in range(n_clients)]
    try:
        pids = set()
        steps = [(rng.randrange(n_clients), rng.choice(KINDS), rng.choice(USERS)) for _ in range(240)]
        for k in KINDS:  # every kind at least once, for every user
            for u in USERS:
                steps.insert(rng.randrange(len(steps)), (rng.randrange(n_clients), k, u))
        for client, kind, u in steps:
            pids.add(request(clients[client], world, kind, u, mode))
        # One server backend served every client.
        assert len(pids) == 1, pids

        # A revocation takes effect at the next transaction of every client.
        (token_id,) = world["admin"].execute("select (identity.verify_api_token(%s))->>'token_id'",
                                             [world["c"]["api"]]).fetchone()
        world["admin"].execute("select identity.revoke_api_token(%s)", [token_id])
        world["c"]["revoked"] = True
        for client in clients:
            request(client, world, "postgrest_api_key", "c", mode)
            request(client, world, "authenticate_api_token", "c", mode)
            request(client, world, "postgrest_api_key", "a", mode)
    finally:
        if world["c"].pop("revoked", None):
            # A fresh token for c, so the next parametrization starts whole.
            (world["c"]["api"],) = world["admin"].execute(
                "select token from identity.create_api_token(%s, 'again')", [world["c"]["id"]]).fetchone()
        for c in clients:
            c.close()


def test_concurrent_clients_through_one_server_connection(world):
    """Six threads, each its own pgbouncer client acting for one user, 40
    requests each, all through the pool's one server connection."""
    def run(i):
        rng = random.Random(i)
        u = USERS[i % len(USERS)]
        with psycopg.connect(**pgbouncer(DB)) as conn:
            return {request(conn, world, rng.choice([k for k in KINDS if k != "postgrest_claims_only"]), u, "request")
                    for _ in range(40)}

    from conftest import run_concurrently
    results, errors = run_concurrently(6, run)
    assert not errors, errors
    assert len(set().union(*results)) == 1


def test_a_session_level_pin_cannot_be_made(world):
    """Nothing but authenticate pins, and it pins for the transaction only:
    not SET, set_config(..., false), nor a superuser-free RESET ALL undo."""
    with connect("direct", "request") as c:
        for sql in ["set identity.verified_claims = '{\"sub\": \"%s\"}'" % world["a"]["id"],
                    "select set_config('identity.verified_claims', '{}', false)",
                    "set identity.claims_source = 'request'"]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(sql)
        c.execute("select identity.authenticate(%s)", [world["a"]["jwt"]])
        c.execute("reset all")
        c.execute("discard all")
        observe(c.cursor(), None)


@pytest.mark.parametrize("transport", ["pgbouncer", "direct"])
def test_a_failed_authenticate_pins_nobody_until_the_transaction_ends(world, transport):
    """An app at the admin level that ignores authenticate's NULL acts as
    nobody, not as the system, for the rest of that transaction (through
    pgbouncer's one server connection too); its next transaction, and the
    next client's, start clean."""
    admin = world["admin"]
    admin.execute("do $$ begin create role pool_admin_app login; exception when duplicate_object then null; end $$")
    admin.execute("select identity.grant_access('pool_admin_app', 'admin')")
    admin.execute("grant pool_admin_app to authenticator")
    conns = []
    try:
        if transport == "pgbouncer":
            conns = [psycopg.connect(**{**pgbouncer(DB)}) for _ in range(2)]
            for c in conns:  # the pool's one server connection, as the admin app
                c.execute("begin")
                c.execute("set local role pool_admin_app")
                c.execute("commit")
        else:
            conns = [psycopg.connect(**{**server(DB), "user": "pool_admin_app"}, autocommit=True)]
        first = conns[0]
        with first.cursor() as cur:
            cur.execute("begin")
            cur.execute("set local role pool_admin_app")
            cur.execute("select identity.authenticate('idt_' || repeat('0', 36))")
            assert cur.fetchone()[0] is None
            cur.execute("select identity.uid(), identity.jwt(), identity.actor()->>'kind'")
            assert cur.fetchone() == (None, None, "anon")
            cur.execute("select identity.authenticate(null)")
            cur.execute("select identity.authenticate(%s)", [world["a"]["jwt"]])
            assert cur.fetchone()[0] is None
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                cur.execute("select identity.suspend_user(%s)", [world["b"]["id"]])
            cur.execute("rollback")
        for c in conns:  # the next transaction, on this client and the next
            with c.cursor() as cur:
                cur.execute("begin")
                cur.execute("set local role pool_admin_app")
                cur.execute("select identity.actor()->>'kind', current_setting('identity.verified_claims')")
                assert cur.fetchone() == ("system", "")
                cur.execute("rollback")
        (status,) = admin.execute("select status from identity.users where id = %s", [world["b"]["id"]]).fetchone()
        assert status == "active"
    finally:
        for c in conns:
            c.close()
