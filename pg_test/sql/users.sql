\i pg_test/fixtures.sql
-- Users, organizations and service users (API.md 6); flags, subscriptions,
-- events and audit (9). Run as real roles: service_role (admin level, no
-- claims = system) and authenticated with request.jwt.claims set per user.
-- t.act(user): request.jwt.claims as the hook would have built them for
-- that user (NULL: no claims). SECURITY DEFINER only to read the users table.
-- t.act(user) comes from pg_test/fixtures.sql.
create table t.utok (name text primary key, token text);
create table t.jwts (jwt text);
grant all on t.utok, t.jwts to public;

-- System provisions: a user, a first API token (shown once), a trial, a
-- credential request and events; a repeat call returns the same user.
set role service_role;
select t.act(null);
select identity.create_organization('Users A') as org_a \gset
select identity.create_organization('Users B') as org_b \gset
insert into t.utok select 'ada', p->>'api_token'
from identity.provision_user('idp|ada', 'ada@users.test', 'Ada', 'Lovelace', :'org_a', '00000000-0000-0000-0000-0000000e0001') p;
insert into t.utok select 'bob', p->>'api_token'
from identity.provision_user('idp|bob', 'bob@users.test', 'Bob', null, :'org_a', '00000000-0000-0000-0000-0000000e0002') p;
insert into t.utok select 'cy', p->>'api_token'
from identity.provision_user('idp|cy', 'cy@users.test', 'Cy', null, :'org_b', '00000000-0000-0000-0000-0000000e0003') p;
select name, token ~ '^idt_[0-9A-Za-z]{36}$' as token_shown from t.utok order by name;
select p->>'created' as created, p->'api_token' as api_token, p->'user'->>'id' as id, p->'user'->>'email' as email,
       p->'user'->>'organization_id' = :'org_a' as org_ok, p->'user' ? 'tokens_valid_after' as leaks_internal
from identity.provision_user('idp|ada', 'ada@users.test') p;
select jsonb_object_keys(identity.provision_user('idp|ada', 'ada@users.test')->'user') as user_shape order by 1;
-- Duplicate email (any case) under another external id; bad input; nothing written.
select t.err($$select identity.provision_user('idp|ada2', 'ADA@users.test')$$) as duplicate_email;
select t.err($$select identity.provision_user('idp|x', 'x@users.test', user_id => '00000000-0000-0000-0000-0000000e0001')$$) as duplicate_id;
select t.err($$select identity.provision_user(null, 'x@users.test')$$) as null_external_id;
select t.err($$select identity.provision_user('', 'x@users.test')$$) as empty_external_id;
select t.err($$select identity.provision_user('idp|x', 'not-an-email')$$) as bad_email;
select t.err($$select identity.provision_user('idp|x', 'x@users.test', repeat('a', 1048576))$$) as huge_name;
select t.err($$select identity.provision_user('idp|x', 'x@users.test', organization_id => '00000000-0000-0000-0000-00000000dead')$$) as unknown_org;
select t.err($$select identity.create_organization('')$$) as empty_org_name;
reset role;
select count(*) as users_after_bad_input from identity.users where email like '%@users.test';
select status, plan, trial_ends_at::date - now()::date as trial_days from identity.subscriptions
where user_id = '00000000-0000-0000-0000-0000000e0001';
select type, count(*) from identity.events where user_id in (select id from identity.users where email like '%@users.test')
group by type order by type;
-- Org admins are made by system.
set role service_role;
select identity.update_user('00000000-0000-0000-0000-0000000e0001', '{"user_role": "admin"}')->>'user_role' as ada_role;
select identity.update_user('00000000-0000-0000-0000-0000000e0003', '{"user_role": "admin"}')->>'user_role' as cy_role;
reset role;

-- System-only functions are not even callable by the user level.
set role authenticated;
select t.act('00000000-0000-0000-0000-0000000e0001');
select t.err($$select identity.provision_user('idp|z', 'z@users.test')$$) as user_level_provision;
select t.err($$select identity.create_organization('Mine')$$) as user_level_create_org;
-- A user-level role without claims is not system.
select t.act(null);
select t.err($$select identity.user_by_id('00000000-0000-0000-0000-0000000e0001')$$) as no_claims;
select set_config('request.jwt.claims', '{"role": "anon"}', false);
select t.err($$select identity.user_by_id('00000000-0000-0000-0000-0000000e0001')$$) as anon_claims;

-- Service users: an org admin of that org (or system) creates them.
select t.act('00000000-0000-0000-0000-0000000e0001');
insert into t.utok select 'bot', token from identity.create_service_user('bot@users.test', :'org_a',
  '00000000-0000-0000-0000-0000000eaaaa', 'Build bot', 'CI deploys');
