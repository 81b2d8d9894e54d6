-- The first file of the schedule: the fixtures every file includes (the
-- extension, the roles of a Supabase-style stack, the grant levels, t.err
-- and t.act), shown working.
\i pg_test/fixtures.sql
select extversion is not null as extension_created from pg_extension where extname = 'identity';
select rolname from pg_roles where rolname in ('anon', 'authenticated', 'service_role', 'supabase_auth_admin', 'monitor') order by 1;
select t.err('select 1/0') as t_err_reports_the_sqlstate;
select has_schema_privilege('authenticated', 'identity', 'usage') as user_level_granted,
       has_function_privilege('service_role', 'identity.sign_jwt(jsonb, interval)', 'execute') as admin_level_granted;
