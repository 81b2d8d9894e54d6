\i pg_test/fixtures.sql
-- identity.custom_access_token_hook as Supabase Auth calls it: as
-- supabase_auth_admin holding only the `hook` level, inside a transaction
-- with a 2 s statement timeout.
select identity.grant_access('supabase_auth_admin', 'hook');
insert into identity.organizations (id, name) values
  ('00000000-0000-0000-0000-0000000000a1', 'Hooked Org');
insert into identity.users (id, email, organization_id, user_role, is_service_user, application_id, status) values
  ('00000000-0000-0000-0000-0000000000b1', 'user@hook.test',    '00000000-0000-0000-0000-0000000000a1', 'user',  false, null, 'active'),
  ('00000000-0000-0000-0000-0000000000b2', 'admin@hook.test',   '00000000-0000-0000-0000-0000000000a1', 'admin', false, null, 'active'),
  ('00000000-0000-0000-0000-0000000000b3', 'svc@hook.test',     '00000000-0000-0000-0000-0000000000a1', 'user',  true,  '00000000-0000-0000-0000-0000000000c1', 'active'),
  ('00000000-0000-0000-0000-0000000000b4', 'sus@hook.test',     '00000000-0000-0000-0000-0000000000a1', 'admin', false, null, 'suspended'),
  ('00000000-0000-0000-0000-0000000000b5', 'off@hook.test',     null,                                   'user',  false, null, 'disabled');

create function t.event(uid text, method text, with_metadata boolean default true) returns jsonb
language sql as $$
  select jsonb_strip_nulls(jsonb_build_object(
    'metadata', case when with_metadata then jsonb_build_object('uuid', gen_random_uuid(), 'time', now(),
                     'name', 'customize-access-token', 'ip_address', '127.0.0.1') end,
    'user_id', uid,
    'authentication_method', method,
    'claims', jsonb_build_object(
      'iss', 'https://project.supabase.co/auth/v1', 'aud', 'authenticated',
      'exp', 2000000000, 'iat', 1999996400, 'sub', uid,
      'email', 'x@hook.test', 'phone', '', 'role', 'authenticated', 'aal', 'aal1',
      'amr', jsonb_build_array(jsonb_build_object('method', method, 'timestamp', 1999996400)),
      'session_id', '4b938a09-5372-4177-a314-cfa292099ea2', 'is_anonymous', method = 'anonymous',
      'app_metadata', jsonb_build_object('provider', 'email'),
      'user_metadata', jsonb_build_object('is_service_user', true, 'user_role', 'admin'))))
$$;
grant execute on function t.event(text, text, boolean) to public;

begin;
set local role supabase_auth_admin;
set local statement_timeout to '2000';
-- Every user kind: the added claims come from identity.users only
-- (user_metadata says service user + admin for everyone and is ignored).
select u.kind, r->'claims'->>'role' as role, r->'claims'->'is_service_user' as is_service_user,
       r->'claims'->>'user_role' as user_role, r->'claims'->>'organization_id' as organization_id,
       r->'claims'->>'application_id' as application_id, r->'error' as error
from (values ('none',      '00000000-0000-0000-0000-0000000000ff'),
             ('user',      '00000000-0000-0000-0000-0000000000b1'),
             ('admin',     '00000000-0000-0000-0000-0000000000b2'),
             ('service',   '00000000-0000-0000-0000-0000000000b3'),
             ('suspended', '00000000-0000-0000-0000-0000000000b4'),
             ('disabled',  '00000000-0000-0000-0000-0000000000b5')) as u(kind, id),
     lateral identity.custom_access_token_hook(t.event(u.id, 'password')) as r;

-- Every authentication method, with and without metadata: all input claims kept.
select m.method, w.with_metadata,
       (r->'claims') @> ((t.event('00000000-0000-0000-0000-0000000000b1', m.method, w.with_metadata)->'claims')
                          - 'user_metadata'::text) as input_claims_kept,
       r->'claims'->'user_metadata' = '{"is_service_user": true, "user_role": "admin"}' as user_metadata_kept,
       r->'claims'->>'user_role' as user_role
from unnest(array['password','otp','oauth','sso/saml','magiclink','email/signup','token_refresh',
                  'anonymous','recovery','invite']) as m(method),
     unnest(array[true, false]) as w(with_metadata),
     lateral identity.custom_access_token_hook(
       t.event('00000000-0000-0000-0000-0000000000b1', m.method, w.with_metadata)) as r
