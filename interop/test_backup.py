"""Backups keep everything: pg_dump (custom and plain format) of a database
holding every kind of row the extension has, restored with pg_restore and
with psql into fresh databases, gives back every row, and the restored
database behaves as the original did: valid tokens verify, revoked ones and
a deleted user's JWTs stay refused, the JWKS is the same and new tokens are
signed with the active key, secrets decrypt to the same value, the hook
answers the same, new audit rows and events get ids after the restored ones,
and a connection that was open before the restore sees the restored state."""
import json
import os
import subprocess
import uuid

import psycopg
import pytest

from conftest import server

SRC = "backup_src"
BIN = os.environ["PG_BIN"]  # the server's major (scripts/pg.sh)
TABLES = ["organizations", "users", "deleted_users", "api_tokens", "signing_keys", "revoked_jwts",
          "revoked_sessions", "credentials", "credential_usage", "subscriptions", "feature_flags",
          "feature_flag_overrides", "audit_log", "events"]


def connect(db):
    return psycopg.connect(**server(db), autocommit=True)


def recreate(db, with_extension=False):
    with connect("postgres") as c:
        c.execute(f"drop database if exists {db} with (force)")
        c.execute(f"create database {db}")
    if with_extension:
        with connect(db) as c:
            c.execute("create extension identity")


def one(c, sql, args=()):
    return c.execute(sql, args).fetchone()[0]


def as_user(c, uid, sql, args=()):
    """`sql` in a transaction acting as user `uid` (request claims)."""
    with c.transaction():
        c.execute("set local role authenticated")
        c.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps({"sub": uid, "role": "authenticated"})])
        return one(c, sql, args)


@pytest.fixture(scope="module")
def source():
    """The original database and what it holds and answers. Every database
    of this module is dropped at its end (they hold grants to cluster-wide
    roles that other tests drop)."""
    yield from build_source()
    with connect("postgres") as c:
        for db in [SRC, "backup_custom", "backup_plain"]:
            c.execute(f"drop database if exists {db} with (force)")
        c.execute("drop role if exists backup_dumper")


def build_source():
    recreate(SRC, with_extension=True)
    w = {}
    with connect(SRC) as c:
        c.execute("do $$ begin create role authenticated nologin; exception when duplicate_object then null; end $$")
        c.execute("select identity.grant_access('authenticated', 'user')")
        org = one(c, "select identity.create_organization('Backup Org')")
        users = {}
        for name in ["alice", "bob", "dave"]:
            p = one(c, "select identity.provision_user(%s, %s, organization_id => %s)",
                    [f"idp|{name}", f"{name}@backup.test", org])
            users[name] = p["user"]["id"]
            w[f"api_{name}"] = p["api_token"]
        w["users"] = users
        svc_id, svc_token = c.execute(
            "select user_id, token from identity.create_service_user('svc@backup.test', %s)", [org]).fetchone()
        w["svc"], w["api_svc"] = str(svc_id), svc_token
        # API tokens: one revoked, one rotated with a grace period (old and new valid).
        revoked_id, w["api_revoked"] = c.execute(
            "select token_id, token from identity.create_api_token(%s, 'to revoke')", [users["alice"]]).fetchone()
        c.execute("select identity.revoke_api_token(%s)", [revoked_id])
        rot_id, w["api_rotated_old"] = c.execute(
            "select token_id, token from identity.create_api_token(%s, 'to rotate')", [users["bob"]]).fetchone()
        w["api_rotated_new"] = one(c, "select token from identity.rotate_api_token(%s, '1 hour')", [rot_id])
        # HS256 JWTs (no active key yet); one revoked by jti, one by session.
        w["jwt_hs"] = one(c, "select identity.issue_access_token(%s)", [users["alice"]])
        w["jwt_revoked"] = one(c, "select identity.issue_access_token(%s)", [users["bob"]])
        jti = one(c, "select identity.decode_jwt(%s)->'payload'->>'jti'", [w["jwt_revoked"]])
        c.execute("select identity.revoke_jwt(%s, now() + interval '1 hour')", [jti])
        sid = str(uuid.uuid4())
        w["jwt_session"] = one(c, "select identity.sign_jwt(%s::jsonb)",
                               [json.dumps({"sub": users["bob"], "session_id": sid, "aud": "authenticated"})])
        c.execute("select identity.revoke_session(%s)", [sid])
        # The deleted user's JWT.
        w["jwt_deleted"] = one(c, "select identity.issue_access_token(%s)", [users["dave"]])
        c.execute("select identity.delete_user(%s)", [users["dave"]])
        # ES256 keys: one signs, then a second becomes active (the first is retired, still in the JWKS).
        k1 = one(c, "select identity.generate_signing_key('ES256')")
        c.execute("select identity.activate_signing_key(%s)", [k1])
        w["jwt_es_old"] = one(c, "select identity.issue_access_token(%s)", [users["alice"]])
        k2 = one(c, "select identity.generate_signing_key('ES256')")
        c.execute("select identity.activate_signing_key(%s)", [k2])
        w["active_kid"] = k2
        w["jwt_es"] = one(c, "select identity.issue_access_token(%s)", [users["bob"]])
        # Credentials with usage; flags and overrides.
        w["secret_system"] = "sk-or-v1-backup-system-secret-0001"
        w["secret_own"] = "sk-or-v1-backup-own-secret-0002"
        w["cred_system"] = one(c, "select identity.create_system_credential(%s, 'openrouter', %s, 10)->>'id'",
                               [users["alice"], w["secret_system"]])
        c.execute("select identity.record_credential_usage(%s, 1.25, 300)", [w["cred_system"]])
        c.execute("select identity.record_credential_usage(%s, 2.5, 700)", [w["cred_system"]])
        w["cred_own"] = as_user(c, users["alice"], "select identity.create_credential('openai', 'mine', %s)->>'id'",
                                [w["secret_own"]])
        c.execute("select identity.set_feature_flag('beta', true, 50, 'half')")
        c.execute("select identity.set_feature_flag_override('beta', %s, false)", [users["bob"]])
        w["answers"] = answers(c, w)
        w["counts"] = counts(c)
    assert all(n > 0 for n in w["counts"].values()), w["counts"]
    yield w


