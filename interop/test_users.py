"""Users, service users, organizations (API.md 6) and events (9) from real
client connections: concurrent provisioning, LISTEN/NOTIFY on commit only,
and the authorization matrix of every users / flags / credentials function
for every kind of actor."""
import json
import time
import uuid

import psycopg
import pytest
from conftest import fresh_database, run_concurrently, server

DB = "users_interop"
ROLES = ["anon", "authenticated", "service_role"]


@pytest.fixture(scope="module")
def conn():
    with fresh_database(DB) as c:
        for r in ROLES:
            c.execute(f"do $$ begin create role {r} nologin; exception when duplicate_object then null; end $$")
        c.execute("select identity.grant_access('anon', 'user')")
        c.execute("select identity.grant_access('authenticated', 'user')")
        c.execute("select identity.grant_access('service_role', 'admin')")
        yield c


def connect():
    return psycopg.connect(**server(DB), autocommit=True)


def test_concurrent_provisioning_makes_exactly_one_user(conn):
    def provision(_i):
        with connect() as c:
            c.execute("set role service_role")
            (p,) = c.execute("select identity.provision_user(%s, %s, 'Con', 'Current')",
                             ["idp|concurrent", "concurrent@example.com"]).fetchone()
            return p

    results, errors = run_concurrently(8, provision)
    assert errors == []
    assert len(results) == 8
    assert len({p["user"]["id"] for p in results}) == 1, "every caller gets the same user"
    assert sum(p["created"] for p in results) == 1, "exactly one caller created it"
    assert sum(p["api_token"] is not None for p in results) == 1, "the token is shown once"
    (n,) = conn.execute("select count(*) from identity.users where external_id = 'idp|concurrent'").fetchone()
    assert n == 1
    (events,) = conn.execute("select count(*) from identity.events where type = 'user.created' and "
                             "payload->>'external_id' = 'idp|concurrent'").fetchone()
    assert events == 1


def test_events_are_notified_on_commit_only(conn):
    with connect() as listener, connect() as writer:
        listener.execute("listen identity_events")
        writer.autocommit = False
        writer.execute("set role service_role")
        writer.execute("select identity.provision_user('idp|notify', 'notify@example.com')")
        # Not committed yet: nothing delivered.
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
        writer.commit()
        got = list(listener.notifies(timeout=5, stop_after=2))
        types = sorted(json.loads(n.payload)["type"] for n in got)
        assert types == ["credential.requested", "user.created"]
        assert all(n.channel == "identity_events" for n in got)
        # Any role can LISTEN: the payload is the event's id and type, no tenant's ids.
        assert all(sorted(json.loads(n.payload)) == ["id", "type"] for n in got), [n.payload for n in got]
        ids = [json.loads(n.payload)["id"] for n in got]
        (rows,) = conn.execute("select count(*) from identity.events where id = any(%s)", [ids]).fetchone()
        assert rows == 2, "each notification names its outbox row"
        # Rolled back: no row, no notification.
        writer.execute("set role service_role")
        writer.execute("select identity.provision_user('idp|rolled-back', 'rolled@example.com')")
        writer.rollback()
        assert list(listener.notifies(timeout=1, stop_after=1)) == []
        (n,) = conn.execute("select count(*) from identity.events where payload->>'external_id' = 'idp|rolled-back'").fetchone()
        assert n == 0


# ---------------------------------------------------------------------------
# Authorization matrix. Organization A: admin_a, target (a user), user_a (a
# peer of the target), service_a (a service user); organization B: admin_b.
# Acting with real tokens' claims: ws_self and agent_self (the target's own
# websocket and agent tokens), scoped_svc (service_a's API token scoped to
# credentials:read, exchanged for a JWT). Every cell runs in its own
# transaction, rolled back afterwards.

ACTORS = ["system", "admin_a", "user_a", "self", "admin_b", "service_a", "anon", "ws_self", "agent_self", "scoped_svc"]


