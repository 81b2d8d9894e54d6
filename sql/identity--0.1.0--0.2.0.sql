-- identity 0.1.0 -> 0.2.0, run by ALTER EXTENSION identity UPDATE.
--
-- 0.1.0 is the tree at commit 37ab521. Every schema change after it is
-- repeated here in the commit that makes it, so an upgraded database has
-- exactly the catalog of a fresh CREATE EXTENSION (pg_test/upgrade.sh checks
-- it object by object, and that every row stays usable). No row is rewritten.

-- Backups keep everything (README "Backup and restore"): the tables that
-- hold data, and the sequences behind their identity columns, are dumped by
-- pg_dump as an extension's configuration tables.
select pg_catalog.pg_extension_config_dump('identity.organizations', '');
select pg_catalog.pg_extension_config_dump('identity.users', '');
select pg_catalog.pg_extension_config_dump('identity.deleted_users', '');
select pg_catalog.pg_extension_config_dump('identity.api_tokens', '');
select pg_catalog.pg_extension_config_dump('identity.signing_keys', '');
select pg_catalog.pg_extension_config_dump('identity.revoked_jwts', '');
select pg_catalog.pg_extension_config_dump('identity.revoked_sessions', '');
select pg_catalog.pg_extension_config_dump('identity.credentials', '');
select pg_catalog.pg_extension_config_dump('identity.credential_usage', '');
select pg_catalog.pg_extension_config_dump('identity.subscriptions', '');
select pg_catalog.pg_extension_config_dump('identity.feature_flags', '');
select pg_catalog.pg_extension_config_dump('identity.feature_flag_overrides', '');
select pg_catalog.pg_extension_config_dump('identity.audit_log', '');
select pg_catalog.pg_extension_config_dump('identity.events', '');
select pg_catalog.pg_extension_config_dump('identity.credential_usage_id_seq', '');
select pg_catalog.pg_extension_config_dump('identity.audit_log_id_seq', '');
select pg_catalog.pg_extension_config_dump('identity.events_id_seq', '');

-- PostgREST's db-pre-request (API.md 8).
CREATE FUNCTION identity."pre_request"() RETURNS void VOLATILE PARALLEL UNSAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'identity_pre_request';
revoke all on function identity."pre_request"() from public;

-- Signing keys can be revoked for good (identity.revoke_signing_key), as
-- Supabase's signing keys can: a fourth state, and when it happened.
alter table identity.signing_keys drop constraint signing_keys_status_check;
alter table identity.signing_keys add constraint signing_keys_status_check
    check (status in ('next', 'active', 'retired', 'revoked'));
alter table identity.signing_keys add column revoked_at timestamptz;
CREATE FUNCTION identity."revoke_signing_key"("kid" TEXT) RETURNS VOID
    VOLATILE SECURITY DEFINER SET search_path TO pg_catalog, pg_temp
    LANGUAGE c AS 'MODULE_PATHNAME', 'revoke_signing_key_wrapper';
revoke all on function identity."revoke_signing_key"(text) from public;

