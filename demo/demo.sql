\pset footer off
\set QUIET on
-- identity demo: what exists so far. Each section names its API.md section.
create extension identity;
create role authenticated nologin;
create role anon nologin;

\echo '\n### 1. The data model: every table in schema identity, RLS on (deny by default)'
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

\echo '\n### 5. The audit trail is append-only, for superusers too'
select id, actor_kind, actor_role, action, target_type, target_id, details from identity.audit_log order by id;
\set ON_ERROR_STOP off
delete from identity.audit_log;
\set ON_ERROR_STOP on

\echo '\n### 6. DROP EXTENSION removes everything'
drop extension identity;
select count(*) as objects_left from pg_namespace where nspname = 'identity';
