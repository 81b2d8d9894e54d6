"""Secrets never reach the server log, even with every statement logged:
log_statement = 'all', log_min_duration_statement = 0, the default
log_parameter_max_length = -1 (every bound parameter in full) and
auto_explain with log_analyze. Every function that takes a secret or a
token is called with bound parameters (extended protocol: Postgres logs
`parameters: $n = '...'`), with literals (simple protocol: the literal is in
the logged statement), and with failing inputs (the failing statement is
logged as STATEMENT). The log is grepped for each secret: zero hits. The
same calls with identity.redact_logs off do put the secrets in the log, so
the check can fail."""
import json
import os
import secrets as rnd
import time

import psycopg
import pytest
from psycopg import sql

from conftest import fresh_database

LOG = os.environ["IDENTITY_SERVER_LOG"]
LOGGING = ["set log_statement = 'all'", "set log_min_duration_statement = 0",
           "set log_parameter_max_length = -1", "set log_parameter_max_length_on_error = -1",
           "load 'auto_explain'", "set auto_explain.log_min_duration = 0", "set auto_explain.log_analyze = on"]


@pytest.fixture(scope="module")
def db():
    with fresh_database("redaction") as c:
        yield c


def log_since(offset):
    time.sleep(0.3)  # the logging collector is asynchronous
    with open(LOG, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def run_everything(c, tag):
    """Calls every secret-taking function three ways; returns the secrets
    used (fresh per run, so a hit belongs to this run)."""
    USER = {"on": "00000000-0000-0000-0000-0000000e2001", "off": "00000000-0000-0000-0000-0000000e2002"}[tag]
    c.execute("insert into identity.users (id, email) values (%s, %s)", [USER, f"redact-{tag}@example.com"])
    for s in LOGGING:
        c.execute(s)
    (token,) = c.execute("select token from identity.create_api_token(%s, %s)", [USER, "redact " + tag]).fetchone()
    (jwt,) = c.execute("select identity.sign_jwt(%s::jsonb)", [json.dumps({"sub": USER})]).fetchone()
    s_bound = f"sk-or-v1-bound-{tag}-{rnd.token_hex(8)}"
    s_literal = f"sk-or-v1-literal-{tag}-{rnd.token_hex(8)}"
    s_system = f"sk-or-v1-system-{tag}-{rnd.token_hex(8)}"
    s_update = f"sk-or-v1-update-{tag}-{rnd.token_hex(8)}"
    s_dup = f"sk-or-v1-dup-{tag}-{rnd.token_hex(8)}"
    key = "cmVkYWN0LXRlc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWY="  # not the cluster's key
    bound = [
        ("select identity.verify_api_token(%s)", [token]),
        ("select identity.user_by_api_token(%s)", [token]),
        ("select identity.exchange_api_token(%s)", [token]),
        ("select identity.authenticate(%s)", [token]),
        ("select identity.verify_jwt(%s)", [jwt]),
        ("select * from identity.try_verify_jwt(%s)", [jwt]),
        ("select identity.explain_jwt(%s)", [jwt]),
        ("select identity.decode_jwt(%s)", [jwt]),
        ("select identity.authenticate(%s)", [jwt]),
        ("select identity.create_system_credential(%s, 'openrouter', %s)", [USER, s_system]),
        ("select set_config('identity.previous_encryption_keys', %s, false)", [key]),
    ]
    for q, args in bound:
        c.execute(q, args)
    c.execute("reset identity.previous_encryption_keys")
    # As the user: create (bound), create (literal), update (literal jsonb),
    # and a failing create (duplicate name) with the secret as a literal.
    with c.transaction():
        c.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps({"sub": USER, "role": "authenticated"})])
        c.execute("select identity.create_credential('openrouter', %s, %s)", ["b-" + tag, s_bound])
        cur = psycopg.ClientCursor(c)
        cur.execute("select identity.create_credential('openrouter', %s, %s)", ["l-" + tag, s_literal])
        cid = cur.execute("select id from identity.credentials where name = %s", ["l-" + tag]).fetchone()[0]
        cur.execute("select identity.update_credential(%s, %s::jsonb)", [cid, json.dumps({"secret": s_update})])
    with pytest.raises(psycopg.errors.UniqueViolation):
        with c.transaction():
            c.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps({"sub": USER, "role": "authenticated"})])
            psycopg.ClientCursor(c).execute("select identity.create_credential('openrouter', %s, %s)", ["l-" + tag, s_dup])
    # Literal tokens (simple protocol), and failing ones.
    cur = psycopg.ClientCursor(c)
    cur.execute("select identity.verify_api_token(%s)", [token])
    cur.execute("select identity.verify_jwt(%s)", [jwt])
    c.execute(sql.SQL("select set_config('identity.previous_encryption_keys', {}, false)").format(sql.Literal(key)))
    c.execute("reset identity.previous_encryption_keys")
    c.execute("select identity.revoke_api_token((identity.verify_api_token(%s)->>'token_id')::uuid)", [token])
    for q in ["select identity.verify_api_token(%s)", "select identity.exchange_api_token(%s)"]:
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            c.execute(q, [token])
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            cur.execute(q, [token])
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
        cur.execute("select identity.verify_jwt(%s)", [jwt + "x"])
    # A token inside an unrelated failing statement (an error message quoting it).
    with pytest.raises(psycopg.Error):
        cur.execute("select %s::uuid", [token])
    return {"api token": token, "api token body": token.split("_", 1)[1], "jwt": jwt,
            "jwt payload": jwt.split(".")[1], "bound credential secret": s_bound,
            "literal credential secret": s_literal, "system credential secret": s_system,
            "updated credential secret": s_update, "duplicate credential secret": s_dup,
            "previous encryption key": key}


