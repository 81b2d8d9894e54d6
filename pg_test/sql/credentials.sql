\i pg_test/fixtures.sql
-- AI-service credentials (API.md 7) as real roles: encrypted at rest, masked
-- reads, owner-only changes, system credentials, one default, credit limits,
-- audit. Secrets are passed in as literals here only because this file is
-- the test; applications pass them as bound parameters.
set role service_role;
select t.act(null);
select identity.create_organization('Cred C') as org_c \gset
select identity.create_organization('Cred D') as org_d \gset
select identity.provision_user('idp|carol', 'carol@cred.test', 'Carol', null, :'org_c', '00000000-0000-0000-0000-0000000c0001')->>'created';
select identity.provision_user('idp|dave', 'dave@cred.test', 'Dave', null, :'org_c', '00000000-0000-0000-0000-0000000c0002')->>'created';
select identity.provision_user('idp|erin', 'erin@cred.test', 'Erin', null, :'org_d', '00000000-0000-0000-0000-0000000c0003')->>'created';
select identity.update_user('00000000-0000-0000-0000-0000000c0001', '{"user_role": "admin"}')->>'user_role';
select identity.update_user('00000000-0000-0000-0000-0000000c0003', '{"user_role": "admin"}')->>'user_role';
reset role;
create table t.cred (name text primary key, id uuid);
grant all on t.cred to public;

-- The owner creates; reads are masked (provider, name, last 4).
set role authenticated;
select t.act('00000000-0000-0000-0000-0000000c0002');
insert into t.cred select 'main', (c->>'id')::uuid
from identity.create_credential('openrouter', 'main', 'sk-or-v1-dave-main-secret-0001', true, 10) c;
insert into t.cred select 'spare', (c->>'id')::uuid
from identity.create_credential('openrouter', 'spare', 'sk-or-v1-dave-spare-secret-0002') c;
select c - array['id', 'user_id', 'organization_id', 'created_at', 'updated_at'] as listed
from identity.list_credentials() c order by c->>'name';
select jsonb_object_keys(identity.get_credential(id)) as credential_shape from t.cred where name = 'main' order by 1;
select t.err($$select identity.create_credential('openrouter', 'main', 'sk-or-v1-another-one-0003')$$) as duplicate_name;
select t.err($$select identity.create_credential('Open Router', 'x', 'sk-or-v1-another-one-0003')$$) as bad_provider;
select t.err($$select identity.create_credential('openrouter', 'x', 'short')$$) as short_secret;
select t.err($$select identity.create_credential('openrouter', 'x', E'sk-or-v1-pasted-newline\n')$$) as newline_secret;
select t.err($$select identity.create_credential('openrouter', 'x', repeat('s', 1048576))$$) as huge_secret;
select t.err($$select identity.create_credential('openrouter', 'x', 'sk-or-v1-another-one-0003', false, -1)$$) as negative_limit;
select t.err($$select identity.create_credential('openrouter', 'x', 'sk-or-v1-another-one-0003', false, 'NaN')$$) as nan_limit;
select t.err($$select identity.create_credential(null, 'x', 'sk-or-v1-another-one-0003')$$) as null_provider;
select count(*) as dave_credentials from identity.credentials where user_id = '00000000-0000-0000-0000-0000000c0002';
-- The owner reveals.
select identity.reveal_credential_secret(id) as revealed from t.cred where name = 'main';