-- The encryption key can be rotated: every value sealed from now on names
-- its key (format 2; 0.1.0's format-1 values still open), and
-- identity.rekey re-seals what an earlier key sealed.
CREATE FUNCTION identity."rekey"("batch_size" INT DEFAULT 1000) RETURNS bigint
    VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'rekey_wrapper';
revoke all on function identity."rekey"(integer) from public;
-- The audit trail's verification (the chain itself is below).
CREATE FUNCTION identity."verify_audit_log"() RETURNS jsonb STRICT
    VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'verify_audit_log_wrapper';
revoke all on function identity."verify_audit_log"() from public;

-- External identity providers (API.md 11): issuers, identities, webhook
-- deliveries, organizations' external ids, and their functions.
alter table identity.organizations add column external_id text
    check (pg_catalog.length(external_id) between 1 and 255);
create unique index organizations_external_id_key on identity.organizations (external_id) where external_id is not null;
-- Whose ids they are: an issuer links through users.external_id only its
-- own users (or, with match_external_id, provision_user's), and places
-- users only in organizations whose external id is its own.
alter table identity.organizations add column external_issuer text
    check (pg_catalog.length(external_issuer) between 1 and 255);
alter table identity.organizations add constraint external_issuer_has_id
    check (external_issuer is null or external_id is not null);
alter table identity.users add column external_issuer text
    check (pg_catalog.length(external_issuer) between 1 and 255);
alter table identity.users add constraint external_issuer_has_id
    check (external_issuer is null or external_id is not null);
create table identity.issuers (
    issuer                     text primary key check (pg_catalog.length(issuer) between 1 and 255),
    jwks                       jsonb not null check (pg_catalog.jsonb_typeof(jwks) = 'object'),
    options                    jsonb not null default '{}' check (pg_catalog.jsonb_typeof(options) = 'object'),
    webhook_secret_ciphertext  bytea,
    version                    bigint not null default 1,
    jwks_fetched_at            timestamptz,
    jwks_failed_at             timestamptz,
    jwks_error                 text check (pg_catalog.length(jwks_error) <= 500),
    created_at                 timestamptz not null default pg_catalog.now(),
    updated_at                 timestamptz not null default pg_catalog.now()
);
create table identity.identities (
    issuer        text not null references identity.issuers (issuer) on delete cascade,
    subject       text not null check (pg_catalog.length(subject) between 1 and 255),
    user_id       uuid references identity.users (id) on delete set null,
    created_at    timestamptz not null default pg_catalog.now(),
    last_seen_at  timestamptz,
    primary key (issuer, subject)
);
create index identities_user_idx on identity.identities (user_id) where user_id is not null;
create table identity.webhook_deliveries (
    issuer       text not null references identity.issuers (issuer) on delete cascade,
    svix_id      text not null check (pg_catalog.length(svix_id) between 1 and 255),
    event_type   text not null check (pg_catalog.length(event_type) between 1 and 100),
    status       text not null check (status in ('processed', 'ignored')),
    user_id      uuid,
    received_at  timestamptz not null default pg_catalog.now(),
    primary key (issuer, svix_id)
);
alter table identity.issuers enable row level security;
alter table identity.identities enable row level security;
alter table identity.webhook_deliveries enable row level security;
create policy self on identity.identities for select
    using (user_id = identity.uid() and identity.has_scope('users:read'));
select pg_catalog.pg_extension_config_dump('identity.issuers', '');
select pg_catalog.pg_extension_config_dump('identity.identities', '');
select pg_catalog.pg_extension_config_dump('identity.webhook_deliveries', '');
revoke all on table identity.issuers, identity.identities, identity.webhook_deliveries from public;
CREATE  FUNCTION identity."register_issuer"(
	"issuer" TEXT,
	"jwks" jsonb,
	"options" jsonb DEFAULT '{}'
) RETURNS jsonb
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'register_issuer_wrapper';
CREATE  FUNCTION identity."set_issuer_jwks"(
	"issuer" TEXT,
	"jwks" jsonb
) RETURNS jsonb
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_issuer_jwks_wrapper';
CREATE  FUNCTION identity."remove_issuer"(
	"issuer" TEXT
) RETURNS VOID
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'remove_issuer_wrapper';
CREATE  FUNCTION identity."list_issuers"() RETURNS SETOF jsonb
STRICT STABLE
LANGUAGE c
AS 'MODULE_PATHNAME', 'list_issuers_wrapper';
CREATE  FUNCTION identity."exchange_external_token"(
	"token" TEXT,
	"ttl" interval DEFAULT NULL
) RETURNS TEXT
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'exchange_external_token_wrapper';
CREATE  FUNCTION identity."handle_webhook"(
	"issuer" TEXT,
	"headers" jsonb,
	"body" TEXT
) RETURNS jsonb
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'handle_webhook_wrapper';
CREATE  FUNCTION identity."set_organization_external_id"(
	"organization_id" uuid,
	"external_id" TEXT,
	"issuer" TEXT DEFAULT NULL
) RETURNS VOID
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_organization_external_id_wrapper';

revoke all on function identity."register_issuer"(text, jsonb, jsonb) from public;
revoke all on function identity."set_issuer_jwks"(text, jsonb) from public;
revoke all on function identity."remove_issuer"(text) from public;
revoke all on function identity."list_issuers"() from public;
revoke all on function identity."exchange_external_token"(text, interval) from public;
revoke all on function identity."handle_webhook"(text, jsonb, text) from public;
revoke all on function identity."set_organization_external_id"(uuid, text, text) from public;

-- The per-row RLS helpers get a planner support function: an unwrapped call
-- is planned as a once-per-execution InitPlan (src/pg/planner.rs).
CREATE FUNCTION identity."helper_support"(internal) RETURNS internal
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'identity_helper_support';
revoke all on function identity.helper_support(internal) from public;
alter function identity.uid() support identity.helper_support;
alter function identity.org_id() support identity.helper_support;
alter function identity.is_service_user() support identity.helper_support;
alter function identity.user_role() support identity.helper_support;
alter function identity.is_admin() support identity.helper_support;
alter function identity.has_role(text) support identity.helper_support;
alter function identity.has_scope(text) support identity.helper_support;
alter function identity.claim(text) support identity.helper_support;

-- The new functions go to the roles that hold their level: every role
-- granted it under 0.1.0 (identity.grant_access) has a function only that
-- level has, and gets the new ones of that level, as grant_access gives
-- them now. User level (marked by identity.authenticate): pre_request,
-- exchange_external_token. Admin level (marked by
-- identity.retire_signing_key): revoke_signing_key, rekey,
-- verify_audit_log, the issuer functions, handle_webhook,
-- set_organization_external_id.
do $$
declare
    g record;
    r regrole;
begin
    for g in select * from (values
        ('identity.authenticate(text)', 'identity."pre_request"()'),
        ('identity.retire_signing_key(text)', 'identity."revoke_signing_key"(text)'),
        ('identity.retire_signing_key(text)', 'identity."rekey"(integer)'),
        ('identity.retire_signing_key(text)', 'identity."verify_audit_log"()'),
        ('identity.authenticate(text)', 'identity."exchange_external_token"(text, interval)'),
        ('identity.retire_signing_key(text)', 'identity."register_issuer"(text, jsonb, jsonb)'),
        ('identity.retire_signing_key(text)', 'identity."set_issuer_jwks"(text, jsonb)'),
        ('identity.retire_signing_key(text)', 'identity."remove_issuer"(text)'),
        ('identity.retire_signing_key(text)', 'identity."list_issuers"()'),
        ('identity.retire_signing_key(text)', 'identity."handle_webhook"(text, jsonb, text)'),
        ('identity.retire_signing_key(text)', 'identity."set_organization_external_id"(uuid, text, text)')) v(marker, granted)
    loop
        for r in
            select distinct a.grantee::regrole
            from pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
            where p.oid = g.marker::pg_catalog.regprocedure
              and a.privilege_type = 'EXECUTE' and a.grantee <> 0 and a.grantee <> p.proowner
        loop
            execute pg_catalog.format('grant execute on function %s to %s', g.granted, r);
        end loop;
    end loop;
    -- The user level's table grants (marked by SELECT on the audit trail,
    -- which only that level gets) now include identities.
    for r in
        select distinct a.grantee::regrole
        from pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        where c.oid = 'identity.audit_log'::pg_catalog.regclass
          and a.privilege_type = 'SELECT' and a.grantee <> 0 and a.grantee <> c.relowner
    loop
        execute pg_catalog.format(
            'grant select (issuer, subject, user_id, created_at, last_seen_at) on identity.identities to %s', r);
    end loop;
end
$$;

-- The audit trail becomes tamper-evident (identity.verify_audit_log): three
-- columns, the row hash, the chain tips, the chaining that the database's
-- background writer runs, and an append-only trigger that lets exactly that
-- chaining through; then the rows 0.1.0 wrote are chained, in id order.
alter table identity.audit_log add column prev_id bigint, add column prev_hash bytea, add column row_hash bytea;
create index audit_log_unchained_idx on identity.audit_log (id) where row_hash is null;
-- The hash of an audit row: SHA-256 of its predecessor's hash and a
-- canonical JSON array of its columns (times in microseconds since the
-- epoch, so the text does not depend on TimeZone). Immutable and pure SQL,
-- so verification recomputes exactly what the chaining stored.
create function identity.audit_log_hash(r identity.audit_log) returns bytea
language sql immutable parallel safe set search_path = pg_catalog as $$
    select pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.jsonb_build_array(
        r.id, r.prev_id, pg_catalog.encode(r.prev_hash, 'hex'),
        (pg_catalog.date_part('epoch', r.at) * 1000000)::bigint,
        r.actor_id, r.actor_kind, r.actor_role, r.organization_id, r.action,
        r.target_type, r.target_id, r.details)::text, 'UTF8'))