select u->>'is_service_user' as service, u->>'created_by' as created_by, u->>'created_by_name' as creator_name,
       u->>'application_name' as app, u->>'organization_id' = :'org_a' as org_ok
from identity.user_by_external_id('idp|ada') a, lateral identity.user_by_id(
  (select id from identity.users where email = 'bot@users.test')) u;
select t.err($$select identity.create_service_user('bot@users.test', '$$ || :'org_a' || $$')$$) as duplicate_service_email;
select t.act('00000000-0000-0000-0000-0000000e0002');
select t.err($$select identity.create_service_user('bot2@users.test', '$$ || :'org_a' || $$')$$) as plain_user;
select t.act('00000000-0000-0000-0000-0000000e0003');
select t.err($$select identity.create_service_user('bot3@users.test', '$$ || :'org_a' || $$')$$) as other_org_admin;
select t.err($$select identity.create_service_user('bot3@users.test', '00000000-0000-0000-0000-00000000dead')$$) as unknown_org;

-- update_user: who may change which field.
select t.act('00000000-0000-0000-0000-0000000e0002');
select identity.update_user('00000000-0000-0000-0000-0000000e0002', '{"first_name": "Robert", "metadata": {"theme": "dark"}}')
       - array['created_at', 'updated_at', 'organization_id', 'id'] as bob_edits_own_profile;
select t.err($$select identity.update_user('00000000-0000-0000-0000-0000000e0002', '{"status": "active"}')$$) as own_status;
select t.err($$select identity.update_user('00000000-0000-0000-0000-0000000e0002', '{"user_role": "admin"}')$$) as own_role;
select t.err($$select identity.update_user('00000000-0000-0000-0000-0000000e0002', '{"is_service_user": true}')$$) as own_service_flag;
select t.err($$select identity.update_user('00000000-0000-0000-0000-0000000e0001', '{"first_name": "X"}')$$) as peer;
select t.err($$select identity.update_user('00000000-0000-0000-0000-00000000dead', '{"first_name": "X"}')$$) as unknown_user;
select t.err($$select identity.update_user('00000000-0000-0000-0000-0000000e0002', '{"first_name": "X", "password": "p"}')$$) as unknown_field;
select t.err($$select identity.update_user('00000000-0000-0000-0000-0000000e0002', '{"first_name": 42}')$$) as wrong_type;
select t.err($$select identity.update_user('00000000-0000-0000-0000-0000000e0002', '[]')$$) as not_object;
select t.err($$select identity.update_user('00000000-0000-0000-0000-0000000e0002', null)$$) as null_changes;
select first_name from identity.users where id = '00000000-0000-0000-0000-0000000e0002';
select t.act('00000000-0000-0000-0000-0000000e0001');
select identity.update_user('00000000-0000-0000-0000-0000000e0002', '{"application_name": "Reports", "description": "analyst"}')->>'application_name' as admin_sets_app;
select t.err($$select identity.update_user('00000000-0000-0000-0000-0000000e0002', '{"organization_id": null}')$$) as admin_moves_org;
select t.err($$select identity.update_user('00000000-0000-0000-0000-0000000e0002', '{"user_role": "system"}')$$) as admin_grants_system;
select t.err($$select identity.update_user('00000000-0000-0000-0000-0000000e0002', '{"email": "ada@users.test"}')$$) as email_taken;
select t.err($$select identity.update_user('00000000-0000-0000-0000-0000000e0003', '{"first_name": "X"}')$$) as other_org;

-- Lookups: self, org admin, system; anyone else gets P0002 like a random id.
select t.act('00000000-0000-0000-0000-0000000e0002');
select identity.user_by_id('00000000-0000-0000-0000-0000000e0002')->>'email' as self;
select t.err($$select identity.user_by_id('00000000-0000-0000-0000-0000000e0001')$$) as same_org_peer;
select t.err($$select identity.user_by_external_id('idp|cy')$$) as other_org_by_external_id;
select t.err($$select identity.user_by_external_id('idp|nobody')$$) as unknown_external_id;
select identity.user_by_id(null) is null as null_in_null_out;
select identity.user_by_api_token(token)->>'email' as own_token from t.utok where name = 'bob';
select t.err(format('select identity.user_by_api_token(%L)', token)) as others_token from t.utok where name = 'cy';
select t.err($$select identity.user_by_api_token('idt_000000000000000000000000000000000000')$$) as bad_token;
select t.act('00000000-0000-0000-0000-0000000e0001');
select identity.user_by_id('00000000-0000-0000-0000-0000000e0002')->>'email' as org_admin_reads_member;
select identity.user_by_api_token(token)->>'email' as org_admin_by_token from t.utok where name = 'bot';
select t.act('00000000-0000-0000-0000-0000000e0003');
select t.err($$select identity.user_by_id('00000000-0000-0000-0000-0000000e0002')$$) as other_org_admin;
select t.err($$select identity.user_by_id('00000000-0000-0000-0000-00000000dead')$$) as random_id;
reset role;

