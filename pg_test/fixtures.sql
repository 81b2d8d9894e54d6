\set ECHO none
-- Shared fixtures of the scenario suite, included first by every file
-- (`\i pg_test/fixtures.sql`), so any one file runs alone in a new
-- database; idempotent, so the whole schedule runs them again and again.
-- Silent: its statements and results stay out of the expected output.
\o /dev/null
set client_min_messages = warning;
create extension if not exists identity;
do $$ begin create role anon nologin; exception when duplicate_object then null; end $$;
do $$ begin create role authenticated nologin; exception when duplicate_object then null; end $$;
do $$ begin create role service_role nologin; exception when duplicate_object then null; end $$;
do $$ begin create role supabase_auth_admin nologin; exception when duplicate_object then null; end $$;
do $$ begin create role monitor nologin in role pg_monitor; exception when duplicate_object then null; end $$;
create schema if not exists t;
-- t.err(sql): runs a statement and returns 'ok' or 'SQLSTATE: message (detail)',
-- so the expected output pins every error code.
create or replace function t.err(sql text) returns text language plpgsql as $$
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
-- t.act(user): act as that user (claims as the hook builds them from the
-- row, or just a sub), or as system with NULL. The claims are those of a
-- token issued after every change so far (iat the next second: a change of
-- role, organization or status refuses tokens issued up to the end of its
-- second).
create or replace function t.act(u uuid) returns void language sql security definer set search_path = pg_catalog as $$
  select set_config('request.jwt.claims', coalesce((
    select jsonb_build_object('sub', x.id, 'role', 'authenticated', 'user_role', x.user_role,
                              'organization_id', x.organization_id, 'is_service_user', x.is_service_user,
                              'iat', pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()))::bigint + 1)::text
    from identity.users x where x.id = u), case when u is null then '' else jsonb_build_object('sub', u)::text end), false) $$;
grant execute on function t.act(uuid) to public;
grant usage on schema t to public;
grant execute on function t.err(text) to public;
-- Only the SQLSTATE, for refusals whose message is Postgres' own and worded
-- differently by each major (15 and 18 both run the suite).
create or replace function t.state(sql text) returns text language plpgsql as $$
begin
    execute sql;
    return 'ok';
exception when others then
    return sqlstate;
end
$$;
grant execute on function t.state(text) to public;
-- Audit rows written outside the caller's transaction (a revealed secret, a
-- refused attempt) arrive through the background writer: wait (at most 10 s)
-- until the boolean query `q` holds.
create or replace function t.wait_until(q text) returns boolean language plpgsql as $$
declare
    ok boolean;
begin
    for i in 1..500 loop
        execute q into ok;
        if ok then
            return true;
        end if;
        perform pg_sleep(0.02);
    end loop;
    return false;
end
$$;
grant execute on function t.wait_until(text) to public;
-- The grant levels every file assumes (setup.sql's, audited once: only
-- when not granted yet, so the schedule's audit trail is setup's alone).
select identity.grant_access('authenticated', 'user')
 where not pg_catalog.has_schema_privilege('authenticated', 'identity', 'usage');
select identity.grant_access('service_role', 'admin')
 where not pg_catalog.has_function_privilege('service_role', 'identity.sign_jwt(jsonb, interval)', 'execute');
reset client_min_messages;
\o
\set ECHO all
