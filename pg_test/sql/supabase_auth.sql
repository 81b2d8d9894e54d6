\i pg_test/fixtures.sql
\set ECHO none
\o /dev/null
set client_min_messages = warning;
\i pg_test/supabase_fixture.sql
reset client_min_messages;
\o
\set ECHO all
-- Supabase Auth's users (API.md 13): identity.users follows auth.users,
-- written as Supabase Auth writes it (supabase_auth_admin, no right in
-- schema identity), flags from raw_app_meta_data only.
select identity.create_organization('Supabase org') as org \gset
insert into identity.organizations (id, name) values ('00000000-0000-0000-0000-00000000a0a0', 'Acme via app_metadata');
-- Before the link: auth users, one already an identity user (same id
-- and email, any case), one whose email an identity user of another id
-- has, one whose id an identity user of another email has.
insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000b0002', 'already@example.com');
insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000b00ff', 'taken@example.com');
insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000b00fe', 'identity-only@example.com');
insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000b00fd', 'identity-only-2@example.com');
insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000b0005', 'different@example.com');
insert into auth.users (id, email, email_confirmed_at, raw_app_meta_data, created_at) values
  ('00000000-0000-0000-0000-0000000b0001', 'first@example.com', now(), '{"provider": "email", "providers": ["email"]}', now()),
  ('00000000-0000-0000-0000-0000000b0002', 'Already@Example.com', now(), '{}', now()),
  ('00000000-0000-0000-0000-0000000b0003', 'taken@example.com', now(), '{}', now()),
  -- The same id as an identity user of another email: not taken over.
  ('00000000-0000-0000-0000-0000000b0005', 'other@example.com', now(), '{}', now());
-- Phone-only (no email) and an email not confirmed yet: not users yet.
insert into auth.users (id, phone, created_at) values ('00000000-0000-0000-0000-0000000b0004', '15550004', now());
insert into auth.users (id, email, created_at) values ('00000000-0000-0000-0000-0000000b0006', 'unconfirmed@example.com', now());
-- Only system links; a database without auth.users says so (below).
select t.err($$select identity.link_supabase_auth()$$) as link_with_claims
from (select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-0000000b0002", "role": "authenticated"}', false)) s;
select set_config('request.jwt.claims', '', false) is not null as claims_reset;
select identity.link_supabase_auth() as first_link;
select identity.link_supabase_auth() as second_link;
select tgname, tgdeferrable, tginitdeferred from pg_trigger
where tgrelid = 'auth.users'::regclass and not tgisinternal order by tgname;
select u.id, u.email, u.phone, u.is_service_user, u.organization_id is not null as has_org, l.banned
from identity.supabase_auth_users l join identity.users u on u.id = l.user_id order by u.id;
-- Supabase Auth's admin API (auth.admin.createUser): INSERT, then the
-- app_metadata by an UPDATE in the same transaction: the flags are read
-- when it commits.
set session authorization supabase_auth_admin;
set search_path = auth, public;
begin;
insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at)
values ('00000000-0000-0000-0000-0000000b0010', 'authenticated', 'authenticated', 'svc@example.com', now(),
        '{"provider": "email", "providers": ["email"]}', '{}', now());
update auth.users set raw_app_meta_data = raw_app_meta_data
    || '{"is_service_user": true, "organization_id": "00000000-0000-0000-0000-00000000a0a0", "user_role": "admin", "application_name": "billing"}'
where id = '00000000-0000-0000-0000-0000000b0010';
commit;
-- A sign-up whose user_metadata claims every flag: none is taken.
insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at)
values ('00000000-0000-0000-0000-0000000b0011', 'authenticated', 'authenticated', 'mallory@example.com', now(),
        '{"provider": "email", "providers": ["email"]}',
        '{"is_service_user": true, "organization_id": "00000000-0000-0000-0000-00000000a0a0", "user_role": "admin"}', now());
-- An app_metadata of the wrong shape: left unlinked, the sign-up goes on.
insert into auth.users (id, email, email_confirmed_at, raw_app_meta_data, created_at)
values ('00000000-0000-0000-0000-0000000b0012', 'badmeta@example.com', now(), '{"is_service_user": true}', now());
-- Inserted and deleted in one transaction: nothing to follow.
begin;
insert into auth.users (id, email, email_confirmed_at, created_at) values ('00000000-0000-0000-0000-0000000b0013', 'gone@example.com', now(), now());
delete from auth.users where id = '00000000-0000-0000-0000-0000000b0013';
commit;
reset search_path;
reset session authorization;
select u.id, u.email, u.is_service_user, u.user_role, u.organization_id, u.application_name
from identity.users u where u.id in ('00000000-0000-0000-0000-0000000b0010', '00000000-0000-0000-0000-0000000b0011',
                                     '00000000-0000-0000-0000-0000000b0012', '00000000-0000-0000-0000-0000000b0013')