-- current_user(): the actor's profile with fresh tokens, flags, subscription.
set role service_role;
select t.act(null);
select identity.set_feature_flag('users.beta', true, 50, 'half of everyone');
select identity.set_feature_flag('users.all', true);
select identity.set_feature_flag('users.off', false);
select t.err($$select identity.set_feature_flag('Bad Key', true)$$) as bad_key;
select t.err($$select identity.set_feature_flag('users.x', true, 101)$$) as bad_percent;
select t.err($$select identity.set_feature_flag_override('users.nope', '00000000-0000-0000-0000-0000000e0002', true)$$) as unknown_flag;
reset role;
set role authenticated;
select t.act('00000000-0000-0000-0000-0000000e0002');
select p->'user'->>'email' as email, p->'organization'->>'name' as org, p->>'user_role' as role,
       p->>'is_service_user' as service, p->'subscription'->>'status' as subscription,
       p->'feature_flags'->'users.all' as flag_all, p->'feature_flags'->'users.off' as flag_off,
       (identity.verify_jwt(p->'tokens'->>'websocket', 'websocket'))->>'sub' as ws_sub,
       (identity.verify_jwt(p->'tokens'->>'agent', 'agent'))->'act'->>'type' as agent_act
from identity.current_user() p;
-- A user's answer never flaps between calls.
select identity.feature_flags() = identity.feature_flags() as stable,
       identity.feature_flags() = identity.feature_flags('00000000-0000-0000-0000-0000000e0002') as same_as_explicit;
select t.err($$select identity.feature_flags('00000000-0000-0000-0000-0000000e0003')$$) as other_users_flags;
select t.err($$select identity.set_feature_flag('users.beta', false)$$) as user_sets_flag;
reset role;
set role service_role;
select t.act(null);
select identity.set_feature_flag_override('users.off', '00000000-0000-0000-0000-0000000e0002', true);
select identity.set_feature_flag_override('users.all', '00000000-0000-0000-0000-0000000e0002', false);
select f->'users.off' as overridden_on, f->'users.all' as overridden_off
from identity.feature_flags('00000000-0000-0000-0000-0000000e0002') f;
select jsonb_object_agg(key, value) as system_without_user from jsonb_each(identity.feature_flags())
where key like 'users.%' and key <> 'users.beta';
-- Subscription status is computed from the dates.
select identity.subscription_status('00000000-0000-0000-0000-0000000e0002')->>'status' as trial;
reset role;
update identity.subscriptions set trial_ends_at = now() - interval '1 day' where user_id = '00000000-0000-0000-0000-0000000e0002';
update identity.subscriptions set status = 'active', current_period_end = now() + interval '30 days' where user_id = '00000000-0000-0000-0000-0000000e0001';
update identity.subscriptions set status = 'canceled' where user_id = '00000000-0000-0000-0000-0000000e0003';
select id as bot_id from identity.users where email = 'bot@users.test' \gset
set role service_role;
select t.act(null);
select u.n, s->>'status' as status, s->>'plan' as plan
from (values ('ada', '00000000-0000-0000-0000-0000000e0001'::uuid), ('bob', '00000000-0000-0000-0000-0000000e0002'),
             ('cy', '00000000-0000-0000-0000-0000000e0003'), ('bot', :'bot_id')) u(n, id),
     lateral identity.subscription_status(u.id) s order by u.n;
select t.err($$select identity.subscription_status()$$) as system_needs_user_id;

