-- Shared fixtures for the scenario suite: the extension, the roles a
-- Supabase-style stack has, and t.err(sql), which runs a statement and
-- returns 'ok' or 'SQLSTATE: message (detail)' so expected output shows error codes.
create extension identity;
create role anon nologin;
create role authenticated nologin;
create role service_role nologin;
create role supabase_auth_admin nologin;
create role monitor nologin in role pg_monitor;
create schema t;
create function t.err(sql text) returns text language plpgsql as $$
declare
    d text;
begin
    execute sql;
    return 'ok';
exception when others then
    get stacked diagnostics d = pg_exception_detail;
    -- "Failing row contains (...)" holds random ids and times: not stable.
    if d like 'Failing row contains%' then d := null; end if;
    return sqlstate || ': ' || sqlerrm || coalesce(nullif(' (' || d || ')', ' ()'), '');
end
$$;
grant usage on schema t to public;
grant execute on function t.err(text) to public;
select identity.grant_access('authenticated', 'user');
select identity.grant_access('service_role', 'admin');