@pytest.fixture(scope="module")
def world(conn):
    conn.execute("set role service_role")
    (org_a,) = conn.execute("select identity.create_organization('Matrix A')").fetchone()
    (org_b,) = conn.execute("select identity.create_organization('Matrix B')").fetchone()
    ids = {}
    for name, org in [("admin_a", org_a), ("target", org_a), ("user_a", org_a), ("admin_b", org_b)]:
        (p,) = conn.execute("select identity.provision_user(%s, %s, %s, null, %s)",
                            [f"idp|m-{name}", f"{name}@matrix.test", name, org_a if org == org_a else org_b]).fetchone()
        ids[name] = uuid.UUID(p["user"]["id"])
    for admin in ["admin_a", "admin_b"]:
        conn.execute("select identity.update_user(%s, '{\"user_role\": \"admin\"}')", [ids[admin]])
    (svc, _tok) = conn.execute("select * from identity.create_service_user('svc@matrix.test', %s)", [org_a]).fetchone()
    ids["service_a"] = svc
    conn.execute("select identity.set_feature_flag('matrix.flag', true)")
    conn.execute("reset role")
    # The target's own credential, created as the target.
    target_claims = claims_of(conn, ids["target"])
    with conn.transaction():
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)", [target_claims])
        (cred,) = conn.execute("select identity.create_credential('openrouter', 'matrix', %s, true, 100)",
                               ["sk-or-v1-matrix-secret-0001"]).fetchone()
    ids["self"] = ids["target"]
    # One API token of the target's, created by system.
    conn.execute("set role service_role")
    (token_id,) = conn.execute("select token_id from identity.create_api_token(%s, 'matrix token')", [ids["target"]]).fetchone()
    # The claims of real derived and scoped tokens.
    token_claims = {}
    (scoped,) = conn.execute("select token from identity.create_api_token(%s, 'scoped', scopes => '{credentials:read}')",
                             [ids["service_a"]]).fetchone()
    for actor, sql, arg in [
        ("ws_self", "select identity.create_websocket_token(%s)", ids["target"]),
        ("agent_self", "select identity.create_agent_token(%s)", ids["target"]),
        ("scoped_svc", "select identity.exchange_api_token(%s)", scoped),
    ]:
        (jwt,) = conn.execute(sql, [arg]).fetchone()
        (c,) = conn.execute("select identity.decode_jwt(%s)->'payload'", [jwt]).fetchone()
        token_claims[actor] = json.dumps(c)
    conn.execute("reset role")
    return {"org_a": org_a, "org_b": org_b, "ids": ids, "cred": uuid.UUID(cred["id"]), "token": token_id,
            "claims": token_claims}


def claims_of(conn, user_id):
    """Claims as the hook puts them into a JWT, read as a superuser."""
    uid, role, org, svc = conn.execute(
        "select id, user_role, organization_id, is_service_user from identity.users where id = %s", [user_id]).fetchone()
    # Issued after every change made so far: a change of role or
    # organization refuses tokens issued up to the end of its second.
    return json.dumps({"sub": str(uid), "role": "authenticated", "user_role": role,
                       "organization_id": str(org) if org else None, "is_service_user": svc,
                       "iat": int(time.time()) + 1})


# Audit rows written in the caller's transaction. Reveals and refusals are
# recorded outside it, by the background writer (test_audit_outside.py):
# they are not counted here, where they may arrive at any time.
IN_TRANSACTION = ("select count(*) from identity.audit_log "
                  "where action not like '%.refused' and action <> 'credential.revealed'")


def run_as(conn, world, actor, sql, args):
    """(outcome, audit rows written in its transaction) of `sql` as `actor`, rolled back."""
    conn.autocommit = False
    try:
        (before,) = conn.execute(IN_TRANSACTION).fetchone()
        if actor == "system":
            conn.execute("set local role service_role")
        elif actor == "anon":
            conn.execute("set local role anon")
            conn.execute("select set_config('request.jwt.claims', '{\"role\": \"anon\"}', true)")
        else:
            claims = world["claims"].get(actor) or claims_of(conn, world["ids"][actor])
            conn.execute("set local role authenticated")
            conn.execute("select set_config('request.jwt.claims', %s, true)", [claims])
        try:
            conn.execute("savepoint cell")
            conn.execute(sql, args)
            outcome = "ok"
        except psycopg.Error as e:
            conn.execute("rollback to savepoint cell")
            outcome = e.sqlstate
            message = e.diag.message_primary
        else:
            message = None
        conn.execute("reset role")
        (after,) = conn.execute(IN_TRANSACTION).fetchone()
        return outcome, after - before, message
    finally:
        conn.rollback()
        conn.autocommit = True