$$;

-- The tip of each chain: its last row, and that row's hash.
create table identity.audit_chain_tips (
    chain      text primary key,          -- organization_id, or '' for the global chain
    last_id    bigint not null,
    last_hash  bytea not null
);
alter table identity.audit_chain_tips enable row level security;

-- Locks no other role can take (sql/schema.sql).
create table identity.mutexes (id int primary key check (id between 0 and 1024));
insert into identity.mutexes select g from pg_catalog.generate_series(0, 1024) g;
alter table identity.mutexes enable row level security;
revoke all on identity.mutexes from public;

-- Chains committed audit rows not chained yet, in id order, at most
-- max_rows of them; returns how many. Run by the database's background
-- writer (src/pg/audit_queue.rs) within milliseconds of their commit, so no
-- inserting transaction waits for another (an open transaction that wrote
-- audit rows never holds up anyone else's): a row joins its chain after it
-- committed.
create function identity.audit_chain_pending(max_rows int) returns int
language plpgsql set search_path = pg_catalog as $$
declare
    r identity.audit_log;
    k text;
    tip identity.audit_chain_tips;
    -- The tips this call moves, read (and locked) once per chain, written
    -- once at the end: {chain: [last_id, last_hash hex]}.
    tips jsonb := '{}';
    n int := 0;
begin
    -- One chainer at a time (the writer, verify_audit_log): two would lock
    -- chain tips in different orders. Callers never take this lock.
    perform from identity.mutexes m where m.id = 0 for update;
    for r in select * from identity.audit_log where row_hash is null order by id limit max_rows
             for update skip locked loop
        k := coalesce(r.organization_id::text, '');
        if not tips ? k then
            select * into tip from identity.audit_chain_tips where chain = k for update;
            tips := tips || jsonb_build_object(k, jsonb_build_array(tip.last_id, encode(tip.last_hash, 'hex')));
        end if;
        r.prev_id := (tips->k->>0)::bigint;
        r.prev_hash := decode(tips->k->>1, 'hex');
        r.row_hash := identity.audit_log_hash(r);
        update identity.audit_log set prev_id = r.prev_id, prev_hash = r.prev_hash, row_hash = r.row_hash
            where id = r.id;
        tips := tips || jsonb_build_object(k, jsonb_build_array(r.id, encode(r.row_hash, 'hex')));
        n := n + 1;
    end loop;
    insert into identity.audit_chain_tips (chain, last_id, last_hash)
        select t.key, (t.value->>0)::bigint, decode(t.value->>1, 'hex') from jsonb_each(tips) t
        on conflict (chain) do update set last_id = excluded.last_id, last_hash = excluded.last_hash;
    return n;
end
$$;
select pg_catalog.pg_extension_config_dump('identity.audit_chain_tips', '');
create or replace function identity.audit_log_refuse_change() returns trigger
language plpgsql set search_path = pg_catalog as $$
begin
    -- The one change allowed: chaining a row not chained yet, every other
    -- column unchanged (identity.audit_chain_pending). A wrong hash written
    -- this way only makes identity.verify_audit_log fail.
    if tg_op = 'UPDATE' and old.row_hash is null and new.row_hash is not null
       and (old.id, old.at, old.actor_id, old.actor_kind, old.actor_role, old.organization_id, old.action,
            old.target_type, old.target_id, old.details)
           is not distinct from
           (new.id, new.at, new.actor_id, new.actor_kind, new.actor_role, new.organization_id, new.action,
            new.target_type, new.target_id, new.details) then
        return new;
    end if;
    raise exception 'identity.audit_log is append-only'
        using errcode = '42501', detail = 'forbidden: ' || tg_op || ' is not allowed on the audit trail';
end
$$;
select identity.audit_chain_pending(2147483647);
revoke all on function identity.audit_log_hash(identity.audit_log) from public;
revoke all on function identity.audit_chain_pending(integer) from public;
revoke all on table identity.audit_chain_tips from public;

-- Reason codes (API.md 16): try_verify_jwt answers a fourth column, code
-- (its OUT columns change, so it is dropped and made again, with the grants
-- it had; its new symbol lets 0.1.0's definition keep working until this
-- update), and try_verify_api_token is new, for the roles of the user level
-- (marked by identity.authenticate).
do $$
declare
    r regrole;
    had regrole[] := array(
        select distinct a.grantee::regrole
        from pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
        where p.oid = 'identity.try_verify_jwt(text, text)'::pg_catalog.regprocedure
          and a.privilege_type = 'EXECUTE' and a.grantee <> 0 and a.grantee <> p.proowner);
begin
    drop function identity.try_verify_jwt(text, text);
    CREATE  FUNCTION identity."try_verify_jwt"(
    	"token" TEXT,
    	"audience" TEXT DEFAULT NULL
    ) RETURNS TABLE (
    	"valid" bool,
    	"claims" jsonb,
    	"reason" TEXT,
    	"code" TEXT
    )
    STABLE PARALLEL SAFE
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'try_verify_jwt_coded_wrapper';
    revoke all on function identity."try_verify_jwt"(text, text) from public;
    foreach r in array had loop
        execute pg_catalog.format('grant execute on function identity."try_verify_jwt"(text, text) to %s', r);
    end loop;
end
$$;
CREATE  FUNCTION identity."try_verify_api_token"(
	"token" TEXT
) RETURNS TABLE (
	"valid" bool,
	"code" TEXT,
	"principal" jsonb
)
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'try_verify_api_token_wrapper';
revoke all on function identity."try_verify_api_token"(text) from public;
do $$
declare
    r regrole;
begin
    for r in
        select distinct a.grantee::regrole
        from pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
        where p.oid = 'identity.authenticate(text)'::pg_catalog.regprocedure
          and a.privilege_type = 'EXECUTE' and a.grantee <> 0 and a.grantee <> p.proowner
    loop
        execute pg_catalog.format('grant execute on function identity."try_verify_api_token"(text) to %s', r);
    end loop;
end
$$;
-- Errors of the audit trail's trigger and of the install's role check carry
-- their code (forbidden) too: in the definitions above.

-- Every function has a comment (sql/comments.sql, repeated here: 0.1.0 had
-- four).
comment on function identity.custom_access_token_hook(jsonb) is
    'Supabase Auth custom access token hook: adds is_service_user, user_role, organization_id (and application_id) from identity.users; 403 error object for suspended or disabled users, 400 for malformed events. Level hook.';
comment on function identity.decode_jwt(text) is
    'Decodes a JWT''s header and payload without verifying it (debugging). Levels user, admin.';
comment on function identity.sign_jwt(jsonb, interval) is
    'Signs claims (HS256 with identity.jwt_secret, or the active signing key), filling iat, exp, jti, iss and aud. Level admin.';
comment on function identity.issue_access_token(uuid, interval) is
    'An access JWT for a user with Supabase-shaped claims plus the hook''s. Level admin.';
comment on function identity.verify_jwt(text, text) is
    'Verifies a JWT (signature, alg, exp/nbf/iat, aud, iss, revocations, the user''s state) and returns its claims; 28000 with the reason in DETAIL. Levels user, admin.';
comment on function identity.try_verify_jwt(text, text) is
    'verify_jwt without an exception: one row (valid, claims, reason, code: the reason code of the refusal, NULL when valid). Levels user, admin.';
comment on function identity.explain_jwt(text) is
    'Every verification check of a JWT in order, with its outcome, for troubleshooting. Level admin.';
comment on function identity.generate_signing_key(text) is
    'A new ES256, RS256 or EdDSA signing key in state next (published, not signing); the private key sealed under identity.encryption_key. Returns the kid. Level admin; audited.';
comment on function identity.activate_signing_key(text) is
    'Makes a key the one every issuer signs with; the previous active key is retired. Level admin; audited.';
comment on function identity.retire_signing_key(text) is
    'Stops a key signing; it keeps verifying and stays in jwks() for 366 days. Level admin; audited.';
comment on function identity.revoke_signing_key(text) is
    'Revokes a signing key for good: tokens naming it are refused from the next verification on (key revoked), and it leaves jwks(); not the active key (55000). Level admin; audited.';
comment on function identity.rekey(integer) is
    'Re-seals up to batch_size credentials and private signing keys under the current identity.encryption_key; returns how many; call until 0, then the previous keys can go. Level admin, system only; audited.';
comment on function identity.jwks() is
    'The public JWKS of the active, next and unexpired retired keys. Levels user, admin.';
comment on function identity.revoke_jwt(text, timestamp with time zone) is
    'Revokes a JWT by jti until it expires; effective for the next verification everywhere. Level admin; audited.';
comment on function identity.revoke_session(uuid) is
    'Revokes every JWT carrying a session_id. Level admin; audited.';
comment on function identity.create_api_token(uuid, text, interval, text[]) is
    'A new API token (shown once; only its hash is stored) for the caller, a service user of the organization the caller administers, or anyone for system. Levels user, admin; audited.';
comment on function identity.verify_api_token(text) is
    'The principal of an API token (checksum first, then an index probe by hash); 28000 when it does not authenticate. Works on standbys. Levels user, admin.';
comment on function identity.try_verify_api_token(text) is
    'verify_api_token without an exception, for any text: one row (valid, code: the reason code of the refusal, principal: what verify_api_token answers). Levels user, admin.';
comment on function identity.exchange_api_token(text, interval) is
    'An access JWT for an API token''s user, valid while the token stands. Levels user, admin; audited.';
comment on function identity.list_api_tokens(uuid) is
    'API tokens without secrets: the caller''s own, or a user''s the caller may manage. Levels user, admin.';
comment on function identity.revoke_api_token(uuid) is
    'Revokes an API token: its user, an admin of their organization, or system. Levels user, admin; audited.';
comment on function identity.rotate_api_token(uuid, interval) is
    'A new API token in place of another, which is revoked now or after a grace period. Levels user, admin; audited.';
comment on function identity.create_websocket_token(uuid, interval) is
    'A short-lived JWT with aud websocket for the caller (at most 15 minutes). Levels user, admin.';
comment on function identity.create_agent_token(uuid, interval, text[]) is
    'A JWT with aud agent and an act claim naming the agent, with scopes within the caller''s (at most 24 hours). Levels user, admin.';
comment on function identity.create_organization(text) is
    'A new organization. Level admin, system only; audited.';
comment on function identity.set_organization_external_id(uuid, text, text) is
    'Sets or clears an organization''s identity-provider id (Clerk''s org_...) and the registered issuer it is an id of: only that issuer''s organization claim (e.g. o.id) places its users there (with no issuer, no claim does). Level admin, system only; audited.';
comment on function identity.provision_user(text, text, text, text, uuid, uuid) is
    'Creates a user from an identity provider (idempotent on external_id) with a first API token, a trial and events. Level admin, system only; audited.';
comment on function identity.create_service_user(text, uuid, uuid, text, text) is
    'A service user of an organization with its first API token (shown once): an admin of that organization, or system. Levels user, admin; audited.';
comment on function identity.update_user(uuid, jsonb) is
    'Changes a user''s fields, each allowed by who the caller is (self, organization admin, system). Levels user, admin; audited.';
comment on function identity.suspend_user(uuid, text) is
    'Suspends a user from the next call on: an admin of their organization, or system. Levels user, admin; audited.';
comment on function identity.reactivate_user(uuid) is
    'Lets a suspended user sign in again (new tokens only): an admin of their organization, or system. Levels user, admin; audited.';
comment on function identity.delete_user(uuid) is
    'Deletes a user with their tokens and credentials; a tombstone keeps their JWTs refused. An admin of their organization, or system. Levels user, admin; audited.';
comment on function identity.user_by_id(uuid) is
    'A user by id: the user, an admin of their organization, or system (P0002 otherwise). Levels user, admin.';
comment on function identity.user_by_external_id(text) is
    'A user by the identity provider''s id, visible as for user_by_id. Levels user, admin.';
comment on function identity.user_by_api_token(text) is
    'The user an API token authenticates, visible as for user_by_id. Levels user, admin.';
comment on function identity."current_user"() is
    'The caller''s profile: user, organization, role, websocket and agent tokens, feature flags, subscription. Levels user, admin.';
comment on function identity.set_feature_flag(text, boolean, integer, text) is
    'Creates or changes a feature flag and its rollout percentage. Level admin, system only; audited.';
comment on function identity.set_feature_flag_override(text, uuid, boolean) is
    'Turns a flag on or off for one user (NULL removes the override). Level admin, system only; audited.';
comment on function identity.feature_flags(uuid) is
    'Every flag''s answer for the caller or a visible user. Levels user, admin.';
comment on function identity.subscription_status(uuid) is
    'The subscription of the caller or a visible user: trialing, active, expired, canceled or none. Levels user, admin.';
comment on function identity.create_credential(text, text, text, boolean, numeric) is
    'A credential of the signed-in caller, its secret sealed under identity.encryption_key (only the last 4 kept in clear). Levels user, admin; audited.';
comment on function identity.list_credentials() is
    'The caller''s credentials without secrets (system: all). Levels user, admin; audited.';
comment on function identity.get_credential(uuid) is
    'One credential without its secret: the owner, an admin of its organization, or system. Levels user, admin; audited.';
comment on function identity.update_credential(uuid, jsonb) is
    'Changes a credential''s name, credit limit or secret: the owner (not on system credentials), or system. Levels user, admin; audited.';
comment on function identity.delete_credential(uuid) is
    'Deletes a credential: the owner (not system credentials), or system. Levels user, admin; audited.';
comment on function identity.set_default_credential(uuid) is
    'Makes a credential its owner''s only default: the owner, or system. Levels user, admin; audited.';
comment on function identity.set_credential_enabled(uuid, boolean) is
    'Enables or disables a credential (disabling clears the default): the owner, or system. Levels user, admin; audited.';
comment on function identity.reveal_credential_secret(uuid) is
    'The decrypted secret of an enabled credential: the owner, or system. Levels user, admin; audited.';
comment on function identity.record_credential_usage(uuid, numeric, bigint) is
    'Records usage against a credential, refused (nothing recorded) past its credit limit: the owner, or system. Levels user, admin; audited.';
comment on function identity.credential_usage(uuid) is
    'A credential''s usage: calls, totals, remaining credit, recent calls; visible as get_credential. Levels user, admin.';
comment on function identity.create_system_credential(uuid, text, text, numeric) is
    'A system-protected credential for a user (their default when they have none). Level admin, system only; audited.';
comment on function identity.uid() is
    'The sub of the current claims as uuid, or NULL (for RLS policies). Levels user, admin.';
comment on function identity.org_id() is
    'The organization_id claim as uuid, or NULL (for RLS policies). Levels user, admin.';
comment on function identity.is_service_user() is
    'The is_service_user claim, or NULL (for RLS policies). Levels user, admin.';
comment on function identity.helper_support(internal) is
    'Planner support function of the per-row helpers: an unwrapped call is planned as a once-per-execution InitPlan, as (select identity.uid()) is. Internal, not callable.';
comment on function identity.jwt() is
    'The current claims as jsonb, or NULL. Levels user, admin.';
comment on function identity.claim(text) is
    'One claim of the current claims as text, or NULL. Levels user, admin.';
comment on function identity.user_role() is
    'The user_role claim, or NULL. Levels user, admin.';
comment on function identity.is_admin() is
    'Whether the user_role claim is admin; NULL without claims. Levels user, admin.';
comment on function identity.has_role(text) is
    'Whether user_role or the Postgres role claim is the given role; NULL without claims. Levels user, admin.';
comment on function identity.has_scope(text) is
    'Whether the claims'' scopes allow a scope (no list: everything); NULL without claims. Levels user, admin.';
comment on function identity.actor() is
    'Who is acting: user_id, organization_id, user_role, is_service_user and kind (user, service, agent, system, anon). Levels user, admin.';
comment on function identity.authenticate(text) is
    'Verifies a JWT or an API token and pins its claims for the current transaction only (NULL and a warning when it does not authenticate). Levels user, admin.';
comment on function identity.pre_request() is
    'PostgREST db-pre-request: verifies x-api-key (or, in mode verified, the Bearer JWT), pins its claims for the transaction and switches to its role; PT401 when it does not authenticate. Levels user, admin.';
comment on function identity.grant_access(text, text) is
    'Grants a role a level (hook, user or admin): USAGE on the schema, EXECUTE on that level''s functions, column SELECT for user. Superuser only; audited.';
-- verify_api_token remembers the tokens it verified and their users' rows
-- per backend (src/store/cache.rs, verified_token): the users trigger fires
-- for every column a principal holds, and api_tokens gets one for every
-- column but last_used_at (written at most once a minute by verification).
drop trigger cached_table_changed on identity.users;
create trigger cached_table_changed after insert or update of id, status, tokens_valid_after, is_service_user,
    user_role, organization_id, application_id, email or delete or truncate on identity.users
    for each statement execute function identity.cached_table_changed();
create trigger cached_table_changed after insert or update of id, user_id, kind, name, token_hash, display_prefix,
    last4, scopes, expires_at, revoked_at, rotated_from, created_by, created_at or delete or truncate
    on identity.api_tokens
    for each statement execute function identity.cached_table_changed();
alter table identity.users enable always trigger cached_table_changed;
alter table identity.api_tokens enable always trigger cached_table_changed;

-- The shared revocation filters (src/pg/shared_filter.rs): a row trigger
-- adds each revoked key before its transaction commits.
create function identity.revocation_added() returns trigger
    language c as 'MODULE_PATHNAME', 'identity_revocation_added';
revoke all on function identity.revocation_added() from public;
create trigger revocation_filter after insert or update on identity.revoked_jwts
    for each row execute function identity.revocation_added('jti');
create trigger revocation_filter after insert or update on identity.revoked_sessions
    for each row execute function identity.revocation_added('session');
alter table identity.revoked_jwts enable always trigger revocation_filter;
alter table identity.revoked_sessions enable always trigger revocation_filter;
comment on function identity.revocation_added() is
    'Trigger: adds a revoked jti or session to this database''s shared revocation filter. Internal, not callable.';

comment on function identity.cached_table_changed() is
    'Trigger: tells every backend to reload its copy of this table (revocations, signing keys, users, API tokens). Internal, not callable.';
comment on function identity.verify_audit_log() is
    'Chains what is pending, then recomputes the audit trail''s hash chains: {valid, rows_checked, rows_pending, first_bad_id}. Level admin, system only.';
comment on function identity.register_issuer(text, jsonb, jsonb) is
    'Trusts an external identity provider (Clerk, Auth0, Supabase Auth, any OIDC issuer): its exact iss, its public JWKS (RS256, ES256, EdDSA; or options.jwks_uri, fetched by the background worker) and checked options (audience or authorized_parties, one of them required unless any_audience is true; leeway, provisioning, organization_id, email_claim, email_verified_claim, name_claims, match_external_id, webhook_secret sealed at rest). Replaces them for an issuer already registered. Level admin, system only; audited.';
comment on function identity.set_issuer_jwks(text, jsonb) is
    'Replaces a registered issuer''s public keys (a rotation, effective from this commit). Level admin, system only; audited.';
comment on function identity.remove_issuer(text) is
    'Stops trusting an issuer: its tokens and webhooks are refused from this commit on; its identities go, its users stay. Level admin, system only; audited.';
comment on function identity.list_issuers() is
    'Every registered issuer: options (never the webhook secret), kids, the jwks_uri fetch state, how many users it signs in. Level admin, system only.';
comment on function identity.exchange_external_token(text, interval) is
    'Verifies a registered issuer''s token as identity.authenticate does (linking or provisioning its user) and returns an access JWT of ours with the hook''s claims and amr naming the issuer. Levels user, admin; audited.';
comment on function identity.handle_webhook(text, jsonb, text) is
    'One Svix-signed webhook delivery of an issuer (Clerk user.created, user.updated, user.deleted), idempotent on svix-id: {status: processed | duplicate | ignored, user_id}; a bad signature is 28000 and writes nothing. Levels webhook, admin; audited.';
comment on function identity.audit_chain_pending(integer) is
    'Chains committed audit rows not chained yet to the tips of their chains (prev_id, prev_hash, row_hash); run by the background writer. Internal.';
comment on function identity.audit_log_hash(identity.audit_log) is
    'The hash of an audit row: SHA-256 of its predecessor''s hash and its columns. Internal (the chain trigger and verify_audit_log).';
comment on function identity.audit_log_refuse_change() is
    'Trigger: refuses UPDATE (but filling the chain columns of a row not chained yet), DELETE and TRUNCATE of identity.audit_log. Internal, not callable.';

-- users_token_state includes the columns a backend's copy reads, so the
-- copy is loaded by an index-only scan (src/pg/probe.rs scan_all).
drop index identity.users_token_state;
create index users_token_state on identity.users (id) include (status, tokens_valid_after)
    where status <> 'active' or tokens_valid_after <> '-infinity';

-- The background workers act as identity_worker (sql/schema.sql).
-- The background workers (src/pg/workers.rs: the audit writer, the JWKS
-- fetcher) connect as the bootstrap superuser, the only role a worker can
-- connect as before PostgreSQL 17, and before their first statement pin
-- search_path to pg_catalog, pg_temp and act as identity_worker: a role
-- that cannot log in, has no attribute, owns nothing, holds no privilege on
-- any table and may execute only the four functions below (each SECURITY
-- DEFINER with its search_path pinned). Nothing a database owner puts on a
-- search_path, or in a schema, runs in them (CVE-2018-1058's class). The
-- role is the cluster's, shared by every database with the extension; one
-- found with any attribute or member is refused here.
do $$
declare
    r record;
begin
    select a.oid, a.rolsuper, a.rolcanlogin, a.rolcreaterole, a.rolcreatedb, a.rolbypassrls, a.rolreplication
        into r from pg_catalog.pg_authid a where a.rolname operator(pg_catalog.=) 'identity_worker';
    if not found then
        create role identity_worker nologin noinherit;
    elsif r.rolsuper or r.rolcanlogin or r.rolcreaterole or r.rolcreatedb or r.rolbypassrls or r.rolreplication
          or exists (select from pg_catalog.pg_auth_members m where m.roleid operator(pg_catalog.=) r.oid) then
        raise exception 'role identity_worker exists and has attributes or members'
            using errcode = '42501', detail = 'forbidden',
                  hint = 'the background workers act as identity_worker: it must be NOLOGIN, with no attribute and no member';
    end if;
end
$$;

-- The audit writer's one statement: a batch of queued records (a jsonb
-- array of objects) inserted, then every committed row not chained yet
-- chained, unless another chainer holds the chain (then next round).
create function identity.worker_write_audit(records jsonb) returns integer
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
begin
    if pg_catalog.jsonb_typeof(records) operator(pg_catalog.=) 'array' then
        insert into identity.audit_log
            (actor_id, actor_kind, actor_role, organization_id, action, target_type, target_id, details)
        select (r operator(pg_catalog.->>) 'actor_id')::uuid, r operator(pg_catalog.->>) 'actor_kind',
               (r operator(pg_catalog.->>) 'actor_role')::name, (r operator(pg_catalog.->>) 'organization_id')::uuid,
               r operator(pg_catalog.->>) 'action', r operator(pg_catalog.->>) 'target_type',
               r operator(pg_catalog.->>) 'target_id', coalesce(r operator(pg_catalog.->) 'details', '{}')
        from pg_catalog.jsonb_array_elements(records) r
        where pg_catalog.jsonb_typeof(r) operator(pg_catalog.=) 'object';
    end if;
    -- Never wait for another chainer (verify_audit_log): a writer that
    -- blocks misses its heartbeat.
    if not exists (select from identity.mutexes m where m.id operator(pg_catalog.=) 0 for update skip locked) then
        return 0;
    end if;
    return identity.audit_chain_pending(1000);
end
$$;

-- The issuers whose options.jwks_uri the JWKS fetcher fetches now: never
-- fetched, or their last attempt older than their jwks_refresh_seconds,
-- or, when a token named an unknown kid (unknown_kid), older than a minute
-- (or the refresh interval, if shorter).
create function identity.worker_jwks_due(unknown_kid boolean) returns table (issuer text, jwks_uri text)
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select i.issuer, i.options operator(pg_catalog.->>) 'jwks_uri'
    from identity.issuers i
    where i.options operator(pg_catalog.?) 'jwks_uri'
      and (greatest(i.jwks_fetched_at, i.jwks_failed_at) is null
           or greatest(i.jwks_fetched_at, i.jwks_failed_at)
              operator(pg_catalog.<=) (pg_catalog.now() operator(pg_catalog.-) pg_catalog.make_interval(secs => case
                   when unknown_kid then least(60, coalesce((i.options operator(pg_catalog.->>) 'jwks_refresh_seconds')::int, 3600))
                   else coalesce((i.options operator(pg_catalog.->>) 'jwks_refresh_seconds')::int, 3600) end)))
    order by i.issuer
$$;

-- Seconds until the next scheduled fetch of any issuer with a jwks_uri
-- (NULL: none has one; 0 for one never fetched, as one registered while the
-- fetcher looked, before its registration committed): the fetcher stays
-- only while one is near.
create function identity.worker_jwks_next() returns double precision
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select pg_catalog.min(pg_catalog.date_part('epoch',
             coalesce(greatest(i.jwks_fetched_at, i.jwks_failed_at)
                      operator(pg_catalog.+) pg_catalog.make_interval(secs => coalesce((i.options operator(pg_catalog.->>) 'jwks_refresh_seconds')::int, 3600)),
                      pg_catalog.now())
             operator(pg_catalog.-) pg_catalog.now()))::float8
    from identity.issuers i
    where i.options operator(pg_catalog.?) 'jwks_uri'
$$;

-- A fetch of issuer's jwks_uri: the valid set it gave (jwks; the version
-- moves only when the set changed, the error is cleared), or why it failed
-- (error; the set in use stays). Nothing when the issuer was removed or its
-- jwks_uri changed meanwhile.
create function identity.worker_jwks_store(issuer text, jwks_uri text, jwks jsonb, error text) returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
begin
    if jwks is not null then
        update identity.issuers i
        set jwks = worker_jwks_store.jwks,
            version = i.version operator(pg_catalog.+) (i.jwks is distinct from worker_jwks_store.jwks)::int,
            updated_at = case when i.jwks is distinct from worker_jwks_store.jwks then pg_catalog.now() else i.updated_at end,
            jwks_fetched_at = pg_catalog.now(),
            jwks_error = null
        where i.issuer operator(pg_catalog.=) worker_jwks_store.issuer
          and i.options operator(pg_catalog.->>) 'jwks_uri' operator(pg_catalog.=) worker_jwks_store.jwks_uri;
    else
        update identity.issuers i
        set jwks_failed_at = pg_catalog.now(),
            jwks_error = pg_catalog.left(coalesce(worker_jwks_store.error, 'unknown'), 500)
        where i.issuer operator(pg_catalog.=) worker_jwks_store.issuer
          and i.options operator(pg_catalog.->>) 'jwks_uri' operator(pg_catalog.=) worker_jwks_store.jwks_uri;
    end if;
