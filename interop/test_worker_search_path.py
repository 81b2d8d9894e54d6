"""The background workers (the audit writer, the JWKS fetcher) never run
code planted by a database owner who is not a superuser (CVE-2018-1058's
class, as TimescaleDB's CVE-2022-24128), and no setting of theirs stops the
workers' transactions (read-only, timeouts, plpgsql's extra errors): the
owner of a database puts
hostile operators and functions, named like every operator and function the
workers use, in a schema first on the database's and on the bootstrap
role's search_path, and makes the workers run. None of them runs, and the
workers still do their work, as the role identity_worker, not as a
superuser."""
import json
import time

import psycopg
import pytest

from conftest import fresh_database, server
from test_external import JwksServer, Key, wait_for

# Every operator the workers' statements used (left type, name, right type,
# result): jsonb field access, key tests, comparisons of text, timestamps
# and intervals, arithmetic on timestamps.
OPERATORS = [
    ("jsonb", "->>", "text", "text"),
    ("jsonb", "->", "text", "jsonb"),
    ("jsonb", "?", "text", "boolean"),
    ("text", "=", "text", "boolean"),
    ("timestamptz", "<=", "timestamptz", "boolean"),
    ("timestamptz", "-", "interval", "timestamptz"),
    ("timestamptz", "+", "interval", "timestamptz"),
    ("timestamptz", "-", "timestamptz", "interval"),
    ("jsonb", "=", "jsonb", "boolean"),
    ("integer", "+", "integer", "integer"),
    ("bigint", "+", "bigint", "bigint"),
]
# Every function they called, by signature, with a body that answers like
# the real one after recording that it ran.
FUNCTIONS = [
    ("now()", "timestamptz", "pg_catalog.now()"),
    ("jsonb_array_elements(jsonb)", "setof jsonb", "pg_catalog.jsonb_array_elements($1)"),
    ("left(text, integer)", "text", "pg_catalog.left($1, $2)"),
    ("to_regclass(text)", "regclass", "pg_catalog.to_regclass($1)"),
    ("to_regprocedure(text)", "regprocedure", "pg_catalog.to_regprocedure($1)"),
    ("make_interval(years integer default 0, months integer default 0, weeks integer default 0, "
     "days integer default 0, hours integer default 0, mins integer default 0, "
     "secs double precision default 0)", "interval",
     "pg_catalog.make_interval($1, $2, $3, $4, $5, $6, $7)"),
    ("date_part(text, timestamptz)", "double precision", "pg_catalog.date_part($1, $2)"),
    ("pg_try_advisory_xact_lock(integer, integer)", "boolean", "pg_catalog.pg_try_advisory_xact_lock($1, $2)"),
    ("set_config(text, text, boolean)", "text", "pg_catalog.set_config($1, $2, $3)"),
]


def plant(owner):
    """As the database owner (not a superuser): schema evil, a table that
    records every call, and the hostile objects."""
    owner.execute("create schema evil")
    owner.execute("create table evil.hits (what text, by_role name, superuser boolean, at timestamptz default pg_catalog.clock_timestamp())")
    owner.execute("grant usage on schema evil to public")
    owner.execute("grant insert on evil.hits to public")
    record = ("insert into evil.hits (what, by_role, superuser) values ({what}, current_user, "
              "(select r.rolsuper from pg_catalog.pg_roles r where r.rolname operator(pg_catalog.=) current_user))")
    for i, (left, op, right, result) in enumerate(OPERATORS):
        fn = f"evil.op{i}"
        owner.execute(
            f"create function {fn}(a {left}, b {right}) returns {result} language plpgsql as $$ begin "
            + record.format(what=f"'operator {op}({left}, {right})'")
            + f"; return a operator(pg_catalog.{op}) b; end $$")
        owner.execute(f"create operator evil.{op} (leftarg = {left}, rightarg = {right}, function = {fn})")
    for sig, result, body in FUNCTIONS:
        name = sig.split("(")[0]
        lang_body = ("begin " + record.format(what=f"'function {name}'")
                     + (f"; return query select {body}; end" if result.startswith("setof")
                        else f"; return {body}; end"))
        owner.execute(f"create function evil.{sig} returns {result} language plpgsql as $${lang_body}$$")