def test_with_redaction_no_secret_reaches_the_log(db):
    offset = os.path.getsize(LOG)
    used = run_everything(db, "on")
    log = log_since(offset)
    assert "identity.create_credential" in log and "parameters: $1 = " in log and "Query Text:" in log, \
        "statement logging, parameter logging and auto_explain are on"
    hits = {name: log.count(value) for name, value in used.items() if value in log}
    assert hits == {}
    assert "[redacted]" in log


def test_without_redaction_the_same_calls_log_the_secrets(db):
    db.execute("set identity.redact_logs = off")
    try:
        offset = os.path.getsize(LOG)
        used = run_everything(db, "off")
        log = log_since(offset)
    finally:
        db.execute("reset identity.redact_logs")
    missing = [name for name, value in used.items() if value not in log]
    assert missing == [], "each secret is logged when redaction is off"


def test_only_a_superuser_turns_redaction_off(db):
    db.execute("do $$ begin create role redact_probe login; exception when duplicate_object then null; end $$")
    try:
        with psycopg.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"], user="redact_probe",
                             dbname="redaction", autocommit=True) as c:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("set identity.redact_logs = off")
            assert c.execute("show identity.redact_logs").fetchone()[0] == "on"
    finally:
        db.execute("drop role redact_probe")


# Issue 30, item 4: the leaks the first redactor let through, and item 5: a
# statement built to make it spin.
PGRST_CALL = (
    'WITH pgrst_source AS (SELECT pgrst_call.pgrst_scalar FROM (SELECT $1::json AS json_data) pgrst_payload, '
    'LATERAL (SELECT "provider", "name", "secret" FROM json_to_record(pgrst_payload.json_data) '
    'AS _("provider" text, "name" text, "secret" text) LIMIT 1) pgrst_body , '
    'LATERAL (SELECT "identity"."create_credential"("provider" := pgrst_body."provider", '
    '"name" := pgrst_body."name", "secret" := pgrst_body."secret") pgrst_scalar) pgrst_call) '
    'SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, '
    "coalesce((json_agg(_postgrest_t.pgrst_scalar)->0)::text, 'null') AS body, "
    "nullif(current_setting('response.headers', true), '') AS response_headers, "
    "nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted "
    'FROM (SELECT "pgrst_source".* FROM "pgrst_source") _postgrest_t')


