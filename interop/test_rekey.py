"""The encryption key can be rotated without losing a row: credentials and
private signing keys sealed under key 1 still decrypt and sign with key 2
current and key 1 listed in identity.previous_encryption_keys; identity.rekey
re-seals them in batches (while another session changes a secret); after it
returns 0, key 1 can be dropped and everything still works; a value whose key
is not configured is 55000 with a hint naming the key id it needs; a dump
taken before the rotation restores and decrypts with key 1 listed as
previous."""
import base64
import hashlib
import os
import subprocess
import threading

import psycopg
import pytest

from conftest import server

DB = "rekey_src"
BIN = os.environ["PG_BIN"]
KEY1 = os.environ["IDENTITY_TEST_ENCRYPTION_KEY"]  # the cluster's configured key
KEY2 = base64.b64encode(bytes(range(32, 64))).decode()
USER = "00000000-0000-0000-0000-0000000e1001"


def key_id(b64):
    """The id identity records with each sealed value (README: key rotation)."""
    return hashlib.sha256(b"identity-key-id:" + base64.b64decode(b64)).digest()[:8].hex()


def connect(db, current=None, previous=None):
    c = psycopg.connect(**server(db), autocommit=True)
    if current is not None:
        c.execute("select set_config('identity.encryption_key', %s, false)", [current])
    if previous is not None:
        c.execute("select set_config('identity.previous_encryption_keys', %s, false)", [previous])
    return c


def one(c, sql, args=()):
    return c.execute(sql, args).fetchone()[0]


def reveal_all(c):
    return sorted(r[0] for r in c.execute(
        "select identity.reveal_credential_secret(id) from identity.credentials order by id"))


def signs_and_verifies(c):
    t = one(c, "select identity.sign_jwt('{\"sub\": \"%s\"}')" % USER)
    return one(c, "select identity.decode_jwt(%s)#>>'{header,alg}'", [t]), one(c, "select identity.verify_jwt(%s)->>'sub'", [t])


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    with connect("postgres") as c:
        for d in [DB, "rekey_restored"]:
            c.execute(f"drop database if exists {d} with (force)")
        c.execute(f"create database {DB}")
    with connect(DB) as c:
        c.execute("create extension identity")
        c.execute("insert into identity.users (id, email) values (%s, 'rekey@example.com')", [USER])
        c.execute("select identity.create_system_credential(%s, 'openrouter', %s)", [USER, "sk-or-v1-rekey-secret-0000"])
        c.execute("select set_config('request.jwt.claims', %s, false)", ['{"sub": "%s", "role": "authenticated"}' % USER])
        for i in range(1, 4):
            c.execute("select identity.create_credential('openrouter', %s, %s)", [f"c{i}", f"sk-or-v1-rekey-secret-{i:04d}"])
        c.execute("select set_config('request.jwt.claims', '', false)")
        kid = one(c, "select identity.generate_signing_key('ES256')")
        c.execute("select identity.activate_signing_key(%s)", [kid])
        c.execute("select identity.generate_signing_key('EdDSA')")  # a next key, sealed too
    dump = tmp_path_factory.mktemp("rekey") / "before.dump"
    subprocess.run([f"{BIN}/pg_dump", "-Fc", "-f", str(dump), "-h", os.environ["PGHOST"], "-p", os.environ["PGPORT"],
                    "-U", "postgres", DB], check=True, capture_output=True)
    yield dump
    with connect("postgres") as c:
        for d in [DB, "rekey_restored"]:
            c.execute(f"drop database if exists {d} with (force)")


EXPECTED = [f"sk-or-v1-rekey-secret-{i:04d}" for i in range(4)]