-- Others: the org admin reads masked but may not reveal or change; a peer
-- and another organization see nothing (P0002, as for a random id).
select t.act('00000000-0000-0000-0000-0000000c0001');
select identity.get_credential(id)->>'last4' as admin_reads from t.cred where name = 'main';
select count(*) as admin_lists_own_only from identity.list_credentials();
select t.err(format('select identity.reveal_credential_secret(%L)', id)) as admin_reveal from t.cred where name = 'main';
select t.err(format('select identity.delete_credential(%L)', id)) as admin_delete from t.cred where name = 'main';
select t.err(format('select identity.set_credential_enabled(%L, false)', id)) as admin_disable from t.cred where name = 'main';
select t.act('00000000-0000-0000-0000-0000000c0003');
select t.err(format('select identity.get_credential(%L)', id)) as other_org_get from t.cred where name = 'main';
select t.err(format('select identity.reveal_credential_secret(%L)', id)) as other_org_reveal from t.cred where name = 'main';
select t.err(format('select identity.delete_credential(%L)', id)) as other_org_delete from t.cred where name = 'main';
select t.err(format('select identity.record_credential_usage(%L, 1)', id)) as other_org_usage from t.cred where name = 'main';
select t.err($$select identity.get_credential('00000000-0000-0000-0000-00000000dead')$$) as random_id;
select t.err($$select identity.create_system_credential('00000000-0000-0000-0000-0000000c0003', 'openrouter', 'sk-or-v1-self-made-0004')$$) as user_makes_system_credential;
reset role;

-- System credentials: system creates them (default when the user has
-- none); the user uses and reveals them but cannot change or delete them.
set role service_role;
select t.act(null);
insert into t.cred select 'system', (c->>'id')::uuid
from identity.create_system_credential('00000000-0000-0000-0000-0000000c0003', 'openrouter', 'sk-or-v1-erin-system-0005', 100) c;
select c->>'is_system' as is_system, c->>'is_default' as is_default, c->>'name' as name
from t.cred, identity.get_credential(id) c where t.cred.name = 'system';
select t.err($$select identity.create_credential('openrouter', 'x', 'sk-or-v1-system-own-0006')$$) as system_has_no_own;
reset role;
select count(*) as requests_open from identity.events
where type = 'credential.requested' and user_id = '00000000-0000-0000-0000-0000000c0003' and processed_at is null;
set role authenticated;
select t.act('00000000-0000-0000-0000-0000000c0003');
select identity.reveal_credential_secret(id) as erin_reveals from t.cred where name = 'system';
select t.err(format($$select identity.update_credential(%L, '{"name": "mine"}')$$, id)) as update_system from t.cred where name = 'system';
select t.err(format('select identity.delete_credential(%L)', id)) as delete_system from t.cred where name = 'system';
select t.err(format('select identity.set_credential_enabled(%L, false)', id)) as disable_system from t.cred where name = 'system';
select identity.record_credential_usage(id, 1.5, 1200) from t.cred where name = 'system';

-- One default per user.
select t.act('00000000-0000-0000-0000-0000000c0002');
select identity.set_default_credential(id) from t.cred where name = 'spare';
select name, is_default from identity.credentials where user_id = '00000000-0000-0000-0000-0000000c0002' order by name;
reset role;
select t.err($$update identity.credentials set is_default = true where user_id = '00000000-0000-0000-0000-0000000c0002'$$) as db_enforces_one_default;
set role authenticated;

-- Update: name, credit limit, secret (re-encrypted; last 4 follow).
select identity.update_credential(id, '{"name": "primary", "credit_limit": 10, "secret": "sk-or-v1-dave-rotated-secret-9999"}')
       - array['id', 'user_id', 'organization_id', 'created_at', 'updated_at'] as updated from t.cred where name = 'main';
select identity.reveal_credential_secret(id) as revealed_after_update from t.cred where name = 'main';
select t.err(format($$select identity.update_credential(%L, '{"is_system": false}')$$, id)) as unknown_field from t.cred where name = 'main';
select t.err(format($$select identity.update_credential(%L, '{"name": "spare"}')$$, id)) as rename_to_taken from t.cred where name = 'main';

-- Disabled: no reveal, no usage, no default.
select identity.set_credential_enabled(id, false) from t.cred where name = 'spare';
select t.err(format('select identity.reveal_credential_secret(%L)', id)) as reveal_disabled from t.cred where name = 'spare';
select t.err(format('select identity.record_credential_usage(%L, 1)', id)) as use_disabled from t.cred where name = 'spare';
select t.err(format('select identity.set_default_credential(%L)', id)) as default_disabled from t.cred where name = 'spare';
select is_default from identity.credentials c join t.cred k on k.id = c.id where k.name = 'spare';
select identity.set_credential_enabled(id, true) from t.cred where name = 'spare';

