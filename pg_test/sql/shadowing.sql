\i pg_test/fixtures.sql
-- Hijacking by shadowing: an unprivileged role creates, in a schema first on
-- its search_path, functions named like built-ins (lower, now, gen_random_uuid,
-- jsonb_build_object), `=` operators on text and uuid that always answer true
-- and count their calls, and tables named like ours. No identity function may
-- use any of them.
create role mallory login;
grant usage, create on schema public to mallory;
select identity.grant_access('mallory', 'user');
select identity.grant_access('mallory', 'admin');
select identity.grant_access('mallory', 'hook');
insert into identity.users (id, email) values ('00000000-0000-0000-0000-00000000d0d0', 'shadow@example.com');
set role mallory;
create table public.hits (what text);
create function public.hit(w text) returns boolean language plpgsql as $$ begin insert into public.hits values (w); return true; end $$;
create function public.eq_text(text, text) returns boolean language sql as $$ select public.hit('text =') $$;
create function public.eq_uuid(uuid, uuid) returns boolean language sql as $$ select public.hit('uuid =') $$;
create operator public.= (leftarg = text, rightarg = text, function = public.eq_text);
create operator public.= (leftarg = uuid, rightarg = uuid, function = public.eq_uuid);
create function public.lower(text) returns text language sql as $$ select public.hit('lower')::text $$;
create function public.now() returns timestamptz language sql as $$ select case when public.hit('now') then 'epoch'::timestamptz end $$;
create function public.gen_random_uuid() returns uuid language sql as $$ select case when public.hit('gen_random_uuid') then '00000000-0000-0000-0000-000000000000'::uuid end $$;
create table public.users (id uuid, status text);
create table public.api_tokens (id uuid, token_hash bytea, user_id uuid);
create table public.revoked_jwts (jti text);
set search_path = public, pg_catalog;

-- A flow across the extension, as mallory with the shadows in front.
create temp table r as
  select t.token, t.token_id from identity.create_api_token('00000000-0000-0000-0000-00000000d0d0', 'shadow test') t;
select (identity.verify_api_token(token))->>'user_id' as api_token_user from r;
select (identity.verify_jwt(identity.exchange_api_token(token)))->>'sub' as exchanged_sub from r;
select (identity.verify_jwt(identity.sign_jwt('{"sub": "00000000-0000-0000-0000-00000000d0d0"}')))->>'sub' as jwt_sub;
select identity.custom_access_token_hook(jsonb_build_object('user_id', '00000000-0000-0000-0000-00000000d0d0',
  'claims', jsonb_build_object('aud', 'authenticated', 'exp', 2000000000, 'iat', 1999996400, 'sub', '00000000-0000-0000-0000-00000000d0d0',
    'email', 'shadow@example.com', 'phone', '', 'role', 'authenticated', 'aal', 'aal1', 'session_id', '00000000-0000-0000-0000-000000000001',
    'is_anonymous', false))) -> 'claims' ->> 'user_role' as hook_role;
select count(*) as tokens_listed from identity.list_api_tokens('00000000-0000-0000-0000-00000000d0d0');
select identity.revoke_jwt('shadow-jti', pg_catalog.now() operator(pg_catalog.+) interval '1 hour');
select identity.rotate_api_token(token_id) is not null as rotated from r;
select identity.revoke_api_token(token_id) from r;
-- (Called directly, not through the t.err test helper: that helper's own
-- nullif() would resolve `=` through this search_path.)
select identity.verify_api_token(token) from r;
begin;
select identity.authenticate(identity.issue_access_token('00000000-0000-0000-0000-00000000d0d0')) ->> 'sub' as authenticated;
select identity.uid() as uid;
commit;
-- Users, flags and credentials (mallory holds the admin level: system).
select identity.create_organization('Shadow Org') is not null as org_created;
select (identity.provision_user('idp|shadow', 'shadow2@example.com', user_id => '00000000-0000-0000-0000-00000000d0d1'))->>'created' as provisioned;
select identity.update_user('00000000-0000-0000-0000-00000000d0d0', '{"first_name": "Shade"}')->>'first_name' as updated;
select identity.set_feature_flag('shadow.flag', true, 50);
select identity.set_feature_flag_override('shadow.flag', '00000000-0000-0000-0000-00000000d0d0', true);
select identity.feature_flags('00000000-0000-0000-0000-00000000d0d0')->'shadow.flag' as flag;
select identity.subscription_status('00000000-0000-0000-0000-00000000d0d1')->>'status' as subscription;
create temp table c as select (identity.create_system_credential('00000000-0000-0000-0000-00000000d0d0', 'openrouter',
  'sk-or-v1-shadow-secret-0001', 10)->>'id')::uuid as id;
select identity.reveal_credential_secret(id) as revealed from c;
select identity.record_credential_usage(id, 1) from c;
select identity.credential_usage(id)->'calls' as calls from c;
select identity.update_credential(id, '{"name": "renamed"}')->>'name' as renamed from c;
select identity.suspend_user('00000000-0000-0000-0000-00000000d0d1');
select identity.reactivate_user('00000000-0000-0000-0000-00000000d0d1');
select identity.delete_user('00000000-0000-0000-0000-00000000d0d1');
select identity.delete_credential(id) from c;
-- Not one shadow was called.
select what, count(*) from public.hits group by what order by what;
select count(*) as shadow_calls from public.hits;
reset search_path;
reset role;
