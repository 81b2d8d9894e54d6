-- src/api/supabase.rs: the auth.users row of id $1 as identity follows it
-- (read as the table's owner, search_path pinned).
select pg_catalog.jsonb_build_object(
           'email', nullif(u.email::text, ''),
           'phone', nullif(u.phone::text, ''),
           'confirmed', u.email_confirmed_at is not null,
           'app', u.raw_app_meta_data,
           'banned', coalesce(u.banned_until operator(pg_catalog.>) pg_catalog.now(), false),
           'deleted', u.deleted_at is not null)
from only auth.users u
where u.id operator(pg_catalog.=) $1