end
$$;

revoke all on function identity.worker_write_audit(jsonb) from public;
revoke all on function identity.worker_jwks_due(boolean) from public;
revoke all on function identity.worker_jwks_next() from public;
revoke all on function identity.worker_jwks_store(text, text, jsonb, text) from public;
grant usage on schema identity to identity_worker;
grant execute on function identity.worker_write_audit(jsonb) to identity_worker;
grant execute on function identity.worker_jwks_due(boolean) to identity_worker;
grant execute on function identity.worker_jwks_next() to identity_worker;
grant execute on function identity.worker_jwks_store(text, text, jsonb, text) to identity_worker;
comment on function identity.worker_write_audit(jsonb) is
    'The audit writer''s statement: inserts a batch of queued audit records (a jsonb array of objects) and chains what committed, unless another chainer holds the chain. Internal: the background writer, as identity_worker.';
comment on function identity.worker_jwks_due(boolean) is
    'The issuers whose jwks_uri the JWKS fetcher fetches now (unknown_kid: a token named a kid not in the set). Internal: the background fetcher, as identity_worker.';
comment on function identity.worker_jwks_next() is
    'Seconds until the next scheduled JWKS fetch (NULL: no issuer has a jwks_uri). Internal: the background fetcher, as identity_worker.';
comment on function identity.worker_jwks_store(text, text, jsonb, text) is
    'Stores a JWKS fetch of an issuer''s jwks_uri: the valid set, or why it failed. Internal: the background fetcher, as identity_worker.';
