\i pg_test/fixtures.sql
-- CREATE EXTENSION creates every table with RLS enabled; DROP removes all.
select c.relname, c.relrowsecurity as rls
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'identity' and c.relkind = 'r'
order by 1;

-- RLS with SELECT policies only (writes go through functions); a role with
-- the user grant but no claims sees no rows; PUBLIC has no privileges at all.
select tablename, policyname, cmd from pg_policies where schemaname = 'identity' order by 1, 2;
begin;
set local role authenticated;
select count(*) as users_visible_without_claims from identity.users;
rollback;
select has_schema_privilege('public', 'identity', 'usage') as public_usage,
       has_table_privilege('anon', 'identity.users', 'select') as anon_select,
       has_function_privilege('anon', 'identity.decode_jwt(text)', 'execute') as anon_exec;

-- Every object of the extension lives in schema identity (nothing in public).
select count(*) as objects_outside_identity
from pg_depend d join pg_proc p on d.classid = 'pg_proc'::regclass and d.objid = p.oid
where d.refclassid = 'pg_extension'::regclass and d.deptype = 'e'
  and d.refobjid = (select oid from pg_extension where extname = 'identity')
  and p.pronamespace <> 'identity'::regnamespace;

-- Every lookup path has an index.
select indexrelid::regclass as index
from pg_index i join pg_class c on c.oid = i.indrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'identity'
order by indexrelid::regclass::text;

-- Foreign keys say what happens on delete.
select conrelid::regclass as tbl, confrelid::regclass as refs,
       case confdeltype when 'c' then 'cascade' when 'n' then 'set null'
            when 'r' then 'restrict' when 'a' then 'no action' end as on_delete
from pg_constraint
where contype = 'f' and connamespace = 'identity'::regnamespace
order by conrelid::regclass::text, confrelid::regclass::text, 3;

-- The extension can be created in a second database of the same cluster, and
-- DROP EXTENSION leaves nothing behind.
create database identity_second;
\set scenario_db :DBNAME
\c identity_second
create extension identity;
select count(*) as tables from pg_tables where schemaname = 'identity';
drop extension identity;
select count(*) as schemas_left from pg_namespace where nspname = 'identity';
select count(*) as functions_left from pg_proc p join pg_namespace n on n.oid = p.pronamespace
 where n.nspname = 'identity';
create extension identity;
select count(*) as tables_again from pg_tables where schemaname = 'identity';
\c :scenario_db
drop database identity_second;