def r(*cells):
    """A row: the seven human and service actors, then ws_self, agent_self
    and scoped_svc (by default: reads as the target's own, 42501 for all
    else; scoped_svc 42501 without the scope)."""
    return dict(zip(ACTORS, cells))


WRITE = ("42501", "42501", "42501")  # websocket, agent, scoped: never mint, change or reveal
READ_USER = r("ok", "ok", "P0002", "ok", "P0002", "P0002", "42501", "ok", "ok", "42501")
ADMIN_ON_USER = r("ok", "ok", "P0002", "42501", "P0002", "P0002", "42501", *WRITE)
SYSTEM_ONLY = r("ok", "42501", "42501", "42501", "42501", "42501", "42501", *WRITE)
OWNER_OF_CREDENTIAL = r("ok", "42501", "P0002", "ok", "P0002", "P0002", "42501", *WRITE)
READ_CREDENTIAL = r("ok", "ok", "P0002", "ok", "P0002", "P0002", "42501", "ok", "ok", "P0002")
# A user's API tokens are listed and revoked by the user, an admin of their
# organization and system; minted (create, rotate) only by the user and
# system: an org admin mints only for itself and service users, never for
# a human member it could then act as.
TOKENS = READ_USER
REVOKE_TOKENS = r("ok", "ok", "P0002", "ok", "P0002", "P0002", "42501", *WRITE)
MINT_TOKENS = r("ok", "42501", "P0002", "ok", "P0002", "P0002", "42501", *WRITE)
RANDOM = "00000000-0000-4000-8000-00000000dead"

