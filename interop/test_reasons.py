"""Reason codes (API.md 16, README "Reason codes"): a client reads the code
from the start of DETAIL (`e.diag.message_detail`, `^[a-z_]+` up to the
first colon or the end), from `details` of a PostgREST error body, and from
the `code` column of try_verify_jwt and try_verify_api_token, which never
raises for any token text."""
import json
import pathlib
import re

import psycopg
import pytest

from conftest import fresh_database, server

DB = "reasons"
UID = "00000000-0000-0000-0000-0000000e3101"
SUSPENDED = "00000000-0000-0000-0000-0000000e3102"
CODE = re.compile(r"^([a-z_]+)(?::|$)")
README = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
CATALOG = set(re.findall(r"^\| `([a-z_]+)` \|", README.split("\n## Reason codes")[1].split("\n## ")[0], flags=re.M))


@pytest.fixture(scope="module")
def db():
    with fresh_database(DB) as c:
        c.execute("do $$ begin create role authenticated nologin; exception when duplicate_object then null; end $$")
        c.execute("select identity.grant_access('authenticated', 'user')")
        c.execute("insert into identity.users (id, email) values (%s, 'reasons@interop.test'), (%s, 'suspended@interop.test')",
                  [UID, SUSPENDED])
        yield c


def tokens(db):
    t = {}
    for name in ["valid", "revoked", "expired"]:
        t[name] = db.execute("select token from identity.create_api_token(%s, %s)", [UID, name]).fetchone()[0]
    t["suspended"] = db.execute("select token from identity.create_api_token(%s, 's')", [SUSPENDED]).fetchone()[0]
    db.execute("select identity.revoke_api_token(id) from identity.api_tokens where name = 'revoked' and user_id = %s", [UID])
    db.execute("update identity.api_tokens set expires_at = now() - interval '1 minute' where name = 'expired' and user_id = %s", [UID])
    db.execute("update identity.users set status = 'suspended' where id = %s", [SUSPENDED])
    v = t["valid"]
    t["bad_checksum"] = v[:-1] + ("B" if v[-1] == "A" else "A")
    return t


def code_of(detail):
    m = CODE.match(detail or "")
    assert m, f"DETAIL without a code: {detail!r}"
    assert m.group(1) in CATALOG, m.group(1)
    return m.group(1)


def refusal(sql, args=()):
    with psycopg.connect(**server(DB)) as c:
        c.execute("set role authenticated")
        with pytest.raises(psycopg.Error) as e:
            c.execute(sql, args)
    return e.value


def test_the_readme_catalog_is_the_documented_set(db):
    for c in ["token_expired", "token_revoked", "bad_signature", "unknown_kid", "user_suspended",
              "rate_limited", "usage_exceeded", "token_disabled", "bad_checksum", "unknown_token"]:
        assert c in CATALOG


def test_jwt_refusals_carry_their_code(db):
    good = db.execute("select identity.sign_jwt(jsonb_build_object('sub', %s::text))", [UID]).fetchone()[0]
    expired = db.execute("select identity.sign_jwt('{\"sub\": \"x\", \"exp\": 1000}')").fetchone()[0]
    h, p, s = good.split(".")
    cases = [
        ((expired,), "token_expired"),
        ((f"{h}.{p}.{expired.split('.')[2]}",), "bad_signature"),
        (("a.b",), "malformed"),
        (("a" * 20000,), "token_too_large"),
        ((good, "other"), "wrong_audience"),
    ]
    for args, want in cases:
        sql = "select identity.verify_jwt(%s)" if len(args) == 1 else "select identity.verify_jwt(%s, %s)"
        e = refusal(sql, args)
        assert e.sqlstate == "28000"
        assert code_of(e.diag.message_detail) == want
        for a in args:  # no token in the DETAIL
            assert len(a) < 8 or a not in e.diag.message_detail
        with psycopg.connect(**server(DB)) as c:
            c.execute("set role authenticated")
            q = "select valid, code from identity.try_verify_jwt(%s)" if len(args) == 1 else \
                "select valid, code from identity.try_verify_jwt(%s, %s)"
            assert c.execute(q, args).fetchone() == (False, want)
    with psycopg.connect(**server(DB)) as c:
        assert c.execute("select valid, code from identity.try_verify_jwt(%s)", [good]).fetchone() == (True, None)


def test_api_token_refusals_and_try_verify_api_token(db):
    t = tokens(db)
    want = {"revoked": "token_revoked", "expired": "token_expired", "suspended": "user_suspended",
            "bad_checksum": "bad_checksum"}
    with psycopg.connect(**server(DB)) as c:
        c.execute("set role authenticated")
        valid, code, principal = c.execute("select * from identity.try_verify_api_token(%s)", [t["valid"]]).fetchone()
        assert (valid, code) == (True, None) and principal["user_id"] == UID
        for name, code in want.items():
            assert c.execute("select valid, code, principal from identity.try_verify_api_token(%s)",
                             [t[name]]).fetchone() == (False, code, None), name
        for text, code in [(None, "missing_token"), ("", "malformed"), ("x" * (1 << 20), "malformed"),
                           ("garbage", "malformed"), ("idt_" + "é" * 18, "malformed"),
                           ("idt_" + "0" * 36, "bad_checksum")]:
            assert c.execute("select valid, code from identity.try_verify_api_token(%s)", [text]).fetchone() == \
                (False, code), (text or "")[:20]
    for name, code in want.items():
        e = refusal("select identity.verify_api_token(%s)", [t[name]])
        assert e.sqlstate == "28000" and code_of(e.diag.message_detail) == code
        assert t[name] not in e.diag.message_detail


def test_other_errors_carry_their_kinds_code(db):
    with psycopg.connect(**server(DB), autocommit=True) as c:
        c.execute("set role authenticated")
        c.execute("select set_config('request.jwt.claims', %s, false)", [json.dumps({"sub": UID, "role": "authenticated"})])
        for sql, state, code in [
            ("select identity.revoke_api_token('00000000-0000-0000-0000-00000000dead')", "P0002", "not_found"),
            (f"select identity.suspend_user('{UID}')", "42501", "forbidden"),
            (f"select identity.create_api_token('{UID}', repeat('n', 300))", "22023", "invalid_argument"),
            ("select identity.exchange_api_token(null)", "28000", "missing_token"),
        ]:
            with pytest.raises(psycopg.Error) as e:
                c.execute(sql)
            assert (e.value.sqlstate, code_of(e.value.diag.message_detail)) == (state, code), sql


def test_inside_a_postgrest_request_details_starts_with_the_code(db):
    expired = db.execute("select identity.sign_jwt('{\"sub\": \"x\", \"exp\": 1000}')").fetchone()[0]
    with psycopg.connect(**server(DB)) as c:
        c.execute("set local role authenticated")
        c.execute("select set_config('request.method', 'POST', true)")
        with pytest.raises(psycopg.Error) as e:
            c.execute("select identity.verify_jwt(%s)", [expired])
    assert e.value.sqlstate == "PGRST"
    body = json.loads(e.value.diag.message_primary)
    assert body["code"] == "28000" and code_of(body["details"]) == "token_expired"
    assert json.loads(e.value.diag.message_detail)["status"] == 401
