\i pg_test/fixtures.sql
-- The grant level `anon` (PostgREST's anonymous role): pre_request, the
-- webhook entry point and the RLS helpers, nothing that mints, reads or
-- changes a token; an anonymous request with an x-api-key still becomes
-- the key's user.
do $$ begin create role anon_only nologin; exception when duplicate_object then null; end $$;
do $$ begin create role authenticator_anon login noinherit; exception when duplicate_object then null; end $$;
grant anon_only, authenticated to authenticator_anon;
select identity.grant_access('anon_only', 'anon');
select f, pg_catalog.has_function_privilege('anon_only', f, 'execute') as may
from unnest(array['identity.pre_request()', 'identity.handle_webhook(text, jsonb, text)', 'identity.uid()',
                  'identity.has_scope(text)', 'identity.verify_jwt(text, text)', 'identity.verify_api_token(text)',
                  'identity.exchange_api_token(text, interval)', 'identity.create_api_token(uuid, text, interval, text[])',
                  'identity.authenticate(text)', 'identity.jwks()']) f;
select count(*) as functions_granted from pg_catalog.pg_proc p
where p.pronamespace = 'identity'::regnamespace and pg_catalog.has_function_privilege('anon_only', p.oid, 'execute');
insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000a7001', 'anon-level@example.com');
create table t.anon_notes (id int, owner uuid);
insert into t.anon_notes values (1, '00000000-0000-0000-0000-0000000a7001'), (2, '00000000-0000-0000-0000-00000000ffff');
alter table t.anon_notes enable row level security;
create policy own on t.anon_notes for select using (owner = identity.uid());
grant select on t.anon_notes to anon_only, authenticated;
create table t.anon_key as
  select (select token from identity.create_api_token('00000000-0000-0000-0000-0000000a7001', 'anon level')) as api;
grant select on t.anon_key to anon_only;
set session authorization authenticator_anon;
-- An anonymous request: the policy's helper answers NULL, nothing is seen.
begin;
set local role anon_only;
select count(*) as anonymous_rows from t.anon_notes;
select t.state($$select identity.verify_jwt('a.b.c')$$) as verify_jwt_as_anon;
rollback;
-- A request with an x-api-key: pre_request verifies it and the request
-- goes on as authenticated, the key's user.
begin;
set local role anon_only;
select set_config('request.headers', jsonb_build_object('x-api-key', api)::text, true) from t.anon_key \gset
select identity.pre_request();
select current_user as role, identity.uid() as uid, count(*) as rows_seen from t.anon_notes group by 1, 2;
rollback;
reset session authorization;