# (name, sql with {target}/{cred}/{org_a} placeholders, mutating, expected row)
CASES = [
    ("user_by_id", "select identity.user_by_id({target})", False, READ_USER),
    ("user_by_external_id", "select identity.user_by_external_id('idp|m-target')", False, READ_USER),
    ("feature_flags", "select identity.feature_flags({target})", False, READ_USER),
    ("subscription_status", "select identity.subscription_status({target})", False, READ_USER),
    ("update_user profile", "select identity.update_user({target}, '{{\"first_name\": \"New\"}}')", True,
     r("ok", "ok", "P0002", "ok", "P0002", "P0002", "42501", *WRITE)),
    ("update_user status", "select identity.update_user({target}, '{{\"status\": \"disabled\"}}')", True, ADMIN_ON_USER),
    ("update_user organization", "select identity.update_user({target}, '{{\"organization_id\": null}}')", True,
     r("ok", "42501", "P0002", "42501", "P0002", "P0002", "42501", *WRITE)),
    # An org admin who could relabel a member as a service user could then
    # mint that member's tokens: system only.
    ("update_user make service user", "select identity.update_user({target}, '{{\"is_service_user\": true}}')", True,
     r("ok", "42501", "P0002", "42501", "P0002", "P0002", "42501", *WRITE)),
    ("suspend_user", "select identity.suspend_user({target}, 'matrix')", True, ADMIN_ON_USER),
    ("reactivate_user", "select identity.reactivate_user({target})", True, ADMIN_ON_USER),
    ("delete_user", "select identity.delete_user({target})", True, ADMIN_ON_USER),
    ("create_service_user", "select identity.create_service_user('new-svc@matrix.test', {org_a})", True,
     r("ok", "ok", "42501", "42501", "P0002", "42501", "42501", *WRITE)),
    # Tokens for another user need the admin level (42501 for everyone else,
    # the same answer whether the id exists or not).
    # A websocket or agent token mints nothing, not even for its own user.
    ("create_websocket_token", "select identity.create_websocket_token({target})", False,
     r("ok", "42501", "42501", "ok", "42501", "42501", "42501", *WRITE)),
    ("create_agent_token", "select identity.create_agent_token({target})", False,
     r("ok", "42501", "42501", "ok", "42501", "42501", "42501", *WRITE)),
    ("current_user", "select identity.current_user()", False,
     r("P0002", "ok", "ok", "ok", "ok", "ok", "42501", "ok", "ok", "42501")),
    ("create_organization", "select identity.create_organization('Another')", True, SYSTEM_ONLY),
    ("provision_user", "select identity.provision_user('idp|m-new', 'new@matrix.test')", True, SYSTEM_ONLY),
    ("set_feature_flag", "select identity.set_feature_flag('matrix.other', true)", True, SYSTEM_ONLY),
    ("set_feature_flag_override", "select identity.set_feature_flag_override('matrix.flag', {target}, false)", True, SYSTEM_ONLY),
    ("create_system_credential", "select identity.create_system_credential({target}, 'openrouter', 'sk-or-v1-matrix-system-0002')",
     True, SYSTEM_ONLY),
    # Every credential operation is audited, reads included.
    ("get_credential", "select identity.get_credential({cred})", True, READ_CREDENTIAL),
    ("credential_usage", "select identity.credential_usage({cred})", True, READ_CREDENTIAL),
    ("update_credential", "select identity.update_credential({cred}, '{{\"name\": \"renamed\"}}')", True, OWNER_OF_CREDENTIAL),
    ("delete_credential", "select identity.delete_credential({cred})", True, OWNER_OF_CREDENTIAL),
    ("set_default_credential", "select identity.set_default_credential({cred})", True, OWNER_OF_CREDENTIAL),
    ("set_credential_enabled", "select identity.set_credential_enabled({cred}, false)", True, OWNER_OF_CREDENTIAL),
    ("reveal_credential_secret", "select identity.reveal_credential_secret({cred})", True, OWNER_OF_CREDENTIAL),
    ("record_credential_usage", "select identity.record_credential_usage({cred}, 1)", True, OWNER_OF_CREDENTIAL),
    # API tokens (API.md 4); a token without expiry only for system.
    ("create_api_token", "select * from identity.create_api_token({target}, 'matrix')", True, MINT_TOKENS),
    ("create_api_token without expiry", "select * from identity.create_api_token({target}, 'forever', null)", True,
     r("ok", "42501", "P0002", "42501", "P0002", "P0002", "42501", *WRITE)),
    ("list_api_tokens", "select identity.list_api_tokens({target})", False, TOKENS),
    ("revoke_api_token", "select identity.revoke_api_token({token})", True, REVOKE_TOKENS),
    ("rotate_api_token", "select * from identity.rotate_api_token({token}, '1 hour')", True, MINT_TOKENS),
    # An org admin still mints for the organization's service users.
    ("create_api_token for a service user", "select * from identity.create_api_token({service}, 'svc')", True,
     r("ok", "ok", "P0002", "P0002", "P0002", "ok", "42501", *WRITE)),
    # Every signed-in actor has their own list and may create their own;
    # system has no credentials of its own (22023: use create_system_credential).
    ("list_credentials", "select identity.list_credentials()", True,
     r("ok", "ok", "ok", "ok", "ok", "ok", "42501", "ok", "ok", "ok")),
    ("create_credential", "select identity.create_credential('openrouter', 'mine', 'sk-or-v1-matrix-own-0003')", True,
     r("22023", "ok", "ok", "ok", "ok", "ok", "42501", *WRITE)),
]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_authorization_matrix(conn, world, case, actor):
    name, template, mutating, expected = case
    fill = {"target": "%(target)s", "cred": "%(cred)s", "org_a": "%(org_a)s", "token": "%(token)s", "service": "%(service)s"}
    sql = template.format(**fill)
    args = {"target": world["ids"]["target"], "cred": world["cred"], "org_a": world["org_a"], "token": world["token"],
            "service": world["ids"]["service_a"]}
    outcome, audited, message = run_as(conn, world, actor, sql, args)
    assert outcome == expected[actor], f"{name} as {actor}: {outcome} {message}"
    if outcome == "ok" and mutating:
        # A reveal is audited outside the transaction (not counted here).
        want = 0 if "reveal_credential_secret" in template else 1
        assert audited == want, f"{name} as {actor} wrote {audited} audit rows"
    if outcome != "ok":
        assert audited == 0
    if (outcome == "P0002" or actor == "admin_b") and outcome != "ok" and any(p in template for p in ("{target}", "{cred}", "{token}", "{service}")):
        # Indistinguishable from an id that does not exist: no leak that
        # another organization's user or credential exists (every refusal
        # of another organization's admin, and every P0002).
        random_args = dict(args, target=uuid.UUID(RANDOM), cred=uuid.UUID(RANDOM), token=uuid.UUID(RANDOM),
                           service=uuid.UUID(RANDOM))
        outcome2, _, message2 = run_as(conn, world, actor, sql, random_args)
        assert (outcome2, message2) == (outcome, message)


