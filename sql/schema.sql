-- identity: the data model (API.md). Installed by CREATE EXTENSION into the
-- schema `identity`. Tables, constraints, indexes and RLS
-- only: every function of the API is Rust (#[pg_extern]).
--
-- The script creates the schema itself (the control file names none), so the
-- schema is a member of the extension and DROP EXTENSION removes it.
create schema identity;
comment on schema identity is 'identity extension: users, service users, tokens, credentials';

-- Conventions
-- - Secrets never live here in clear: API tokens as SHA-256 (token_hash),
--   private keys and credentials as AEAD ciphertext.
-- - Every table has row level security enabled and, until policies are
--   added, no policy: deny by default for every role but the owner.
-- - Foreign keys say what happens on delete. Deleting a user removes their
--   tokens, credentials, overrides and subscription; audit rows stay (they
--   carry ids, not foreign keys).

create table identity.organizations (
    id          uuid primary key default pg_catalog.gen_random_uuid(),
    name        text not null check (pg_catalog.length(name) between 1 and 200),
    metadata    jsonb not null default '{}' check (pg_catalog.jsonb_typeof(metadata) = 'object'),
    created_at  timestamptz not null default pg_catalog.now(),
    updated_at  timestamptz not null default pg_catalog.now(),
    -- The identity provider's id of the organization (Clerk's org_...):
    -- where an issuer's organization claim (e.g. o.id) sends its users.
    external_id text check (pg_catalog.length(external_id) between 1 and 255),
    -- The issuer whose id external_id is: only that issuer's organization
    -- claim places users here (NULL: no issuer's claim does).
    external_issuer text check (pg_catalog.length(external_issuer) between 1 and 255),
    constraint external_issuer_has_id check (external_issuer is null or external_id is not null)
);
create unique index organizations_external_id_key on identity.organizations (external_id) where external_id is not null;

create table identity.users (
    id                 uuid primary key default pg_catalog.gen_random_uuid(),
    email              text not null check (pg_catalog.length(email) between 3 and 320 and email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    external_id        text check (pg_catalog.length(external_id) between 1 and 255),
    first_name         text check (pg_catalog.length(first_name) <= 200),
    last_name          text check (pg_catalog.length(last_name) <= 200),
    organization_id    uuid references identity.organizations (id) on delete restrict,
    user_role          text not null default 'user' check (user_role in ('admin', 'user', 'system')),
    is_service_user    boolean not null default false,
    status             text not null default 'active' check (status in ('active', 'suspended', 'disabled')),
    status_reason      text check (pg_catalog.length(status_reason) <= 1000),
    application_id     uuid,
    application_name   text check (pg_catalog.length(application_name) <= 200),
    description        text check (pg_catalog.length(description) <= 2000),
    created_by         uuid references identity.users (id) on delete set null,
    created_by_name    text,
    -- JWTs issued (iat) before this instant are refused: suspension, deletion
    -- and "sign out everywhere" move it forward.
    tokens_valid_after timestamptz not null default '-infinity',
    metadata           jsonb not null default '{}' check (pg_catalog.jsonb_typeof(metadata) = 'object'),
    created_at         timestamptz not null default pg_catalog.now(),
    updated_at         timestamptz not null default pg_catalog.now(),
    -- The registered issuer whose subject external_id is (it provisioned
    -- the user, or first linked it): only that issuer links a subject to
    -- the user through external_id. NULL: provision_user's (or
    -- update_user's) external_id, linked only by an issuer with
    -- match_external_id, which then becomes its issuer.
    external_issuer    text check (pg_catalog.length(external_issuer) between 1 and 255),
    -- Supabase Auth's phone for a user linked from auth.users (E.164 digits).
    phone              text check (pg_catalog.length(phone) between 1 and 32),
    -- A service user belongs to an organization.
    constraint service_user_has_org check (not is_service_user or organization_id is not null),
    constraint external_issuer_has_id check (external_issuer is null or external_id is not null)
);
-- Emails are unique regardless of case; external ids (an identity provider's
-- user id) are unique when present.
create unique index users_email_key on identity.users (pg_catalog.lower(email));
create unique index users_external_id_key on identity.users (external_id) where external_id is not null;
create index users_organization_idx on identity.users (organization_id);
create index users_created_by_idx on identity.users (created_by) where created_by is not null;
-- The users whose tokens a check can refuse (not active, or a
-- tokens_valid_after): each backend holds this set (src/store/cache.rs), so
-- verify_jwt needs no probe for everyone else. The columns it reads are
-- included, so a backend loads the set by an index-only scan (a few index
-- pages, not one heap page per user).
create index users_token_state on identity.users (id) include (status, tokens_valid_after)
    where status <> 'active' or tokens_valid_after <> '-infinity';

-- Tombstones: delete_user removes the row (and, by cascade, tokens,
-- credentials, subscription) and leaves the id here, so tokens already issued
-- to it are refused at once by verify_jwt and the hook, and the id is never
-- provisioned again. No personal data: the id and who deleted it.
create table identity.deleted_users (
    id          uuid primary key,
    deleted_at  timestamptz not null default pg_catalog.now(),
    deleted_by  uuid
);

-- The users identity follows from Supabase Auth's auth.users
-- (link_supabase_auth, API.md 13): the identity user of the same id was
-- created from that auth user, or linked to it by the backfill.
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

create table identity.api_tokens (
    id              uuid primary key default pg_catalog.gen_random_uuid(),
    user_id         uuid not null references identity.users (id) on delete cascade,
    kind            text not null default 'api' check (kind in ('api', 'service', 'agent')),
    name            text not null check (pg_catalog.length(name) between 1 and 200),
    -- SHA-256 of the whole token; the token itself is shown once and never stored.
    token_hash      bytea not null check (pg_catalog.length(token_hash) = 32),
    display_prefix  text not null check (pg_catalog.length(display_prefix) <= 24),
    last4           text not null check (pg_catalog.length(last4) = 4),
    scopes          text[] not null default '{}',
    expires_at      timestamptz,
    revoked_at      timestamptz,
    last_used_at    timestamptz,
    rotated_from    uuid references identity.api_tokens (id) on delete set null,
    created_by      uuid,
    created_at      timestamptz not null default pg_catalog.now()
);
create unique index api_tokens_token_hash_key on identity.api_tokens (token_hash);
create index api_tokens_user_idx on identity.api_tokens (user_id);

create table identity.signing_keys (
    kid                     text primary key check (pg_catalog.length(kid) between 1 and 100),
    alg                     text not null check (alg in ('ES256', 'RS256', 'EdDSA')),
    public_jwk              jsonb not null check (pg_catalog.jsonb_typeof(public_jwk) = 'object'),
    -- AEAD ciphertext under identity.encryption_key, bound to kid.
    private_key_ciphertext  bytea not null,
    status                  text not null default 'next' check (status in ('next', 'active', 'retired', 'revoked')),
    created_at              timestamptz not null default pg_catalog.now(),
    activated_at            timestamptz,
    retired_at              timestamptz,
    -- Retired keys stay in the JWKS until tokens they signed have expired.
    expires_at              timestamptz,
    -- Revoked keys (identity.revoke_signing_key) verify nothing, for good.
    revoked_at              timestamptz
);
-- At most one active signing key.
create unique index signing_keys_one_active on identity.signing_keys ((true)) where status = 'active';

create table identity.revoked_jwts (
    jti         text primary key check (pg_catalog.length(jti) between 1 and 255),
    -- The token's own exp: after it the row can be purged.
    expires_at  timestamptz not null,
    revoked_at  timestamptz not null default pg_catalog.now(),
    revoked_by  uuid
);
create index revoked_jwts_expires_idx on identity.revoked_jwts (expires_at);

create table identity.revoked_sessions (
    session_id  uuid primary key,
    user_id     uuid,
    revoked_at  timestamptz not null default pg_catalog.now(),
    revoked_by  uuid
);

create table identity.credentials (
    id               uuid primary key default pg_catalog.gen_random_uuid(),
    user_id          uuid not null references identity.users (id) on delete cascade,
    organization_id  uuid references identity.organizations (id) on delete cascade,
    provider         text not null check (provider ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    name             text not null check (pg_catalog.length(name) between 1 and 200),
    -- nonce || AEAD(secret) with (id, organization_id) as associated data.
    ciphertext       bytea not null,
    last4            text not null check (pg_catalog.length(last4) <= 4),
    is_default       boolean not null default false,
    is_system        boolean not null default false,
    enabled          boolean not null default true,
    credit_limit     numeric check (credit_limit >= 0),
    usage_total      numeric not null default 0 check (usage_total >= 0),
    exhausted_at     timestamptz,
    created_by       uuid,
    created_at       timestamptz not null default pg_catalog.now(),
    updated_at       timestamptz not null default pg_catalog.now(),
    unique (user_id, provider, name)
);
-- One default credential per user, enforced by the database.
create unique index credentials_one_default_per_user on identity.credentials (user_id) where is_default;
create index credentials_organization_idx on identity.credentials (organization_id);

create table identity.credential_usage (
    id             bigint generated always as identity primary key,
    credential_id  uuid not null references identity.credentials (id) on delete cascade,
    user_id        uuid not null,
    at             timestamptz not null default pg_catalog.now(),
    amount         numeric not null check (amount >= 0),
    tokens         bigint check (tokens >= 0)
);
create index credential_usage_credential_at_idx on identity.credential_usage (credential_id, at desc);

create table identity.subscriptions (
    user_id             uuid primary key references identity.users (id) on delete cascade,
    plan                text not null default 'trial' check (pg_catalog.length(plan) between 1 and 100),
    -- trialing / active / canceled are stored; expired is computed from the dates.
    status              text not null default 'trialing' check (status in ('trialing', 'active', 'canceled')),
    trial_ends_at       timestamptz,
    current_period_end  timestamptz,
    canceled_at         timestamptz,
    created_at          timestamptz not null default pg_catalog.now(),
    updated_at          timestamptz not null default pg_catalog.now()
);

create table identity.feature_flags (
    key              text primary key check (key ~ '^[a-z0-9][a-z0-9_.:-]{0,99}$'),
    enabled          boolean not null default false,
    rollout_percent  integer not null default 100 check (rollout_percent between 0 and 100),
    description      text check (pg_catalog.length(description) <= 1000),
    created_at       timestamptz not null default pg_catalog.now(),
    updated_at       timestamptz not null default pg_catalog.now()
);

create table identity.feature_flag_overrides (
    key         text not null references identity.feature_flags (key) on delete cascade,
    user_id     uuid not null references identity.users (id) on delete cascade,
    enabled     boolean not null,
    created_at  timestamptz not null default pg_catalog.now(),
    primary key (key, user_id)
);
create index feature_flag_overrides_user_idx on identity.feature_flag_overrides (user_id);

-- External identity providers (API.md section 11): issuers whose tokens
-- identity.authenticate accepts, with the JWKS their tokens are verified
-- with (set by hand, or fetched from options.jwks_uri by the database's
-- background worker) and their checked options. The Svix webhook secret is
-- AEAD ciphertext under identity.encryption_key, bound to the issuer.
create table identity.issuers (
    issuer                     text primary key check (pg_catalog.length(issuer) between 1 and 255),
    jwks                       jsonb not null check (pg_catalog.jsonb_typeof(jwks) = 'object'),
    options                    jsonb not null default '{}' check (pg_catalog.jsonb_typeof(options) = 'object'),
    webhook_secret_ciphertext  bytea,
    -- Bumped by every change of jwks or options: backends re-parse the keys
    -- of an issuer only when it moved.
    version                    bigint not null default 1,
    -- The background worker's last fetch of options.jwks_uri: when it
    -- succeeded, when and why the last one failed (the set in use stays the
    -- last good one), and when a token named an unknown kid.
    jwks_fetched_at            timestamptz,
    jwks_failed_at             timestamptz,
    jwks_error                 text check (pg_catalog.length(jwks_error) <= 500),
    created_at                 timestamptz not null default pg_catalog.now(),
    updated_at                 timestamptz not null default pg_catalog.now()
);

-- Who an issuer's subject is here. One user may have several identities.
-- user_id NULL is a tombstone: the user was deleted (or a user.deleted
-- webhook came before its user.created), and the subject is never
-- provisioned again.
create table identity.identities (
    issuer        text not null references identity.issuers (issuer) on delete cascade,
    subject       text not null check (pg_catalog.length(subject) between 1 and 255),
    user_id       uuid references identity.users (id) on delete set null,
    created_at    timestamptz not null default pg_catalog.now(),
    last_seen_at  timestamptz,
    primary key (issuer, subject)
);
create index identities_user_idx on identity.identities (user_id) where user_id is not null;

-- Webhook deliveries handled, by their svix-id: a repeat is a duplicate.
create table identity.webhook_deliveries (
    issuer       text not null references identity.issuers (issuer) on delete cascade,
    svix_id      text not null check (pg_catalog.length(svix_id) between 1 and 255),
    event_type   text not null check (pg_catalog.length(event_type) between 1 and 100),
    status       text not null check (status in ('processed', 'ignored')),
    user_id      uuid,
    received_at  timestamptz not null default pg_catalog.now(),
    primary key (issuer, svix_id)
);

-- Append-only: no foreign keys (the trail outlives what it names) and a
-- trigger that refuses UPDATE, DELETE and TRUNCATE for every role, owner and
-- superusers included.
create table identity.audit_log (
    id               bigint generated always as identity primary key,
    at               timestamptz not null default pg_catalog.now(),
    actor_id         uuid,
    actor_kind       text not null check (actor_kind in ('user', 'service', 'agent', 'system', 'anon')),
    actor_role       name not null default pg_catalog.session_user(),
    organization_id  uuid,
    action           text not null check (pg_catalog.length(action) between 1 and 100),
    target_type      text,
    target_id        text,
    details          jsonb not null default '{}' check (pg_catalog.jsonb_typeof(details) = 'object'),
    -- Tamper evidence (identity.verify_audit_log): each row is chained to the
    -- previous row of its organization's chain (organization_id NULL: the
    -- global chain) by prev_id and prev_hash; row_hash covers prev_hash and
    -- every other column (identity.audit_log_hash). NULL until the
    -- database's background writer chains the row, milliseconds after it
    -- committed (identity.audit_chain_pending).
    prev_id          bigint,
    prev_hash        bytea,
    row_hash         bytea
);
-- The rows the writer has not chained yet (a handful at any time): what
-- identity.audit_chain_pending looks for, without scanning the trail.
create index audit_log_unchained_idx on identity.audit_log (id) where row_hash is null;
create index audit_log_organization_at_idx on identity.audit_log (organization_id, at desc);
create index audit_log_target_idx on identity.audit_log (target_type, target_id);

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

-- Locks that no other role can take or hold up: a role needs UPDATE on a
-- table to lock its rows, and none is granted on this one (where an
-- advisory lock's key is public, and any role can take it first). Row 0
-- serialises the audit chainers; rows 1 to 1024 the critical sections of a
-- subject's first sign-in and webhooks and of a user's credentials, a key
-- hashed to a row (src/pg/locks.rs). Never written after the install, so
-- locking a row never fails a REPEATABLE READ transaction.
create table identity.mutexes (id int primary key check (id between 0 and 1024));
insert into identity.mutexes select g from pg_catalog.generate_series(0, 1024) g;
alter table identity.mutexes enable row level security;

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

-- The SQL-language functions of the extension are triggers and the audit
-- chain's, not API functions. Pinned search_path, no dependencies.
create function identity.audit_log_refuse_change() returns trigger
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
create trigger audit_log_no_update_delete before update or delete on identity.audit_log
    for each row execute function identity.audit_log_refuse_change();
create trigger audit_log_no_truncate before truncate on identity.audit_log
    for each statement execute function identity.audit_log_refuse_change();

-- Outbox: workers (Slack, analytics, credential provisioning) read rows and
-- mark them processed; functions also NOTIFY identity_events, delivered on commit.
create table identity.events (
    id               bigint generated always as identity primary key,
    type             text not null check (type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    user_id          uuid,
    organization_id  uuid,
    payload          jsonb not null default '{}' check (pg_catalog.jsonb_typeof(payload) = 'object'),
    created_at       timestamptz not null default pg_catalog.now(),
    processed_at     timestamptz
);
create index events_unprocessed_idx on identity.events (id) where processed_at is null;

-- Deny by default: RLS on every table, no policies yet.
alter table identity.organizations          enable row level security;
alter table identity.users                  enable row level security;
alter table identity.deleted_users          enable row level security;
alter table identity.supabase_auth_users    enable row level security;
alter table identity.api_tokens             enable row level security;
alter table identity.signing_keys           enable row level security;
alter table identity.revoked_jwts           enable row level security;
alter table identity.revoked_sessions       enable row level security;
alter table identity.credentials            enable row level security;
alter table identity.credential_usage       enable row level security;
alter table identity.subscriptions          enable row level security;
alter table identity.feature_flags          enable row level security;
alter table identity.feature_flag_overrides enable row level security;
alter table identity.audit_log              enable row level security;
alter table identity.events                 enable row level security;
alter table identity.issuers                enable row level security;
alter table identity.identities             enable row level security;
alter table identity.webhook_deliveries     enable row level security;

-- Backups keep everything (README "Backup and restore"): pg_dump skips the
-- rows of an extension's tables unless they are registered, so every table
-- that holds data, and the sequences behind its identity columns, is. The
-- extension inserts no row itself but identity.mutexes' fixed rows, which
-- CREATE EXTENSION makes again, so no filter is needed: a restore into a
-- fresh database (CREATE EXTENSION, then these rows) gives back every row.
select pg_catalog.pg_extension_config_dump('identity.organizations', '');
select pg_catalog.pg_extension_config_dump('identity.users', '');
select pg_catalog.pg_extension_config_dump('identity.deleted_users', '');
select pg_catalog.pg_extension_config_dump('identity.supabase_auth_users', '');
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
select pg_catalog.pg_extension_config_dump('identity.audit_chain_tips', '');
select pg_catalog.pg_extension_config_dump('identity.issuers', '');
select pg_catalog.pg_extension_config_dump('identity.identities', '');
select pg_catalog.pg_extension_config_dump('identity.webhook_deliveries', '');
select pg_catalog.pg_extension_config_dump('identity.credential_usage_id_seq', '');
select pg_catalog.pg_extension_config_dump('identity.audit_log_id_seq', '');
select pg_catalog.pg_extension_config_dump('identity.events_id_seq', '');