comment on table identity.mutexes is
    'Locks no other role can take: row 0 serialises the audit chainers; rows 1 to 1024 a subject''s first sign-in and webhooks and a user''s credential changes (a key hashed to a row). Never written after the install.';

-- Logical replication's apply worker fires row triggers only: a row trigger
-- on each cached table, ENABLE REPLICA, invalidates the per-backend copies
-- on a subscriber (src/store/cache.rs).
create trigger cached_row_applied after insert or update or delete on identity.revoked_jwts
    for each row execute function identity.cached_table_changed();
create trigger cached_row_applied after insert or update or delete on identity.revoked_sessions
    for each row execute function identity.cached_table_changed();
create trigger cached_row_applied after insert or update or delete on identity.signing_keys
    for each row execute function identity.cached_table_changed();
create trigger cached_row_applied after insert or update or delete on identity.users
    for each row execute function identity.cached_table_changed();
create trigger cached_row_applied after insert or update or delete on identity.api_tokens
    for each row execute function identity.cached_table_changed();
create trigger cached_row_applied after insert or update or delete on identity.deleted_users
    for each row execute function identity.cached_table_changed();
alter table identity.revoked_jwts enable replica trigger cached_row_applied;
alter table identity.revoked_sessions enable replica trigger cached_row_applied;
alter table identity.signing_keys enable replica trigger cached_row_applied;
alter table identity.users enable replica trigger cached_row_applied;
alter table identity.api_tokens enable replica trigger cached_row_applied;
alter table identity.deleted_users enable replica trigger cached_row_applied;