def test_scoped_service_token_is_held_to_its_scopes(conn, world):
    """A service user's API token with scopes: the exchanged JWT acts only
    within them."""
    svc = world["ids"]["service_a"]
    (token,) = conn.execute("select token from identity.create_api_token(%s, 'scoped', scopes => %s)",
                            [svc, ["credentials:read"]]).fetchone()
    (jwt,) = conn.execute("select identity.exchange_api_token(%s)", [token]).fetchone()
    conn.autocommit = False
    try:
        conn.execute("set local role authenticated")
        (claims,) = conn.execute("select identity.verify_jwt(%s)", [jwt]).fetchone()
        conn.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
        conn.execute("select identity.list_credentials()")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="scopes"):
            with conn.transaction():
                conn.execute("select identity.create_credential('openrouter', 'x', 'sk-or-v1-scoped-0004')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="scopes"):
            with conn.transaction():
                conn.execute("select identity.update_user(%s, '{\"first_name\": \"x\"}')", [svc])
    finally:
        conn.rollback()
        conn.autocommit = True


def test_a_scoped_token_cannot_mint_a_wider_one(conn, world):
    """A service user's token scoped to tokens:write and users:read may
    create and rotate tokens within those scopes only: never a scope it does
    not hold, never an unscoped token, never one without expiry."""
    svc = world["ids"]["service_a"]
    (token,) = conn.execute("select token from identity.create_api_token(%s, 'minter', scopes => %s)",
                            [svc, ["tokens:write", "tokens:read", "users:read"]]).fetchone()
    (wide,) = conn.execute("select token_id from identity.create_api_token(%s, 'wide')", [svc]).fetchone()
    (jwt,) = conn.execute("select identity.exchange_api_token(%s)", [token]).fetchone()
    conn.autocommit = False
    try:
        conn.execute("set local role authenticated")
        (claims,) = conn.execute("select identity.verify_jwt(%s)", [jwt]).fetchone()
        conn.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
        (narrow_id, narrow) = conn.execute(
            "select token_id, token from identity.create_api_token(%s, 'narrow', scopes => %s)", [svc, ["users:read"]]).fetchone()
        (p,) = conn.execute("select identity.verify_api_token(%s)", [narrow]).fetchone()
        assert p["scopes"] == ["users:read"]
        assert any(t["token_id"] == str(narrow_id) for (t,) in conn.execute("select identity.list_api_tokens()"))
        for scopes, match in [([], "only create scoped"), (["credentials:read"], "exceed"), (["users:*"], "exceed")]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match=match):
                with conn.transaction():
                    conn.execute("select identity.create_api_token(%s, 'x', scopes => %s)", [svc, scopes])
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="without expiry"):
            with conn.transaction():
                conn.execute("select identity.create_api_token(%s, 'x', null, %s)", [svc, ["users:read"]])
        # Rotating its own unscoped token would hand out an unscoped one.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only create scoped"):
            with conn.transaction():
                conn.execute("select identity.rotate_api_token(%s)", [wide])
        conn.execute("select identity.rotate_api_token(%s)", [narrow_id])
    finally:
        conn.rollback()
        conn.autocommit = True


def test_suspension_is_immediate_for_every_path(conn):
    conn.execute("set role service_role")
    (p,) = conn.execute("select identity.provision_user('idp|susp', 'susp@example.com')").fetchone()
    uid, token = p["user"]["id"], p["api_token"]
    (jwt,) = conn.execute("select identity.exchange_api_token(%s)", [token]).fetchone()
    conn.execute("select identity.suspend_user(%s)", [uid])
    for sql, arg in [("select identity.verify_api_token(%s)", token), ("select identity.exchange_api_token(%s)", token),
                     ("select identity.verify_jwt(%s)", jwt)]:
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            conn.execute(sql, [arg])
    conn.execute("reset role")
    event = {"user_id": uid, "claims": {"aud": "authenticated", "exp": int(time.time()) + 60, "iat": int(time.time()),
             "sub": uid, "email": "", "phone": "", "role": "authenticated", "aal": "aal1",
             "session_id": str(uuid.uuid4()), "is_anonymous": False}, "authentication_method": "password"}
    (answer,) = conn.execute("select identity.custom_access_token_hook(%s::jsonb)", [json.dumps(event)]).fetchone()
    assert answer["error"]["http_code"] == 403