-- Suspension takes effect at once: API token, exchange, verify_jwt, the hook, acting.
insert into t.jwts select identity.issue_access_token('00000000-0000-0000-0000-0000000e0002');
select identity.verify_jwt(jwt)->>'sub' as before_suspension from t.jwts;
reset role;
set role authenticated;
select t.act('00000000-0000-0000-0000-0000000e0002');
select t.err($$select identity.suspend_user('00000000-0000-0000-0000-0000000e0002')$$) as suspend_self;
select t.act('00000000-0000-0000-0000-0000000e0003');
select t.err($$select identity.suspend_user('00000000-0000-0000-0000-0000000e0002')$$) as other_org_admin;
select t.act('00000000-0000-0000-0000-0000000e0001');
select identity.suspend_user('00000000-0000-0000-0000-0000000e0002', 'left the team');
select t.err(format('select identity.verify_api_token(%L)', token)) as api_token from t.utok where name = 'bob';
select t.err(format('select identity.exchange_api_token(%L)', token)) as exchange from t.utok where name = 'bob';
select t.err(format('select identity.verify_jwt(%L)', jwt)) as jwt from t.jwts;
select t.act('00000000-0000-0000-0000-0000000e0002');
select t.err($$select identity.current_user()$$) as acting;
reset role;
select identity.custom_access_token_hook(jsonb_build_object('user_id', '00000000-0000-0000-0000-0000000e0002',
  'claims', jsonb_build_object('aud', 'authenticated', 'exp', 1, 'iat', 1, 'sub', '00000000-0000-0000-0000-0000000e0002',
  'email', '', 'phone', '', 'role', 'authenticated', 'aal', 'aal1', 'session_id', '00000000-0000-0000-0000-000000000001',
  'is_anonymous', false), 'authentication_method', 'password')) as hook;
select status, status_reason from identity.users where id = '00000000-0000-0000-0000-0000000e0002';
-- Reactivation: API tokens work again; JWTs issued before the suspension stay refused.
set role authenticated;
select t.act('00000000-0000-0000-0000-0000000e0001');
select identity.reactivate_user('00000000-0000-0000-0000-0000000e0002');
select identity.verify_api_token(token)->>'user_id' as api_token_again from t.utok where name = 'bob';
select t.err(format('select identity.verify_jwt(%L)', jwt)) as old_jwt from t.jwts;
select pg_sleep(1.1);
reset role;
set role service_role;
select t.act(null);
select identity.verify_jwt(identity.issue_access_token('00000000-0000-0000-0000-0000000e0002'))->>'sub' as new_jwt;

-- Deletion: tokens, credentials, subscription go; the id stays refused; the audit trail stays.
insert into t.jwts select identity.exchange_api_token(token) from t.utok where name = 'bot';
reset role;
set role authenticated;
select t.act('00000000-0000-0000-0000-0000000e0002');
select t.err($$select identity.delete_user('00000000-0000-0000-0000-0000000e0001')$$) as member_deletes_admin;
select t.act('00000000-0000-0000-0000-0000000e0001');
select identity.delete_user(id) from identity.users where email = 'bot@users.test';
select t.err(format('select identity.verify_api_token(%L)', token)) as bot_token from t.utok where name = 'bot';
select t.err(format('select identity.verify_jwt(%L)', jwt)) as bot_jwt from t.jwts where identity.decode_jwt(jwt)->'payload'->>'amr' like '%api_token%';
reset role;
select count(*) as bot_rows, (select count(*) from identity.deleted_users d join identity.audit_log a on a.target_id = d.id::text
                              where a.action = 'user.deleted' and d.id = :'bot_id') as tombstones_audited
from identity.users where email = 'bot@users.test';
select identity.custom_access_token_hook(jsonb_build_object('user_id', d.id,
  'claims', jsonb_build_object('aud', 'authenticated', 'exp', 1, 'iat', 1, 'sub', d.id,
  'email', '', 'phone', '', 'role', 'authenticated', 'aal', 'aal1', 'session_id', '00000000-0000-0000-0000-000000000001',
  'is_anonymous', false), 'authentication_method', 'password'))->'error' as hook_for_deleted
from identity.deleted_users d where d.id = :'bot_id';
set role service_role;
select t.act(null);
select t.err(format($$select identity.provision_user('idp|again', 'again@users.test', user_id => %L)$$, :'bot_id')) as reuse_deleted_id;
reset role;

-- Events roll back with their transaction.
begin;
set local role service_role;
select identity.provision_user('idp|rolled', 'rolled@users.test')->>'created' as created;
rollback;
select count(*) as events_after_rollback from identity.events e where e.payload->>'external_id' = 'idp|rolled';

-- One audit row per change, with the actor.
select action, actor_kind, count(*) from identity.audit_log
where action ~ '^(organization|user|service_user|feature_flag)\.'
  and (organization_id in (:'org_a', :'org_b') or (target_type = 'feature_flag' and target_id like 'users.%'))
group by 1, 2 order by 1, 2;
select count(*) as audit_rows_with_a_token from identity.audit_log a, t.utok k where position(k.token in a.details::text) > 0;