def run_issue30(c, tag):
    """The reproduced leaks, each with a fresh secret; returns them."""
    USER = {"on": "00000000-0000-0000-0000-0000000e3001", "off": "00000000-0000-0000-0000-0000000e3002"}[tag]
    c.execute("insert into identity.users (id, email) values (%s, %s)", [USER, f"issue30-{tag}@example.com"])
    for s in LOGGING:
        c.execute(s)
    used = {name: f"sk-or-v1-{name}-{tag}-{rnd.token_hex(8)}" for name in
            ["pgrst", "pgrstbad", "syntax", "comment", "trim", "execute", "backslash", "jsondetail"]}
    cur = psycopg.ClientCursor(c)

    def failing(run, *args):
        with pytest.raises(psycopg.Error):
            with c.transaction():
                c.execute("select set_config('request.jwt.claims', %s, true)",
                          [json.dumps({"sub": USER, "role": "authenticated"})])
                run(*args)

    with c.transaction():
        c.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps({"sub": USER, "role": "authenticated"})])
        # supabase.rpc('create_credential', {...}) through PostgREST: the body is $1.
        c.execute(PGRST_CALL.replace("$1", "%s"),
                  [json.dumps({"provider": "openrouter", "name": "p-" + tag, "secret": used["pgrst"]})])
        # A comment inside the call; an expression around the parameter.
        cur.execute("select identity.create_credential/**/('openrouter', %s, %s)", ["c-" + tag, used["comment"]])
        c.execute("select identity.create_credential('openrouter', %s, trim(%s))", ["t-" + tag, used["trim"]])
        c.execute("prepare p30(text, text, text) as select identity.create_credential($1, $2, $3)")
        cur.execute("execute p30('openrouter', %s, %s)", ["e-" + tag, used["execute"]])
        c.execute("deallocate p30")
    # A malformed PostgREST body: Postgres' JSON error quotes it.
    failing(lambda: c.execute(PGRST_CALL.replace("$1", "%s"),
                              ['{"provider": "openrouter", "name": "b", "secret": ' + used["pgrstbad"] + '}']))
    # A syntax error at the literal; a malformed JSON literal; an E'' string
    # ending in a backslash (used to panic the redactor).
    failing(lambda: c.execute(f"select identity.create_credential('openrouter', 'main' '{used['syntax']}')"))
    failing(lambda: c.execute("select identity.update_credential('00000000-0000-0000-0000-000000000001', "
                              f"'{{\"secret\": \"{used['jsondetail']}\", }}')"))
    failing(lambda: c.execute(f"select identity.verify_jwt(E'{used['backslash']}\\')"))
    return used


def test_issue30_leaks_stay_out_of_the_log(db):
    offset = os.path.getsize(LOG)
    used = run_issue30(db, "on")
    log = log_since(offset)
    assert "pgrst_body" in log and "JSON data" in log and "[not logged: redacted]" in log, log[-3000:]
    assert {name: log.count(value) for name, value in used.items() if value in log} == {}


def test_issue30_the_same_calls_leak_without_redaction(db):
    db.execute("set identity.redact_logs = off")
    try:
        offset = os.path.getsize(LOG)
        used = run_issue30(db, "off")
        log = log_since(offset)
    finally:
        db.execute("reset identity.redact_logs")
    assert [name for name, value in used.items() if value not in log] == []


def test_issue30_a_huge_adversarial_statement_is_answered_at_once(db):
    for size in [2 << 20, (1 << 20) - 64]:
        stmt = ("select 1/0 /* verify_jwt( " * (size // 26 + 1))[:size] + " */"
        start = time.monotonic()
        with pytest.raises(psycopg.Error):
            db.execute("set statement_timeout = '5s'")
            db.execute(stmt)
        elapsed = time.monotonic() - start
        db.execute("reset statement_timeout")
        assert elapsed < 3, f"{size} bytes: {elapsed:.2f} s"