order by u.id;
-- The hook, as Supabase Auth calls it, gives the service user's claims.
select identity.grant_access('supabase_auth_admin', 'hook') is not null as hook_granted;
set session authorization supabase_auth_admin;
begin;
set local statement_timeout to '2000';
select h -> 'claims' ->> 'is_service_user' as service, h -> 'claims' ->> 'organization_id' as org,
       h -> 'claims' ->> 'user_role' as user_role
from "identity"."custom_access_token_hook"('{"user_id": "00000000-0000-0000-0000-0000000b0010", "claims": {"aud": "authenticated", "exp": 1900000000, "iat": 1800000000, "sub": "00000000-0000-0000-0000-0000000b0010", "email": "svc@example.com", "phone": "", "role": "authenticated", "aal": "aal1", "session_id": "00000000-0000-0000-0000-00000000c0c0", "is_anonymous": false}, "authentication_method": "password"}'::text::jsonb) h;
commit;
reset session authorization;
-- Ban: the user is suspended at once (their API token refused); the
-- lifted ban reactivates them.
select token as svc_token from identity.create_api_token('00000000-0000-0000-0000-0000000b0010', 'svc') \gset
set session authorization supabase_auth_admin;
update auth.users set banned_until = now() + interval '1 day' where id = '00000000-0000-0000-0000-0000000b0010';
reset session authorization;
select status, status_reason from identity.users where id = '00000000-0000-0000-0000-0000000b0010';
select t.state(format('select identity.verify_api_token(%L)', :'svc_token')) as banned_token;
set session authorization supabase_auth_admin;
update auth.users set banned_until = null where id = '00000000-0000-0000-0000-0000000b0010';
reset session authorization;
select status from identity.users where id = '00000000-0000-0000-0000-0000000b0010';
select identity.verify_api_token(:'svc_token') ->> 'user_id' as unbanned_token_user;
-- An admin's suspension is not the ban's to lift.
select identity.suspend_user('00000000-0000-0000-0000-0000000b0011', 'fraud review');
set session authorization supabase_auth_admin;
update auth.users set banned_until = now() + interval '1 hour' where id = '00000000-0000-0000-0000-0000000b0011';
update auth.users set banned_until = null where id = '00000000-0000-0000-0000-0000000b0011';
reset session authorization;
select status, status_reason from identity.users where id = '00000000-0000-0000-0000-0000000b0011';
-- ... nor a ban the admin overruled (reactivated during the ban).
set session authorization supabase_auth_admin;
update auth.users set banned_until = now() + interval '1 hour' where id = '00000000-0000-0000-0000-0000000b0001';
reset session authorization;
select identity.reactivate_user('00000000-0000-0000-0000-0000000b0001');
select identity.suspend_user('00000000-0000-0000-0000-0000000b0001', 'admin decision');
set session authorization supabase_auth_admin;
update auth.users set banned_until = null where id = '00000000-0000-0000-0000-0000000b0001';
reset session authorization;
select status, status_reason from identity.users where id = '00000000-0000-0000-0000-0000000b0001';
-- Email and phone follow; an email another identity user has is not
-- taken (WARNING), and Supabase Auth's statement still succeeds.
set session authorization supabase_auth_admin;
update auth.users set email = 'svc-new@example.com', phone = '15550010' where id = '00000000-0000-0000-0000-0000000b0010';
update auth.users set email = 'identity-only@example.com' where id = '00000000-0000-0000-0000-0000000b0011';
select email from auth.users where id = '00000000-0000-0000-0000-0000000b0011';
reset session authorization;
select id, email, phone from identity.users where id in ('00000000-0000-0000-0000-0000000b0010', '00000000-0000-0000-0000-0000000b0011') order by id;
-- Soft delete (deleted_at, the email overwritten by a hash in the same
-- UPDATE): the user is deleted, the hash never followed.
set session authorization supabase_auth_admin;
update auth.users set deleted_at = now(), email = md5(email) || '@deleted.invalid'
where id = '00000000-0000-0000-0000-0000000b0010';
reset session authorization;
select count(*) as soft_deleted_left, (select count(*) from identity.deleted_users where id = '00000000-0000-0000-0000-0000000b0010') as tombstones
from identity.users where id = '00000000-0000-0000-0000-0000000b0010';
select t.state(format('select identity.verify_api_token(%L)', :'svc_token')) as deleted_token;
-- Hard delete.
set session authorization supabase_auth_admin;
delete from auth.users where id = '00000000-0000-0000-0000-0000000b0002';
reset session authorization;
select count(*) as hard_deleted_left from identity.users where id = '00000000-0000-0000-0000-0000000b0002';
-- An email confirmed late makes the user then.
set session authorization supabase_auth_admin;
update auth.users set email_confirmed_at = now() where id = '00000000-0000-0000-0000-0000000b0006';
reset session authorization;
select email, status from identity.users where id = '00000000-0000-0000-0000-0000000b0006';
-- An email that cannot be followed never blocks a ban in the same UPDATE.
set session authorization supabase_auth_admin;
update auth.users set email = 'identity-only-2@example.com', banned_until = 'infinity'
where id = '00000000-0000-0000-0000-0000000b0006';
reset session authorization;
select email, status, status_reason from identity.users where id = '00000000-0000-0000-0000-0000000b0006';
-- update_user's status is an admin's decision too: a later unban leaves it.
select identity.update_user('00000000-0000-0000-0000-0000000b0006', '{"status": "active"}') is not null as admin_reactivated;
select identity.update_user('00000000-0000-0000-0000-0000000b0006', '{"status": "suspended"}') is not null as admin_suspended;
set session authorization supabase_auth_admin;
update auth.users set banned_until = null where id = '00000000-0000-0000-0000-0000000b0006';
reset session authorization;
select status from identity.users where id = '00000000-0000-0000-0000-0000000b0006';
-- Every refusal left an audit row (as system).
select action, target_id, actor_kind, details ->> 'cause' as cause, details ->> 'step' as step, details ->> 'sqlstate' as sqlstate
from identity.audit_log where action like 'supabase_auth.%' order by id;
-- A policy of auth.users' owner never runs in identity's reads of it (row
-- security off: the read fails instead), and nothing it would set
-- outlives them.
set session authorization supabase_auth_admin;
create function auth.sneaky() returns boolean language plpgsql as $$
begin perform pg_catalog.set_config('search_path', 'auth, pg_catalog', false); return true; end $$;
alter table auth.users force row level security;
create policy sneaky on auth.users using (auth.sneaky());
reset session authorization;
show search_path;
select t.err($$select identity.link_supabase_auth()$$) as forced_policy;
show search_path;
set session authorization supabase_auth_admin;
drop policy sneaky on auth.users;
alter table auth.users no force row level security;
reset session authorization;
-- Unlinked: auth.users changes are no longer followed; the users stay.
select identity.unlink_supabase_auth() as unlinked;
select count(*) as triggers_left from pg_trigger where tgrelid = 'auth.users'::regclass and not tgisinternal;
set session authorization supabase_auth_admin;
update auth.users set email = 'after-unlink@example.com' where id = '00000000-0000-0000-0000-0000000b0001';
reset session authorization;
select email from identity.users where id = '00000000-0000-0000-0000-0000000b0001';
drop schema auth cascade;
select t.err($$select identity.link_supabase_auth()$$) as no_auth_users;
-- An auth.users that is not Supabase Auth's (any role that may create a
-- schema could make one): refused, nothing taken.
do $$ begin create role not_supabase nologin; exception when duplicate_object then null; end $$;
grant create on database :"DBNAME" to not_supabase;
set session authorization not_supabase;
create schema auth;
create table auth.users (id uuid primary key, email text, phone text, raw_app_meta_data jsonb,
    email_confirmed_at timestamptz, banned_until timestamptz, deleted_at timestamptz);
insert into auth.users values ('00000000-0000-0000-0000-0000000b0001', 'evil@example.com', null, '{"user_role": "admin"}', now(), null, null);
reset session authorization;
select t.err($$select identity.link_supabase_auth()$$) as untrusted_auth_users;
select email from identity.users where id = '00000000-0000-0000-0000-0000000b0001';
drop schema auth cascade;
revoke create on database :"DBNAME" from not_supabase;
