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
select t.err('show identity.jwt_secret');
select t.err('select current_setting(''identity.encryption_key'')');
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
select t.err('set identity.jwt_leeway = -1');
select t.err('set identity.claims_source = ''header''');
-- A misspelled identity.* setting is not silently kept as a placeholder.
select t.err('set identity.jwt_secert = ''x''');
