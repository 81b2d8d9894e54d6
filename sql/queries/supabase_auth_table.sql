-- src/api/supabase.rs: auth.users as identity follows it, or no row: its
-- oid and owner; whether it is a plain table without inheritance children; whether it and schema auth
-- are owned by a trusted role (a superuser, or supabase_auth_admin, as
-- Supabase's migrations make them); whether every column identity reads
-- exists with a type it expects.
select pg_catalog.jsonb_build_object(
           'rel', c.oid::int8,
           'owner', c.relowner::int8,
           'plain', c.relkind operator(pg_catalog.=) 'r' and not c.relhassubclass,
           'trusted', (select pg_catalog.bool_and(r.rolsuper or r.rolname operator(pg_catalog.=) 'supabase_auth_admin')
                       from pg_catalog.pg_roles r
                       where r.oid operator(pg_catalog.=) any (array[c.relowner, n.nspowner])),
           'columns', (select pg_catalog.count(distinct a.attname) operator(pg_catalog.=) 7
                       from pg_catalog.pg_attribute a
                       where a.attrelid operator(pg_catalog.=) c.oid
                         and a.attnum operator(pg_catalog.>) 0 and not a.attisdropped
                         and (a.attname::text, a.atttypid) in (
                             ('id', 'pg_catalog.uuid'::pg_catalog.regtype),
                             ('email', 'pg_catalog.varchar'::pg_catalog.regtype),
                             ('email', 'pg_catalog.text'::pg_catalog.regtype),
                             ('phone', 'pg_catalog.text'::pg_catalog.regtype),
                             ('phone', 'pg_catalog.varchar'::pg_catalog.regtype),
                             ('raw_app_meta_data', 'pg_catalog.jsonb'::pg_catalog.regtype),
                             ('email_confirmed_at', 'pg_catalog.timestamptz'::pg_catalog.regtype),
                             ('banned_until', 'pg_catalog.timestamptz'::pg_catalog.regtype),
                             ('deleted_at', 'pg_catalog.timestamptz'::pg_catalog.regtype))))
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid operator(pg_catalog.=) c.relnamespace
where c.oid operator(pg_catalog.=) pg_catalog.to_regclass('auth.users')
