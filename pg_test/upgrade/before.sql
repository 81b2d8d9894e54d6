-- Data made with identity 0.1.0 (pg_test/upgrade.sh), and what 0.1.0
-- answered for it, kept in public.before for after.sql to compare.
-- psql variables: none. Runs as the superuser (the system actor).
\set ON_ERROR_STOP 1
create extension identity version '0.1.0';
do $$ begin create role authenticated nologin; exception when duplicate_object then null; end $$;
do $$ begin create role supabase_auth_admin nologin; exception when duplicate_object then null; end $$;
select identity.grant_access('authenticated', 'user');
select identity.grant_access('supabase_auth_admin', 'hook');
do $$ begin create role service_role nologin; exception when duplicate_object then null; end $$;
select identity.grant_access('service_role', 'admin');
create table public.before (k text primary key, v text not null);
-- Whether an API token is refused as unauthenticated (28000).
create function public.refused(token text) returns boolean language plpgsql as $$
begin
    perform identity.verify_api_token(token);
    return false;
exception when others then
    return sqlstate = '28000';
end
$$;

insert into before select 'org', identity.create_organization('Upgrade Org')::text;
insert into before select 'user', identity.provision_user('ext-upgrade-1', 'ada@upgrade.test', 'Ada', 'Lovelace',
                                                          (select v::uuid from before where k = 'org'))->'user'->>'id';
insert into before select 'admin', identity.provision_user('ext-upgrade-2', 'grace@upgrade.test', 'Grace', 'Hopper',
                                                           (select v::uuid from before where k = 'org'))->'user'->>'id';
update identity.users set user_role = 'admin' where id = (select v::uuid from before where k = 'admin');
insert into before select 'service', s.user_id::text
from identity.create_service_user('svc@upgrade.test', (select v::uuid from before where k = 'org'),
                                  null, 'Upgrade app', 'made by 0.1.0') s;
insert into before select 'token', t.token
from identity.create_api_token((select v::uuid from before where k = 'user'), 'upgrade token', '30 days') t;
insert into before select 'service_token', t.token
from identity.create_api_token((select v::uuid from before where k = 'service'), 'service token', '30 days') t;
insert into before select 'revoked_token', t.token
from identity.create_api_token((select v::uuid from before where k = 'user'), 'revoked token', '30 days') t;
select identity.revoke_api_token(t.id) from identity.api_tokens t where t.name = 'revoked token';
insert into before select 'principal', (identity.verify_api_token(v) - 'last_used_at')::text from before where k = 'token';
-- An HS256 JWT, then an ES256 signing key made active and a JWT it signed.
insert into before select 'hs256_jwt', identity.sign_jwt(jsonb_build_object('sub', v, 'aud', 'authenticated'), '1 day')
from before where k = 'user';
insert into before select 'kid', identity.generate_signing_key('ES256');
select identity.activate_signing_key((select v from before where k = 'kid'));
insert into before select 'es256_jwt', identity.sign_jwt(jsonb_build_object('sub', v, 'aud', 'authenticated'), '1 day')
from before where k = 'user';
insert into before select 'jwks', identity.jwks()::text;
-- Credentials: the user's own (as the user), and a system credential.
select set_config('request.jwt.claims', jsonb_build_object('sub', v, 'role', 'authenticated')::text, false)
from before where k = 'user';
insert into before select 'credential', (identity.create_credential('openrouter', 'main', 'sk-or-v1-upgrade-secret-0001', true, 10))->>'id';
select set_config('request.jwt.claims', '', false);
insert into before select 'system_credential', (identity.create_system_credential(
    (select v::uuid from before where k = 'service'), 'openrouter', 'sk-or-v1-upgrade-system-0002'))->>'id';
-- The hook's answer for the user (metadata-free event: the answer is stable).
insert into before select 'hook', (identity.custom_access_token_hook(jsonb_build_object(
    'user_id', v, 'authentication_method', 'password',
    'claims', jsonb_build_object('iss', 'https://project.supabase.co/auth/v1', 'aud', 'authenticated',
        'exp', 2000000000, 'iat', 1999996400, 'sub', v, 'email', 'ada@upgrade.test', 'phone', '',
        'role', 'authenticated', 'aal', 'aal1', 'session_id', '4b938a09-5372-4177-a314-cfa292099ea2',
        'is_anonymous', false))))::text
from before where k = 'user';
insert into before select 'audit_rows', count(*)::text from identity.audit_log;
insert into before select 'users', count(*)::text from identity.users;
insert into before select 'api_tokens', count(*)::text from identity.api_tokens;
select 'kept:' || k, length(v) > 0 as kept from before order by k;