-- The flags' list and descriptions: organization admins only (sql/grants.sql).
alter policy signed_in_users on identity.feature_flags
    using (identity.is_admin() and identity.org_id() is not null and identity.has_scope('users:read'));

-- Supabase Auth's users (API.md 13): identity follows auth.users.
alter table identity.users add column phone text check (pg_catalog.length(phone) between 1 and 32);
create table identity.supabase_auth_users (
    user_id    uuid primary key references identity.users (id) on delete cascade,
    -- identity suspended the user because auth.users.banned_until was in
    -- the future; lifting the ban reactivates only such a user.
    banned     boolean not null default false,
    -- a deletion or ban identity could not do at once (the user's row was
    -- busy): retried by the next follow and by link_supabase_auth.
    pending    boolean not null default false,
    linked_at  timestamptz not null default pg_catalog.now()
);
create index supabase_auth_users_pending_idx on identity.supabase_auth_users (user_id) where pending;
alter table identity.supabase_auth_users enable row level security;
revoke all on identity.supabase_auth_users from public;
select pg_catalog.pg_extension_config_dump('identity.supabase_auth_users', '');
CREATE FUNCTION identity.supabase_auth_follow() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'identity_supabase_auth_follow';
REVOKE ALL ON FUNCTION identity.supabase_auth_follow() FROM PUBLIC;
CREATE FUNCTION identity."link_supabase_auth"() RETURNS jsonb
    STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'link_supabase_auth_wrapper';
