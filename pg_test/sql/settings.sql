\i pg_test/fixtures.sql
-- Settings of API.md section 1. The secrets are never readable by SQL, by
-- anyone; a non-superuser cannot read them or change any verification setting.
select name, setting, unit, context from pg_settings
where name like 'identity.%' order by name;

-- Superuser: masked.
show identity.jwt_secret;
show identity.encryption_key;
select current_setting('identity.jwt_secret') as jwt_secret;

-- Non-superuser: refused, and absent from pg_settings.
set role authenticated;
select t.state('show identity.jwt_secret');
select t.state('select current_setting(''identity.encryption_key'')');
select count(*) as visible_secret_settings from pg_settings
 where name in ('identity.jwt_secret', 'identity.encryption_key');
select t.err('set identity.jwt_secret = ''attacker-chosen-secret-0123456789ab''');
select t.err('set identity.claims_source = ''request''');
select t.err('set identity.jwt_leeway = 999');
select t.err('set identity.jwt_cache_size = 0');
select t.err('set identity.token_prefix = ''evil''');
select t.err('select set_config(''identity.jwt_issuer'', ''evil'', false)');
reset role;

-- pg_monitor members (pg_read_all_settings) see only the mask.
set role monitor;
show identity.jwt_secret;
select setting from pg_settings where name = 'identity.encryption_key';
reset role;

-- Bad values are refused with the setting's own checks.
select t.state('set identity.jwt_leeway = -1');
select t.err('set identity.claims_source = ''header''');
-- A misspelled identity.* setting is not silently kept as a placeholder.
select t.err('set identity.jwt_secert = ''x''');

-- RESET ALL and DISCARD ALL, which any role may run and poolers run between
-- clients, never move a setting that decides what verification accepts,
-- even one a superuser SET in this session (a pooler's connect query).
set identity.claims_source = 'verified';
set identity.jwt_leeway = 5;
set identity.jwt_issuer = 'https://issuer.example';
set identity.jwt_audience = 'pooled';
set identity.token_prefix = 'pool';
set identity.jwt_cache_size = 7;
set identity.access_token_ttl = 60;
set role authenticated;
reset all;
select current_setting('identity.claims_source') as claims_source, current_setting('identity.jwt_leeway') as leeway,
       current_setting('identity.jwt_issuer') as issuer, current_setting('identity.jwt_audience') as audience,
       current_setting('identity.token_prefix') as prefix, current_setting('identity.jwt_cache_size') as cache_size,
       current_setting('identity.access_token_ttl') as ttl, current_user as still_role;
reset role;
discard all;
select current_setting('identity.claims_source') as claims_source, current_setting('identity.jwt_leeway') as leeway,
       current_setting('identity.jwt_issuer') as issuer, current_setting('identity.token_prefix') as prefix;
-- A plain RESET of one of them is still refused to a non-superuser.
set role authenticated;
select t.err('reset identity.claims_source');
reset role;
reset identity.claims_source;
reset identity.jwt_leeway;
reset identity.jwt_issuer;
reset identity.jwt_audience;
reset identity.token_prefix;
reset identity.jwt_cache_size;
reset identity.access_token_ttl;