@pytest.fixture()
def hostile():
    """A database owned by a role that is not a superuser, with the
    extension, the hostile objects, and evil first on the database's
    search_path and on the bootstrap superuser's in that database."""
    with psycopg.connect(**server("postgres"), autocommit=True) as c:
        c.execute("drop database if exists worker_path with (force)")
        c.execute("drop role if exists worker_path_owner")
        c.execute("create role worker_path_owner login")
    with fresh_database("worker_path") as su:
        su.execute("alter database worker_path owner to worker_path_owner")
        boot = su.execute("select rolname from pg_catalog.pg_roles where oid = 10").fetchone()[0]
        with psycopg.connect(**{**server("worker_path"), "user": "worker_path_owner"}, autocommit=True) as owner:
            assert not owner.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()[0]
            plant(owner)
            owner.execute("alter database worker_path set search_path = evil, pg_catalog, public")
            # Settings that would make the workers' transactions fail (a
            # writer that fails leaves reveals unaudited): pinned too.
            for setting in ["default_transaction_read_only = on", "statement_timeout = 1", "lock_timeout = 1",
                            "idle_in_transaction_session_timeout = 1", "plpgsql.extra_errors = 'all'",
                            "default_transaction_isolation = 'serializable'", "synchronous_commit = off"]:
                owner.execute(f"alter database worker_path set {setting}")
        # What a superuser could do: the bootstrap role's own setting there.
        su.execute(f"alter role {boot} in database worker_path set search_path = evil, pg_catalog, public")
        yield su
        su.execute(f"alter role {boot} in database worker_path reset search_path")
    with psycopg.connect(**server("postgres"), autocommit=True) as c:
        c.execute("drop role if exists worker_path_owner")


def hits(su):
    return su.execute("select what, by_role, superuser from evil.hits order by at").fetchall()


def test_the_audit_writer_runs_no_planted_operator_or_function(hostile):
    su = hostile
    # The planted objects work (for a session that uses that search_path).
    su.execute("set search_path = evil, pg_catalog")
    assert su.execute("select '{\"a\":\"b\"}'::jsonb ->> 'a'").fetchone()[0] == "b"
    assert hits(su), "the planted operator did not run for a session on that path"
    su.execute("truncate evil.hits")
    su.execute("reset search_path")
    # A refused call queues an audit record for the writer.
    with pytest.raises(psycopg.errors.NoDataFound):
        su.execute("select identity.retire_signing_key('worker-path-nope')")
    deadline = time.time() + 20
    while time.time() < deadline:
        row = su.execute("select count(*), count(row_hash) from identity.audit_log "
                         "where action = 'signing_key.refused' and target_id = 'worker-path-nope'").fetchone()
        if row == (1, 1):
            break
        time.sleep(0.2)
    assert row == (1, 1), "the writer did not insert and chain the record"
    assert hits(su) == []
    assert su.execute("select identity.verify_audit_log()->>'valid'").fetchone()[0] == "true"


def test_the_jwks_fetcher_runs_no_planted_operator_or_function(hostile):
    su = hostile
    srv = JwksServer()
    try:
        a = Key("ES256", "path-a")
        srv.serve([a])
        iss = "https://path.example.com"
        su.execute("select identity.register_issuer(%s, null, %s)", [iss, json.dumps({
            "jwks_uri": f"http://127.0.0.1:{srv.port}/.well-known/jwks.json", "jwks_refresh_seconds": 2,
            "audience": "path-app"})])
        wait_for(su, iss, lambda i: i["kids"] == ["path-a"])
        # A bad answer is recorded as a failure (the other statement).
        srv.body = b"not json"
        wait_for(su, iss, lambda i: i.get("jwks_error") is not None)
    finally:
        srv.stop()
    assert hits(su) == []


def test_the_workers_role_is_not_a_superuser(hostile):
    su = hostile
    row = su.execute("select rolsuper, rolcanlogin, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication "
                     "from pg_catalog.pg_roles where rolname = 'identity_worker'").fetchone()
    assert row == (False, False, False, False, False, False)
    # It owns nothing and can change no table of the extension directly.
    assert su.execute("select count(*) from pg_catalog.pg_class c where c.relnamespace = 'identity'::regnamespace "
                      "and (pg_catalog.has_table_privilege('identity_worker', c.oid, 'insert,update,delete,truncate'))"
                      ).fetchone()[0] == 0
