-- Data made on PostgreSQL 15 for pg_test/pg_upgrade.sh, and what this
-- build answered for it, kept in public.before (k, v) for checks.sql to
-- compare after pg_upgrade. Runs as the superuser (the system actor).
-- psql variable: jwks_uri (a loopback URL serving a JWKS, for the fetcher).
\set ON_ERROR_STOP 1
create extension identity;
do $$ begin create role authenticated nologin; exception when duplicate_object then null; end $$;
do $$ begin create role service_role nologin; exception when duplicate_object then null; end $$;
select identity.grant_access('authenticated', 'user');
select identity.grant_access('service_role', 'admin');
create table public.before (k text primary key, v text not null);
-- Whether an API token is refused as unauthenticated (28000).
create function public.refused(token text) returns boolean language plpgsql as $$
begin
    perform identity.verify_api_token(token);
    return false;
exception when others then
    return sqlstate = '28000';
end
$$;

-- Users: an organization, a member, an admin, a service user.
insert into before select 'org', identity.create_organization('Upgrade Org')::text;
insert into before select 'user', identity.provision_user('ext-pgup-1', 'ada@pgup.test', 'Ada', 'Lovelace',
                                                          (select v::uuid from before where k = 'org'))->'user'->>'id';
insert into before select 'admin', identity.provision_user('ext-pgup-2', 'grace@pgup.test', 'Grace', 'Hopper',
                                                           (select v::uuid from before where k = 'org'))->'user'->>'id';
update identity.users set user_role = 'admin' where id = (select v::uuid from before where k = 'admin');
insert into before select 'service', s.user_id::text
from identity.create_service_user('svc@pgup.test', (select v::uuid from before where k = 'org'),
                                  null, 'Upgrade app', 'made before pg_upgrade') s;

-- API tokens: a user's, a service user's, a revoked one.
insert into before select 'token', t.token
from identity.create_api_token((select v::uuid from before where k = 'user'), 'upgrade token', '30 days') t;
insert into before select 'service_token', t.token
from identity.create_api_token((select v::uuid from before where k = 'service'), 'service token', '30 days') t;
insert into before select 'revoked_token', t.token
from identity.create_api_token((select v::uuid from before where k = 'user'), 'revoked token', '30 days') t;
select identity.revoke_api_token(t.id) from identity.api_tokens t where t.name = 'revoked token';
insert into before select 'principal', (identity.verify_api_token(v) - 'last_used_at')::text from before where k = 'token';

-- JWTs: HS256, then one signed by each asymmetric key (ES256, RS256,
-- EdDSA; each activated in turn, the previous one retired and still
-- verifying), and access tokens: one kept, one whose jti is revoked, one
-- whose session is revoked.
insert into before select 'hs256_jwt', identity.sign_jwt(jsonb_build_object('sub', v, 'aud', 'authenticated'), '1 day')
from before where k = 'user';
insert into before select 'kid_' || alg, identity.generate_signing_key(alg) from unnest(array['ES256', 'RS256', 'EdDSA']) alg;
select identity.activate_signing_key((select v from before where k = 'kid_ES256'));
insert into before select 'es256_jwt', identity.sign_jwt(jsonb_build_object('sub', v, 'aud', 'authenticated'), '1 day')
from before where k = 'user';
select identity.activate_signing_key((select v from before where k = 'kid_RS256'));
insert into before select 'rs256_jwt', identity.sign_jwt(jsonb_build_object('sub', v, 'aud', 'authenticated'), '1 day')
from before where k = 'user';
select identity.activate_signing_key((select v from before where k = 'kid_EdDSA'));
insert into before select 'eddsa_jwt', identity.sign_jwt(jsonb_build_object('sub', v, 'aud', 'authenticated'), '1 day')
from before where k = 'user';
insert into before select 'access_jwt', identity.issue_access_token(v::uuid) from before where k = 'user';
insert into before select 'jti_revoked_jwt', identity.issue_access_token(v::uuid) from before where k = 'user';
select identity.revoke_jwt(identity.decode_jwt(v)#>>'{payload,jti}', now() + interval '1 day')
from before where k = 'jti_revoked_jwt';
insert into before select 'session_revoked_jwt', identity.issue_access_token(v::uuid) from before where k = 'user';
select identity.revoke_session((identity.decode_jwt(v)#>>'{payload,session_id}')::uuid)
from before where k = 'session_revoked_jwt';
insert into before select 'jwks', identity.jwks()::text;
-- Past the 1,000 rows beyond which verify_jwt leaves each revocation table
-- to the database's shared revocation filter.
insert into identity.revoked_jwts (jti, expires_at)
select 'pgup-filler-' || i, now() + interval '1 day' from generate_series(1, 1500) i;
insert into identity.revoked_sessions (session_id)
select md5('pgup-filler' || i)::uuid from generate_series(1, 1500) i;

-- Credentials (AI provider keys, sealed under identity.encryption_key):
-- the user's own (made as the user) and a system credential.
select set_config('request.jwt.claims', jsonb_build_object('sub', v, 'role', 'authenticated')::text, false)
from before where k = 'user';
insert into before select 'credential', (identity.create_credential('openrouter', 'main', 'sk-or-v1-pgup-secret-0001', true, 10))->>'id';
select set_config('request.jwt.claims', '', false);
insert into before select 'system_credential', (identity.create_system_credential(
    (select v::uuid from before where k = 'service'), 'anthropic', 'sk-ant-pgup-system-0002'))->>'id';

-- Registered issuers: one with its keys given (this database's own public
-- keys serve as the set), one whose keys the JWKS fetcher fetches (every
-- 2 seconds: it stays while a fetch is due).
insert into before select 'issuer', (identity.register_issuer('https://idp.pgup.test', identity.jwks(),
    '{"audience": "pgup-app"}'))->>'issuer';
insert into before select 'uri_issuer', (identity.register_issuer('https://uri.pgup.test', null,
    jsonb_build_object('jwks_uri', :'jwks_uri', 'audience', 'pgup-app', 'jwks_refresh_seconds', 2)))->>'issuer';
-- The fetcher's first fetch (asynchronous, after the commit), so that what
-- is recorded below holds the fetched key.
do $$ begin
    for attempt in 1..200 loop
        exit when exists (select 1 from identity.list_issuers() i
                          where i->>'issuer' = 'https://uri.pgup.test' and (i->>'key_count')::int = 1);
        perform pg_sleep(0.05);
    end loop;
end $$;

-- What the data amounts to.
insert into before select 'issuers', (select jsonb_agg(i - 'jwks_fetched_at' - 'jwks_failed_at' - 'jwks_error'
                                                         - 'updated_at' - 'version' order by i->>'issuer')
                                      from identity.list_issuers() i)::text;
insert into before select 'revoked_jwts', count(*)::text from identity.revoked_jwts;
insert into before select 'revoked_sessions', count(*)::text from identity.revoked_sessions;
insert into before select 'users', count(*)::text from identity.users;
insert into before select 'api_tokens', count(*)::text from identity.api_tokens;
insert into before select 'signing_keys', string_agg(kid || ':' || status, ',' order by kid) from identity.signing_keys;
insert into before select 'audit_rows', count(*)::text from identity.audit_log;
insert into before select 'audit_valid', identity.verify_audit_log()::text;
select 'kept:' || k, length(v) > 0 as kept from before order by k;