def test_rotation_keeps_everything_usable_and_rekey_finishes(db):
    with connect(DB) as c:
        assert reveal_all(c) == EXPECTED
        sealed_under = {r[0] for r in c.execute(
            "select encode(substr(ciphertext, 2, 8), 'hex') from identity.credentials union all "
            "select encode(substr(private_key_ciphertext, 2, 8), 'hex') from identity.signing_keys")}
        assert sealed_under == {key_id(KEY1)}
    # Key 2 current, key 1 previous, in new sessions (nothing cached).
    with connect(DB, KEY2, KEY1) as c:
        assert reveal_all(c) == EXPECTED
        assert signs_and_verifies(c) == ("ES256", USER)
    # Rekey in batches of 2 while another session keeps changing a secret.
    stop = threading.Event()
    changed = []

    def writer():
        with connect(DB, KEY2, KEY1) as w:
            w.execute("select set_config('request.jwt.claims', %s, false)", ['{"sub": "%s", "role": "authenticated"}' % USER])
            cid = one(w, "select id from identity.credentials where name = 'c1'")
            n = 0
            while not stop.is_set():
                n += 1
                w.execute("select identity.update_credential(%s, jsonb_build_object('secret', %s::text))",
                          [cid, f"sk-or-v1-rekey-changed-{n:04d}"])
                changed.append(f"sk-or-v1-rekey-changed-{n:04d}")

    t = threading.Thread(target=writer)
    t.start()
    counts = []
    try:
        with connect(DB, KEY2, KEY1) as c:
            while True:
                try:
                    n = one(c, "select identity.rekey(2)")
                except psycopg.Error as err:
                    raise AssertionError(f"{err} | {err.diag.message_detail}") from err
                counts.append(n)
                if n == 0:
                    break
                assert len(counts) < 50
    finally:
        stop.set()
        t.join()
    assert counts[-1] == 0 and all(0 < n <= 2 for n in counts[:-1]) and len(counts) >= 3, counts
    # Key 1 dropped: everything still decrypts and signs.
    with connect(DB, KEY2, "") as c:
        got = reveal_all(c)
        assert got == sorted([changed[-1] if changed else EXPECTED[1]] + [EXPECTED[0], EXPECTED[2], EXPECTED[3]])
        assert signs_and_verifies(c) == ("ES256", USER)
        assert one(c, "select identity.rekey()") == 0
        assert one(c, "select count(*) from identity.audit_log where action = 'encryption.rekeyed'") == len(counts) - 1
    # Under key 1 alone the values now say which key they need.
    with connect(DB, KEY1, "") as c:
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
            reveal_all(c)
        assert key_id(KEY2) in (e.value.diag.message_hint or "")
        assert KEY2 not in str(e.value) and KEY1 not in str(e.value)


def test_a_dump_from_before_the_rotation_restores_with_key_1_as_previous(db):
    with connect("postgres") as c:
        c.execute("create database rekey_restored")
    with connect("rekey_restored") as c:
        c.execute("create extension identity")
    subprocess.run([f"{BIN}/pg_restore", "--data-only", "-d", "rekey_restored", "-h", os.environ["PGHOST"],
                    "-p", os.environ["PGPORT"], "-U", "postgres", str(db)], check=True, capture_output=True)
    with connect("rekey_restored", KEY2, KEY1) as c:
        assert reveal_all(c) == EXPECTED
        assert signs_and_verifies(c) == ("ES256", USER)
    with connect("rekey_restored", KEY2, "") as c:
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
            reveal_all(c)
        assert key_id(KEY1) in (e.value.diag.message_hint or "")


def test_previous_keys_are_superuser_only_and_hidden(db):
    with connect(DB) as c:
        c.execute("do $$ begin create role rekey_probe login; exception when duplicate_object then null; end $$")
        assert one(c, "select count(*) from pg_settings where name = 'identity.previous_encryption_keys'") == 0
    with psycopg.connect(**{**server(DB), "user": "rekey_probe"}, autocommit=True) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("show identity.previous_encryption_keys")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("set identity.previous_encryption_keys = 'x'")
    with connect(DB) as c:
        c.execute("drop role rekey_probe")
