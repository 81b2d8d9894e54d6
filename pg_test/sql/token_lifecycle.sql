\i pg_test/fixtures.sql
-- Tokens follow the user's role and organization, and every claim a
-- revocation matches is in a form a revocation can match.
insert into identity.organizations (id, name) values
  ('00000000-0000-0000-0000-00000001d000', 'Lifecycle Org'),
  ('00000000-0000-0000-0000-00000001d009', 'Other Org');
insert into identity.users (id, email, organization_id, user_role) values
  ('00000000-0000-0000-0000-00000001d001', 'boss@lifecycle.test', '00000000-0000-0000-0000-00000001d000', 'admin'),
  ('00000000-0000-0000-0000-00000001d002', 'mover@lifecycle.test', '00000000-0000-0000-0000-00000001d000', 'user');

-- A demoted admin's JWT, and a moved user's, are refused from the change's
-- commit on (tokens_valid_after moves), in verify_jwt and in RLS.
select identity.issue_access_token('00000000-0000-0000-0000-00000001d001') as boss_jwt \gset
select identity.issue_access_token('00000000-0000-0000-0000-00000001d002') as mover_jwt \gset
select identity.verify_jwt(:'boss_jwt')->>'user_role' as boss_role_before;
select pg_sleep(1.1);
select identity.update_user('00000000-0000-0000-0000-00000001d001', '{"user_role": "user"}')->>'user_role' as demoted;
select identity.update_user('00000000-0000-0000-0000-00000001d002', '{"organization_id": "00000000-0000-0000-0000-00000001d009"}')->>'organization_id' as moved;
select t.err(format('select identity.verify_jwt(%L)', :'boss_jwt')) as demoted_jwt;
select t.err(format('select identity.verify_jwt(%L)', :'mover_jwt')) as moved_jwt;
begin;
set local role authenticated;
select set_config('request.jwt.claims', (identity.decode_jwt(:'boss_jwt')->'payload')::text, true) \gset
select identity.uid() as uid, identity.is_admin() as is_admin, identity.org_id() as org_id;
rollback;
-- A change that leaves role and organization alone moves nothing.
select pg_sleep(1.1);
select identity.issue_access_token('00000000-0000-0000-0000-00000001d002') as mover_new \gset
select identity.update_user('00000000-0000-0000-0000-00000001d002', '{"first_name": "Moe"}')->>'first_name' as renamed;
select identity.verify_jwt(:'mover_new')->>'organization_id' as new_token_still_valid;

-- A jti that no revocation could match is refused: longer than 255 bytes,
-- empty, or not a string; so is a session_id that is not a UUID.
select t.err(format('select identity.verify_jwt(%L)', identity.sign_jwt(jsonb_build_object('sub', '00000000-0000-0000-0000-00000001d002', 'jti', repeat('j', 256))))) as long_jti;
select t.err(format('select identity.verify_jwt(%L)', identity.sign_jwt('{"sub": "00000000-0000-0000-0000-00000001d002", "jti": ""}'))) as empty_jti;
select t.err(format('select identity.verify_jwt(%L)', identity.sign_jwt('{"sub": "00000000-0000-0000-0000-00000001d002", "jti": 42}'))) as number_jti;
select t.err(format('select identity.verify_jwt(%L)', identity.sign_jwt('{"sub": "00000000-0000-0000-0000-00000001d002", "session_id": "s-1"}'))) as text_session;
select identity.verify_jwt(identity.sign_jwt(jsonb_build_object('sub', '00000000-0000-0000-0000-00000001d002', 'jti', repeat('j', 255))))->>'sub' as jti_of_255_bytes;
select t.err($$select identity.revoke_jwt(repeat('j', 256), now() + interval '1 hour')$$) as revoke_long_jti;

-- Revocations and key changes record who made them, not a blanket system.
select identity.update_user('00000000-0000-0000-0000-00000001d001', '{"user_role": "admin"}') is not null as promoted_again;
begin;
set local role service_role;
select t.act('00000000-0000-0000-0000-00000001d001');
select identity.revoke_jwt('lifecycle-jti', now() + interval '1 hour');
select identity.revoke_session('00000000-0000-0000-0000-0000000d5e55');
commit;
select t.act(null);
select action, actor_id, actor_kind from identity.audit_log
where action in ('jwt.revoked', 'session.revoked') and target_id in ('lifecycle-jti', '00000000-0000-0000-0000-0000000d5e55')
order by action;
select identity.revoke_jwt('lifecycle-jti-system', now() + interval '1 hour');
select action, actor_id, actor_kind from identity.audit_log where action = 'jwt.revoked' and target_id = 'lifecycle-jti-system';
