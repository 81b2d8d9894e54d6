-- Demo data for the admin console (scripts/console.sh, console/e2e/run.sh),
-- made through the extension's own functions, as a superuser (system) and,
-- inside one transaction each, as the admin themself (identity.authenticate
-- pins their claims), so the audit trail names who did what.
--   psql -v out=FILE -f console/demo/seed.sql
-- writes the demo's sign-in tokens to FILE as JSON (they are throwaway).
\set ON_ERROR_STOP 1
\pset tuples_only on
\pset format unaligned

-- The console's login role can do nothing but become `authenticated`,
-- which holds the extension's `user` level (as PostgREST's authenticator).
do $$ begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'authenticated') then
        create role authenticated nologin;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'identity_console') then
        create role identity_console login noinherit;
    end if;
end $$;
select identity.grant_access('authenticated', 'user') \g /dev/null
grant authenticated to identity_console;

select identity.create_organization('Acme Robotics') as acme \gset
select identity.create_organization('Globex') as globex \gset

-- Acme's admin, a member who is not an admin, and Globex's admin.
select p -> 'user' ->> 'id' as admin_id, p ->> 'api_token' as admin_token
    from identity.provision_user('demo_ada', 'ada@acme.test', 'Ada', 'Lovelace', :'acme') p \gset
select identity.update_user(:'admin_id', '{"user_role": "admin"}') \g /dev/null
select p -> 'user' ->> 'id' as member_id, p ->> 'api_token' as member_token
    from identity.provision_user('demo_bob', 'bob@acme.test', 'Bob', 'Builder', :'acme') p \gset
select p -> 'user' ->> 'id' as globex_admin_id, p ->> 'api_token' as globex_admin_token
    from identity.provision_user('demo_gina', 'gina@globex.test', 'Gina', 'Globex', :'globex') p \gset
select identity.update_user(:'globex_admin_id', '{"user_role": "admin"}') \g /dev/null

-- Acme's service users, made by its admin.
begin;
select identity.authenticate(:'admin_token') \g /dev/null
select user_id as ingest_id, token as ingest_token
    from identity.create_service_user('ingest@acme.test', :'acme', null, 'Telemetry ingest',
                                      'Pushes robot telemetry into the warehouse') \gset
select user_id as billing_id
    from identity.create_service_user('billing-sync@acme.test', :'acme', null, 'Billing sync',
                                      'Nightly export to the billing system') \gset
select user_id as legacy_id
    from identity.create_service_user('legacy-cron@acme.test', :'acme', null, 'Legacy cron',
                                      'Old batch jobs, being retired') \gset
select token_id as ingest_ro from identity.create_api_token(:'ingest_id', 'read-only dashboards',
    '30 days', '{users:read}') \gset
select token_id as billing_ci from identity.create_api_token(:'billing_id', 'ci deploy', '7 days') \gset
select identity.rotate_api_token(:'billing_ci', '1 hour') \g /dev/null
select identity.suspend_user(:'legacy_id', 'credentials leaked in a build log') \g /dev/null
-- Acme's AI-service credentials, owned by the admin.
select identity.create_credential('openrouter', 'team key', 'sk-or-v1-demo-0000000000000000000000000000000000000000001',
                                  true, 50) ->> 'id' as team_key \gset
select identity.create_credential('anthropic', 'research', 'sk-ant-demo-000000000000000000000000000002',
                                  false, null) ->> 'id' as research_key \gset
select identity.record_credential_usage(:'team_key', 12.5, 48000) \g /dev/null
select identity.record_credential_usage(:'team_key', 19.75, 61000) \g /dev/null
select pg_catalog.count(identity.record_credential_usage(:'research_key', 0.16, 455))
    from pg_catalog.generate_series(1, 20) \g /dev/null
commit;
-- A system credential (as a provisioning worker completes the request that
-- provision_user made), which its owner may use but not change.
select identity.create_system_credential(:'admin_id', 'openrouter',
    'sk-or-v1-demo-system-00000000000000000000000000000000000003', 100) \g /dev/null

-- Used once, so "last token use" has something to show.
select identity.verify_api_token(:'ingest_token') \g /dev/null

-- Globex's service user, which Acme's admin must never see.
begin;
select identity.authenticate(:'globex_admin_token') \g /dev/null
select user_id as globex_svc_id
    from identity.create_service_user('etl@globex.test', :'globex', null, 'Globex ETL', null) \gset
commit;

select pg_catalog.json_build_object(
    'admin_token', :'admin_token', 'admin_email', 'ada@acme.test',
    'member_token', :'member_token', 'globex_admin_token', :'globex_admin_token',
    'ingest_token', :'ingest_token', 'ingest_id', :'ingest_id',
    'globex_service_user_id', :'globex_svc_id', 'globex_service_user', 'etl@globex.test',
    'acme', :'acme', 'globex', :'globex') \g :out
