\pset footer off
\set QUIET on
-- identity demo: what exists so far. Each section names its API.md section.
create extension identity;
create role authenticated nologin;
create role anon nologin;

\echo '\n### 1. The data model: every table in schema identity, RLS on every table'
select c.relname as table, c.relrowsecurity as rls_enabled
from pg_class c where c.relnamespace = 'identity'::regnamespace and c.relkind = 'r' order by 1;

\echo '\n### 2. Settings: secrets are masked for everyone, refused to non-superusers'
select name, setting, context from pg_settings where name like 'identity.%' order by 1;
show identity.jwt_secret;
set role authenticated;
\set ON_ERROR_STOP off
show identity.jwt_secret;
set identity.claims_source = 'request';
\set ON_ERROR_STOP on
reset role;

\echo '\n### 3. Least privilege: nothing for PUBLIC; grant_access hands out one level'
select identity.grant_access('authenticated', 'user');
select r.rolname as role, has_function_privilege(r.oid, 'identity.decode_jwt(text)', 'execute') as can_decode
from pg_roles r where r.rolname in ('authenticated', 'anon') order by 1;

\echo '\n### 4. identity.decode_jwt (API.md 3): a Supabase-shaped token, then bad input with its SQLSTATE'
set role authenticated;
select jsonb_pretty(identity.decode_jwt(
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJhdXRoZW50aWNhdGVkIiwiZXhwIjoxNzY0MDAwMDAwLCJzdWIiOiIxMTExMTExMS0yMjIyLTMzMzMtNDQ0NC01NTU1NTU1NTU1NTUiLCJlbWFpbCI6ImFkYUBleGFtcGxlLmNvbSIsInJvbGUiOiJhdXRoZW50aWNhdGVkIn0.c2lnbmF0dXJl')) as decoded;
\set VERBOSITY verbose
\set ON_ERROR_STOP off
select identity.decode_jwt('abc.def');
select identity.decode_jwt(repeat('a', 1048576));
\set ON_ERROR_STOP on
\set VERBOSITY default
reset role;

\echo '\n### 5. The access-token hook (API.md 2), called as Supabase Auth calls it'
create role supabase_auth_admin nologin;
select identity.grant_access('supabase_auth_admin', 'hook');
insert into identity.organizations (id, name) values ('00000000-0000-0000-0000-0000000000a1', 'Acme');
insert into identity.users (id, email, organization_id, user_role, is_service_user, application_id, status) values
  ('00000000-0000-0000-0000-0000000000b1', 'ada@acme.test', '00000000-0000-0000-0000-0000000000a1', 'admin', false, null, 'active'),
  ('00000000-0000-0000-0000-0000000000b2', 'bot@acme.test', '00000000-0000-0000-0000-0000000000a1', 'user', true,
   '00000000-0000-0000-0000-0000000000c1', 'active'),
  ('00000000-0000-0000-0000-0000000000b3', 'eve@acme.test', '00000000-0000-0000-0000-0000000000a1', 'user', false, null, 'suspended');
begin;
set local role supabase_auth_admin;
set local statement_timeout to '2000';
-- user_metadata claims "service user + admin" for everyone: ignored.
select u.who, identity.custom_access_token_hook(jsonb_build_object(
  'user_id', u.id, 'authentication_method', 'password',
  'claims', jsonb_build_object('aud', 'authenticated', 'exp', 2000000000, 'iat', 1999996400, 'sub', u.id,
    'email', u.who, 'phone', '', 'role', 'authenticated', 'aal', 'aal1',
    'session_id', '4b938a09-5372-4177-a314-cfa292099ea2', 'is_anonymous', false,
    'user_metadata', '{"is_service_user": true, "user_role": "admin"}'::jsonb))) as answer
from (values ('ada@acme.test (admin)', '00000000-0000-0000-0000-0000000000b1'),
             ('bot@acme.test (service user)', '00000000-0000-0000-0000-0000000000b2'),
             ('eve@acme.test (suspended)', '00000000-0000-0000-0000-0000000000b3'),
             ('no row in identity.users', '00000000-0000-0000-0000-0000000000ff')) as u(who, id);
select identity.custom_access_token_hook('{"user_id": "not-a-uuid", "claims": {}}') as malformed;
rollback;

\echo '\n### 6. API tokens (API.md 4): shown once, hashed at rest, checksummed, exchanged for a JWT'
create role service_role nologin;
select identity.grant_access('service_role', 'admin');
set role service_role;
create temp table demo_token as
  select * from identity.create_api_token('00000000-0000-0000-0000-0000000000b2', 'deploy bot', scopes => array['agents.run']);
select token_id is not null as created, left(token, 8) || '...' as token_shown_once, expires_at::date - now()::date as days_valid
from demo_token;
select jsonb_pretty(identity.verify_api_token(token)) as principal from demo_token;
select name, display_prefix, last4 from identity.list_api_tokens('00000000-0000-0000-0000-0000000000b2') l,
  lateral jsonb_to_record(l) as x(name text, display_prefix text, last4 text);
\set ON_ERROR_STOP off
select identity.verify_api_token(left(token, 20) || case when substr(token, 21, 1) = 'X' then 'Y' else 'X' end
                                 || substr(token, 22)) as one_typo from demo_token;
\set ON_ERROR_STOP on
select c->>'sub' as sub, c->'amr'->0->>'method' as amr, c->'scopes' as scopes, c->>'application_id' as application_id
from demo_token, lateral identity.verify_jwt(identity.exchange_api_token(token)) c;
reset role;
select count(*) as rows_holding_the_token_in_clear from identity.api_tokens k, demo_token d
where to_jsonb(k)::text like '%' || d.token || '%';

\echo '\n### 7. RLS helpers (API.md 8): a policy on the caller, as PostgREST sets claims'
create table public.notes (owner uuid, body text);
insert into public.notes values ('00000000-0000-0000-0000-0000000000b1', 'ada''s note'), ('00000000-0000-0000-0000-0000000000b2', 'bot''s note');
alter table public.notes enable row level security;
create policy own_notes on public.notes using (owner = identity.uid());
grant select on public.notes to authenticated;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-0000000000b1", "role": "authenticated"}', true) is not null as claims_set;
select identity.uid(), identity.actor()->>'kind' as kind, body from public.notes;
rollback;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{not json', true) is not null as malformed_claims;
select count(*) as visible_with_malformed_claims from public.notes;
rollback;

\echo '\n### 8. Users and organizations (API.md 6, 9): provisioning, a service user, suspension at once, current_user()'
set role service_role;
select identity.create_organization('Globex') as org \gset
-- An identity provider's webhook worker provisions a user: token shown once, trial, events.
select p->>'created' as created, p->'user'->>'email' as email, left(p->>'api_token', 8) || '...' as api_token
from identity.provision_user('clerk|grace', 'grace@globex.test', 'Grace', 'Hopper', :'org') p;
select p->>'created' as created_again, p->'api_token' as api_token_again
from identity.provision_user('clerk|grace', 'grace@globex.test') p;
select (identity.provision_user('clerk|grace', 'grace@globex.test')->'user'->>'id') as grace \gset
select identity.update_user(:'grace', '{"user_role": "admin"}')->>'user_role' as grace_is_now;
select identity.set_feature_flag('new.editor', true, 50, 'half of the users');
reset role;
-- Grace, an org admin signed in through PostgREST, creates a service user.
set role authenticated;
select set_config('request.jwt.claims', json_build_object('sub', :'grace', 'role', 'authenticated')::text, false) is not null as claims_set;
create temp table demo_bot as
  select * from identity.create_service_user('ci-bot@globex.test', :'org', null, 'CI bot', 'deploys');
select u->>'email' as service_user, u->>'created_by_name' as created_by from demo_bot, identity.user_by_id(user_id) u;
select p->'user'->>'email' as me, p->'organization'->>'name' as org, p->>'user_role' as role,
       p->'subscription'->>'status' as subscription, p->'feature_flags' as flags,
       identity.verify_jwt(p->'tokens'->>'websocket', 'websocket')->>'aud' as websocket_token
from identity.current_user() p;
-- The bot's token works until the bot is suspended: the very next call fails.
select identity.verify_api_token(token)->>'is_service_user' as bot_token_ok from demo_bot;
select identity.suspend_user(user_id, 'rotating credentials') from demo_bot;
\set ON_ERROR_STOP off
select identity.verify_api_token(token) from demo_bot;
\set ON_ERROR_STOP on
reset role;
select set_config('request.jwt.claims', '', false) is not null as signed_out;
select type, count(*) as events from identity.events group by type order by type;

\echo '\n### 9. AI credentials (API.md 7): encrypted, masked, revealed to the owner only, credit limit'
set role authenticated;
select set_config('request.jwt.claims', json_build_object('sub', :'grace', 'role', 'authenticated')::text, false) is not null as acting_as_grace;
select c->>'provider' as provider, c->>'name' as name, c->>'last4' as last4, c->>'is_default' as is_default, c->>'credit_limit' as credit_limit
from identity.create_credential('openrouter', 'team key', 'sk-or-v1-demo-0123456789abcdef', true, 5) c;
select c->>'name' as name, c->>'last4' as last4, c ? 'secret' as has_secret from identity.list_credentials() c;
select identity.reveal_credential_secret((identity.list_credentials()->>'id')::uuid) as revealed_to_owner;
select identity.record_credential_usage((identity.list_credentials()->>'id')::uuid, 3, 1200);
\set ON_ERROR_STOP off
select identity.record_credential_usage((identity.list_credentials()->>'id')::uuid, 3, 1200) as over_the_limit;
\set ON_ERROR_STOP on
reset role;
select set_config('request.jwt.claims', '', false) is not null as signed_out;
select id as cred from identity.credentials where name = 'team key' \gset
select identity.provision_user('clerk|mallory', 'mallory@elsewhere.test')->'user'->>'id' as mallory \gset
set role authenticated;
select set_config('request.jwt.claims', json_build_object('sub', :'mallory', 'role', 'authenticated')::text, false) is not null as acting_as_mallory;
\set ON_ERROR_STOP off
select identity.reveal_credential_secret(:'cred');
\set ON_ERROR_STOP on
reset role;
select set_config('request.jwt.claims', '', false) is not null as signed_out;
select u->'calls' as calls, u->'total_amount' as spent, u->'remaining' as remaining
from (select identity.credential_usage(:'cred') u) x;
select encode(substr(ciphertext, 1, 8), 'hex') || '...' as stored_ciphertext, last4 from identity.credentials where id = :'cred';

\echo '\n### 10. The audit trail is append-only, for superusers too'
select id, actor_kind, actor_role, action, target_type, details from identity.audit_log order by id;
\set ON_ERROR_STOP off
delete from identity.audit_log;
\set ON_ERROR_STOP on

\echo '\n### 11. DROP EXTENSION removes everything'
drop table public.notes;
drop extension identity;
select count(*) as objects_left from pg_namespace where nspname = 'identity';
