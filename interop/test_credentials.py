"""AI-service credentials (API.md 7) from real clients: one default per user
under concurrent set_default calls, no overspending under concurrent usage
recorders, and the plaintext secret nowhere on disk (data directory, WAL)
or in a pg_dump after create, update and delete."""
import json
import os
import subprocess
from decimal import Decimal

import psycopg
import pytest
from conftest import fresh_database, run_concurrently, server

DB = "credentials_interop"


@pytest.fixture(scope="module")
def conn():
    with fresh_database(DB) as c:
        c.execute("do $$ begin create role authenticated nologin; exception when duplicate_object then null; end $$")
        c.execute("select identity.grant_access('authenticated', 'user')")
        yield c


def provision(conn, name):
    (p,) = conn.execute("select identity.provision_user(%s, %s)", [f"idp|{name}", f"{name}@cred.test"]).fetchone()
    return p["user"]["id"]


def as_user(user_id):
    """A connection acting as `user_id` (authenticated, request claims)."""
    c = psycopg.connect(**server(DB), autocommit=True)
    c.execute("set role authenticated")
    c.execute("select set_config('request.jwt.claims', %s, false)", [json.dumps({"sub": user_id, "role": "authenticated"})])
    return c


def test_one_default_under_concurrent_set_default(conn):
    """Every path that moves the default, mixed and concurrent: set_default,
    create_credential(is_default) and disable (which clears a default) /
    enable. They lock the owner's row first, so they queue: no
    deadlock, no unique violation, never two defaults."""
    uid = provision(conn, "defaults")
    with as_user(uid) as c:
        creds = [c.execute("select identity.create_credential('openrouter', %s, %s)",
                           [f"key{i}", f"sk-or-v1-default-{i:04d}-secret"]).fetchone()[0]["id"] for i in range(8)]
    for rnd in range(10):
        def move_default(i):
            with as_user(uid) as c:
                kind = (i + rnd) % 4
                if kind == 0:
                    c.execute("select identity.set_default_credential(%s)", [creds[i]])
                elif kind == 1:
                    c.execute("select identity.set_credential_enabled(%s, false)", [creds[(i + 1) % 8]])
                elif kind == 2:
                    c.execute("select identity.create_credential('openrouter', %s, %s, true)",
                              [f"new{rnd}-{i}", f"sk-or-v1-new-{rnd}-{i}-secret"])
                else:
                    c.execute("select identity.set_credential_enabled(%s, false)", [creds[i]])
                    c.execute("select identity.set_credential_enabled(%s, true)", [creds[i]])
                    c.execute("select identity.set_default_credential(%s)", [creds[i]])
        _, errors = run_concurrently(8, move_default)
        assert errors == [], "no caller fails: they serialize on the owner"
        (n,) = conn.execute("select count(*) from identity.credentials where user_id = %s and is_default", [uid]).fetchone()
        assert n == 1


def test_credit_limit_cannot_be_overspent_concurrently(conn):
    uid = provision(conn, "spender")
    with as_user(uid) as c:
        (cred,) = c.execute("select identity.create_credential('openrouter', 'limited', 'sk-or-v1-limited-secret', "
                            "false, 10)").fetchone()
    cid = cred["id"]

    def spend(_i):
        ok = refused = 0
        with as_user(uid) as c:
            for _ in range(4):
                try:
                    c.execute("select identity.record_credential_usage(%s, 1.5, 100)", [cid])
                    ok += 1
                except psycopg.errors.InsufficientPrivilege as e:
                    assert "credit limit" in e.diag.message_primary
                    refused += 1
        return ok, refused

    results, errors = run_concurrently(8, spend)
    assert errors == []
    ok = sum(r[0] for r in results)
    assert ok == 6, "floor(10 / 1.5) calls fit; every other call is refused"
    assert sum(r[1] for r in results) == 32 - 6
    (total, calls, exhausted) = conn.execute(
        "select usage_total, (select count(*) from identity.credential_usage where credential_id = c.id), exhausted_at "
        "from identity.credentials c where id = %s", [cid]).fetchone()
    assert total == Decimal("9.0") and calls == 6 and exhausted is None


def test_plaintext_never_reaches_disk_or_dump(conn):
    secrets = ["sk-or-v1-ondisk-FIRST-7a1c93e0b55d", "sk-or-v1-ondisk-SECOND-0f4e2d19c8aa", "sk-or-v1-ondisk-DELETED-93bd11f0"]
    uid = provision(conn, "ondisk")
    with as_user(uid) as c:
        (cred,) = c.execute("select identity.create_credential('openrouter', 'disk', %s)", [secrets[0]]).fetchone()
        c.execute("select identity.update_credential(%s, %s)", [cred["id"], json.dumps({"secret": secrets[1]})])
        (gone,) = c.execute("select identity.create_credential('openrouter', 'gone', %s)", [secrets[2]]).fetchone()
        assert c.execute("select identity.reveal_credential_secret(%s)", [gone["id"]]).fetchone()[0] == secrets[2]
        c.execute("select identity.delete_credential(%s)", [gone["id"]])
    conn.execute("checkpoint")
    conn.execute("select pg_switch_wal()")
    (datadir,) = conn.execute("show data_directory").fetchone()
    needles = [s.encode() for s in secrets] + [s.encode("utf-16-le") for s in secrets]
    scanned = 0
    for root, _dirs, files in os.walk(datadir):
        for f in files:
            path = os.path.join(root, f)
            try:
                data = open(path, "rb").read()
            except OSError:
                continue
            scanned += 1
            for n in needles:
                assert n not in data, f"a secret in clear in {path}"
    assert scanned > 100, "the data directory (heap, indexes, WAL) was scanned"
    dump = subprocess.run([os.path.join(os.environ["PG_BIN"], "pg_dump"), "-h", os.environ["PGHOST"], "-p", os.environ["PGPORT"],
                           "-U", "postgres", "-d", DB], capture_output=True, check=True).stdout
    assert b"identity.credentials" in dump or b"credentials" in dump
    for n in needles:
        assert n not in dump, "a secret in clear in pg_dump"
    # The live one still decrypts: the scan found ciphertext, not nothing.
    with as_user(uid) as c:
        assert c.execute("select identity.reveal_credential_secret(%s)", [cred["id"]]).fetchone()[0] == secrets[1]