order by 1, 2;

-- aud as an array, client_id and scope kept.
select (identity.custom_access_token_hook(jsonb_set(jsonb_set(jsonb_set(
         t.event('00000000-0000-0000-0000-0000000000b2', 'oauth'),
         '{claims,aud}', '["authenticated","api"]'), '{claims,client_id}', '"app-1"'), '{claims,scope}', '"openid"'))
       -> 'claims') - array['exp', 'iat', 'amr', 'iss', 'session_id', 'app_metadata', 'user_metadata'] as claims;

-- Malformed events: 400 error objects, never an exception.
select e.label, r as answer
from (values
  ('null',               null::jsonb),
  ('array',              '[1]'::jsonb),
  ('no user_id',         t.event('x', 'password') - 'user_id'),
  ('user_id not uuid',   t.event('not-a-uuid', 'password')),
  ('no claims',          t.event('00000000-0000-0000-0000-0000000000b1', 'password') - 'claims'),
  ('claims not object',  jsonb_set(t.event('00000000-0000-0000-0000-0000000000b1', 'password'), '{claims}', '"x"')),
  ('exp as string',      jsonb_set(t.event('00000000-0000-0000-0000-0000000000b1', 'password'), '{claims,exp}', '"1"')),
  ('missing session_id', t.event('00000000-0000-0000-0000-0000000000b1', 'password') #- '{claims,session_id}'),
  ('oversized',          jsonb_set(t.event('00000000-0000-0000-0000-0000000000b1', 'password', false), '{claims,big}',
                                   to_jsonb(repeat('x', 300000))))
) as e(label, ev), lateral identity.custom_access_token_hook(e.ev) as r;

-- Shadowing objects on the caller's search_path change nothing: a `users`
-- table saying the user is suspended, first on the search_path.
rollback;
create schema shadow;
grant usage on schema shadow to supabase_auth_admin;
create table shadow.users (id uuid, status text, user_role text, is_service_user boolean);
insert into shadow.users values ('00000000-0000-0000-0000-0000000000b1', 'suspended', 'admin', true);
grant select on shadow.users to supabase_auth_admin;
begin;
set local role supabase_auth_admin;
set local search_path = shadow, public;
select r->'claims'->>'user_role' as user_role, r->'claims'->'is_service_user' as is_service_user, r->'error' as error
from identity.custom_access_token_hook(t.event('00000000-0000-0000-0000-0000000000b1', 'password')) as r;

-- The hook role can call nothing else and read no table.
select t.err('select count(*) from identity.users');
select t.err('select count(*) from identity.api_tokens');
select t.err('select count(*) from identity.credentials');
select t.err('select count(*) from identity.audit_log');
select t.err($$select identity.decode_jwt('e30.e30.')$$);
select t.err($$select identity.grant_access('supabase_auth_admin', 'admin')$$);
rollback;

-- The hook runs with the caller's rights (no SQL inside it: it reads
-- identity.users through the primary key index), so it is not SECURITY
-- DEFINER and has no search_path to pin. STABLE.
select p.prosecdef as security_definer, p.provolatile as volatility, p.proconfig as config
from pg_proc p where p.oid = 'identity.custom_access_token_hook(jsonb)'::regprocedure;
-- Its grants: the hook role and nobody else but the owner.
select r.rolname, has_function_privilege(r.oid, 'identity.custom_access_token_hook(jsonb)', 'execute') as can_call
from pg_roles r where r.rolname in ('supabase_auth_admin', 'authenticated', 'anon', 'service_role') order by 1;

-- The hook caches where identity.users lives per backend; DDL invalidates
-- it. Recreate the extension in this same session (new OIDs) and call again.
select identity.custom_access_token_hook(t.event('00000000-0000-0000-0000-0000000000b2', 'password'))
       ->'claims'->>'user_role' as before_recreate;
drop extension identity;
create extension identity;
insert into identity.users (id, email, user_role) values ('00000000-0000-0000-0000-0000000000b2', 'again@hook.test', 'system');
select identity.custom_access_token_hook(t.event('00000000-0000-0000-0000-0000000000b2', 'password'))
       ->'claims'->>'user_role' as after_recreate;