def counts(c):
    # Reveals and refusals reach audit_log through the background writer, at
    # any time (test_audit_outside.py): the rows written in transactions count.
    return {t: one(c, f"select count(*) from identity.{t}" + (
        " where action not like '%%.refused' and action <> 'credential.revealed'" if t == "audit_log" else ""))
        for t in TABLES}


VALID = ["api_alice", "api_bob", "api_svc", "api_rotated_old", "api_rotated_new", "jwt_hs", "jwt_es_old", "jwt_es"]
REFUSED = ["api_revoked", "api_dave", "jwt_revoked", "jwt_session", "jwt_deleted"]


def verdict(c, token):
    """None when `token` authenticates, else the refusal's message."""
    try:
        with c.transaction():
            if token.startswith("idt_"):
                c.execute("select identity.verify_api_token(%s)", [token])
            else:
                c.execute("select identity.verify_jwt(%s)", [token])
        return None
    except psycopg.errors.InvalidAuthorizationSpecification as e:
        return str(e)


def answers(c, w):
    """What the database answers that a restore must not change."""
    u = w["users"]
    hook_event = {"user_id": u["alice"], "claims": {
        "aud": "authenticated", "exp": 2000000000, "iat": 1999996400, "sub": u["alice"], "email": "alice@backup.test",
        "phone": "", "role": "authenticated", "aal": "aal1", "session_id": "00000000-0000-0000-0000-000000000001",
        "is_anonymous": False}}
    return {
        "tokens": {k: verdict(c, w[k]) for k in VALID + REFUSED},
        "jwks": one(c, "select identity.jwks()"),
        "hook": one(c, "select identity.custom_access_token_hook(%s::jsonb)", [json.dumps(hook_event)]),
        "secret_system": as_user(c, u["alice"], "select identity.reveal_credential_secret(%s)", [w["cred_system"]]),
        "secret_own": as_user(c, u["alice"], "select identity.reveal_credential_secret(%s)", [w["cred_own"]]),
        "usage": as_user(c, u["alice"], "select identity.credential_usage(%s) - 'recent'", [w["cred_system"]]),
        "flags_bob": one(c, "select identity.feature_flags(%s)", [u["bob"]]),
        "subscription": one(c, "select identity.subscription_status(%s)", [u["alice"]]),
        "users": one(c, "select jsonb_agg(identity.user_by_id(id) order by id) from identity.users"),
    }