-- Credit limit: 6 + 4 fit in 10; 5 more does not and records nothing.
select identity.record_credential_usage(id, 6, 1000) from t.cred where name = 'main';
select t.err(format('select identity.record_credential_usage(%L, 5)', id)) as over_limit from t.cred where name = 'main';
select identity.record_credential_usage(id, 4) from t.cred where name = 'main';
select t.err(format('select identity.record_credential_usage(%L, 0.01)', id)) as exhausted from t.cred where name = 'main';
select t.err(format('select identity.record_credential_usage(%L, -1)', id)) as negative from t.cred where name = 'main';
select u - 'recent' as usage, jsonb_array_length(u->'recent') as recent, u->'recent'->0->'amount' as latest
from t.cred, identity.credential_usage(id) u where name = 'main';
select c->>'usage_total' as total, c->>'exhausted_at' is not null as exhausted
from t.cred, identity.get_credential(id) c where name = 'main';
reset role;

-- Keys: missing is 55000 with a hint; a wrong key is a clear error, never
-- garbage; a ciphertext copied to another row does not decrypt.
set identity.encryption_key = '';
set role authenticated;
select t.err($$select identity.create_credential('openrouter', 'nokey', 'sk-or-v1-no-key-0007')$$) as missing_key;
reset role;
set identity.encryption_key = 'd3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMDE=';
set role authenticated;
select t.err(format('select identity.reveal_credential_secret(%L)', id)) as wrong_key from t.cred where name = 'main';
reset role;
reset identity.encryption_key;
update identity.credentials set ciphertext = (select ciphertext from identity.credentials c join t.cred k on k.id = c.id where k.name = 'main')
where id = (select id from t.cred where name = 'spare');
set role authenticated;
select t.err(format('select identity.reveal_credential_secret(%L)', id)) as moved_ciphertext from t.cred where name = 'spare';
reset role;

-- No secret in any table (columns, audit details, events): only ciphertext and last 4.
select count(*) as secrets_in_clear
from (values ('sk-or-v1-dave-main-secret-0001'), ('sk-or-v1-dave-spare-secret-0002'), ('sk-or-v1-erin-system-0005'),
             ('sk-or-v1-dave-rotated-secret-9999')) s(secret),
     (select to_jsonb(x)::text as r from identity.credentials x
      union all select to_jsonb(x)::text from identity.audit_log x
      union all select to_jsonb(x)::text from identity.events x
      union all select to_jsonb(x)::text from identity.credential_usage x) rows
where position(s.secret in rows.r) > 0 or position(encode(convert_to(s.secret, 'utf8'), 'hex') in rows.r) > 0;
-- Every operation audited, with the actor.
-- (Reveals are recorded outside the caller's transaction: wait for the writer.)
select t.wait_until(format($$select count(*) = 3 from identity.audit_log
  where action = 'credential.revealed' and organization_id in (%L, %L)$$, :'org_c', :'org_d')) as reveals_recorded;
select action, actor_kind, count(*) from identity.audit_log
where target_type = 'credential' and organization_id in (:'org_c', :'org_d') group by 1, 2 order by 1, 2;

-- Deleting the owner destroys their credentials.
set role authenticated;
select t.act('00000000-0000-0000-0000-0000000c0002');
select identity.delete_credential(id) from t.cred where name = 'spare';
select t.act('00000000-0000-0000-0000-0000000c0001');
select identity.delete_user('00000000-0000-0000-0000-0000000c0002');
reset role;
select count(*) as dave_credentials_left, (select count(*) from identity.credential_usage where user_id = '00000000-0000-0000-0000-0000000c0002') as usage_left
from identity.credentials where user_id = '00000000-0000-0000-0000-0000000c0002';