revoke all on function identity."link_supabase_auth"() from public;
CREATE FUNCTION identity."unlink_supabase_auth"() RETURNS jsonb
    STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'unlink_supabase_auth_wrapper';
revoke all on function identity."unlink_supabase_auth"() from public;
-- The grant levels (identity.grant_access) as they stand: the admin level
-- (whoever may register an issuer) gets link and unlink, the user level
-- (whoever may read users' emails) the new column phone.
do $$
declare
    r regrole;
begin
    for r in
        select distinct a.grantee::regrole
        from pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
        where p.oid = 'identity.register_issuer(text, jsonb, jsonb)'::pg_catalog.regprocedure
          and a.privilege_type = 'EXECUTE' and a.grantee <> 0 and a.grantee <> p.proowner
    loop
        execute pg_catalog.format('grant execute on function identity."link_supabase_auth"() to %s', r);
        execute pg_catalog.format('grant execute on function identity."unlink_supabase_auth"() to %s', r);
    end loop;
    for r in
        select distinct a.grantee::regrole
        from pg_catalog.pg_attribute c, pg_catalog.aclexplode(c.attacl) a
        where c.attrelid = 'identity.users'::pg_catalog.regclass and c.attname = 'email'
          and a.privilege_type = 'SELECT' and a.grantee <> 0
    loop
        execute pg_catalog.format('grant select (phone) on identity.users to %s', r);
    end loop;
end
$$;
comment on function identity.link_supabase_auth() is
    'From now on identity.users follows Supabase Auth''s auth.users (email, phone, bans, deletes; flags from raw_app_meta_data at creation), and every auth user with a confirmed email gets the identity user of the same id. Answers {created, linked, unlinked}. Level admin, system only; idempotent; audited.';
comment on function identity.unlink_supabase_auth() is
    'Stops following auth.users: its triggers and the links go, the users stay. Answers {unlinked}. Level admin, system only; audited.';
comment on function identity.supabase_auth_follow() is
    'Trigger on auth.users (link_supabase_auth): follows the row into identity.users; never fails or delays Supabase Auth''s statement. Internal.';
comment on table identity.supabase_auth_users is
    'The users identity follows from auth.users (link_supabase_auth), and whether a Supabase Auth ban suspended them.';