def dump(fmt, path):
    subprocess.run([f"{BIN}/pg_dump", "-U", "postgres", f"-F{fmt}", "-f", path, SRC], check=True,
                   capture_output=True)


def check_restored(db, w, long_lived=None):
    with connect(db) as c:
        assert counts(c) == w["counts"]
        got = answers(c, w)
        assert got == w["answers"]
        assert all(got["tokens"][k] is None for k in VALID), got["tokens"]
        assert all(got["tokens"][k] is not None for k in REFUSED), got["tokens"]
        assert got["secret_system"] == w["secret_system"] and got["secret_own"] == w["secret_own"]
        # New tokens are signed with the restored active key.
        new = one(c, "select identity.issue_access_token(%s)", [w["users"]["alice"]])
        assert one(c, "select identity.decode_jwt(%s)->'header'->>'kid'", [new]) == w["active_kid"]
        assert verdict(c, new) is None
        # New audit rows and events get ids after the restored ones.
        top_audit, top_event = one(c, "select max(id) from identity.audit_log"), one(c, "select max(id) from identity.events")
        uid = one(c, "select identity.provision_user('idp|after-restore', 'after@backup.test')->'user'->>'id'")
        assert one(c, "select min(id) from identity.audit_log where target_id = %s", [uid]) > top_audit
        assert one(c, "select min(id) from identity.events where user_id = %s", [uid]) > top_event
        # The audit trail's hash chains came back intact, and new rows extend them.
        v = one(c, "select identity.verify_audit_log()")
        assert v["valid"] and v["rows_checked"] == one(c, "select count(*) from identity.audit_log"), v
        # The deleted user's id is still never provisioned again.
        with pytest.raises(psycopg.Error):
            c.execute("select identity.provision_user('idp|dave-again', 'dave2@backup.test', user_id => %s)",
                      [w["users"]["dave"]])
    if long_lived is not None:
        got = {k: verdict(long_lived, w[k]) for k in VALID + REFUSED}
        assert got == w["answers"]["tokens"]


def test_custom_format_with_pg_restore(source, tmp_path):
    """pg_dump -Fc, pg_restore into a database where the extension was
    created first and a connection has already verified tokens (its caches
    hold the empty database's state)."""
    path = str(tmp_path / "identity.dump")
    os.chmod(tmp_path, 0o755)
    dump("c", path)
    db = "backup_custom"
    recreate(db, with_extension=True)
    with connect(db) as long_lived:
        # Before the restore the deleted user and the revoked jti are unknown
        # here: their JWTs verify, and the caches remember that.
        assert verdict(long_lived, source["jwt_deleted"]) is None
        assert verdict(long_lived, source["jwt_revoked"]) is None
        subprocess.run([f"{BIN}/pg_restore", "-U", "postgres", "--exit-on-error", "-d", db, path], check=True,
                       capture_output=True)
        check_restored(db, source, long_lived)


def test_plain_format_with_psql(source, tmp_path):
    """pg_dump -Fp, replayed by psql into a fresh database."""
    path = str(tmp_path / "identity.sql")
    dump("p", path)
    text = open(path).read()
    # The dump holds no secret in clear.
    for k in ["secret_system", "secret_own", "api_alice", "api_svc"]:
        assert source[k] not in text, k
    db = "backup_plain"
    recreate(db)
    subprocess.run([f"{BIN}/psql", "-U", "postgres", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", path],
                   check=True, capture_output=True)
    check_restored(db, source)


def test_only_a_superuser_can_dump_it(source, tmp_path):
    """A role with the user level cannot dump the tables (no grant on the
    whole rows and sequences, RLS): pg_dump fails rather than leaving rows out.
    (Last: its grant adds an audit row to the source.)"""
    with connect(SRC) as c:
        c.execute("do $$ begin create role backup_dumper login; exception when duplicate_object then null; end $$")
        c.execute("select identity.grant_access('backup_dumper', 'user')")
    r = subprocess.run([f"{BIN}/pg_dump", "-U", "backup_dumper", "-f", str(tmp_path / "x.sql"), SRC], capture_output=True)
    # pg_dump 15 stops at the first table ("permission denied"); 18 at a
    # sequence it cannot read ("user may lack SELECT privilege").
    assert r.returncode != 0
    assert b"permission denied" in r.stderr or b"lack SELECT privilege" in r.stderr
