\i pg_test/fixtures.sql
-- RLS helpers (API.md 8), with claims set as PostgREST sets them.
select identity.grant_access('authenticated', 'user');
select identity.grant_access('anon', 'user');
insert into identity.organizations (id, name) values ('00000000-0000-0000-0000-0000000000a9', 'RLS Org');
insert into identity.users (id, email, organization_id, user_role) values
  ('00000000-0000-0000-0000-00000000e001', 'rls-a@example.com', '00000000-0000-0000-0000-0000000000a9', 'admin'),
  ('00000000-0000-0000-0000-00000000e002', 'rls-b@example.com', '00000000-0000-0000-0000-0000000000a9', 'user');
create table t.docs (id int primary key, owner uuid, org uuid);
insert into t.docs select i, case when i % 3 = 0 then '00000000-0000-0000-0000-00000000e001'::uuid
                                  else '00000000-0000-0000-0000-00000000e002'::uuid end,
                          '00000000-0000-0000-0000-0000000000a9' from generate_series(1, 30) i;
alter table t.docs enable row level security;
create policy own on t.docs for select using (owner = identity.uid());
create policy org_admin on t.docs for select using (identity.is_admin() and org = identity.org_id());
grant select on t.docs to authenticated, anon;

begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-00000000e002", "role": "authenticated", "organization_id": "00000000-0000-0000-0000-0000000000a9", "user_role": "user", "is_service_user": false}', true) is not null as claims_set;
select identity.uid(), identity.org_id(), identity.user_role(), identity.is_service_user(), identity.is_admin(),
       identity.has_role('user') as has_user, identity.has_role('authenticated') as has_pg_role, identity.has_role('admin') as has_admin,
       identity.claim('role') as claim_role, identity.claim('is_service_user') as claim_bool, identity.claim('nope') as claim_missing;
select identity.actor();
select count(*) as rows_seen_by_user from t.docs;
-- The cache follows a change of the claims inside the same transaction.
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-00000000e001", "organization_id": "00000000-0000-0000-0000-0000000000a9", "user_role": "admin"}', true) is not null as switched;
select identity.uid(), identity.is_admin(), count(*) as rows_seen_by_org_admin from t.docs group by 1, 2;
rollback;
-- After the transaction the local claims are gone: the role acts as system.
select identity.uid() is null as uid_null, identity.actor()->>'kind' as kind;
-- PostgREST leaves '' after a transaction: counts as absent.
select set_config('request.jwt.claims', '', false) = '' as emptied;
select identity.jwt() is null as no_claims, identity.actor()->>'kind' as kind;

-- Missing or malformed claims: NULL (fail closed), never an error in a policy.
begin;
set local role anon;
select set_config('request.jwt.claims', '{"role": "anon"}', true) is not null as anon_claims;
select identity.uid() is null as uid_null, identity.is_admin() as is_admin, count(*) as rows_seen_by_anon,
       identity.actor()->>'kind' as kind from t.docs;
select set_config('request.jwt.claims', '{oops', true) is not null as malformed;
select identity.uid() is null as uid_null, identity.jwt() is null as jwt_null, identity.org_id() is null as org_null,
       identity.is_service_user() is null as svc_null, count(*) as rows_seen from t.docs;
select set_config('request.jwt.claims', '{"sub": "not-a-uuid", "user_role": "admin", "organization_id": 7}', true) is not null as bad_shapes;
select identity.uid() is null as uid_null, identity.org_id() is null as org_null, count(*) as rows_seen from t.docs;
rollback;

-- verified mode: request.jwt.claims is ignored; only identity.authenticate pins claims.
set identity.claims_source = 'verified';
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-00000000e001", "user_role": "admin"}', true) is not null as forged;
select identity.uid() is null as forged_claims_ignored, count(*) as rows_seen from t.docs;
rollback;
create temp table tokens as
  select identity.issue_access_token('00000000-0000-0000-0000-00000000e002') as jwt,
         (select token from identity.create_api_token('00000000-0000-0000-0000-00000000e001', 'rls')) as api;
grant select on tokens to authenticated;
set role authenticated;
-- The pin lasts for the transaction that made it (API.md 8).
begin;
select (identity.authenticate(jwt))->>'sub' as pinned_from_jwt from tokens;
-- Token functions see the same actor as the helpers (the pinned user).
select (identity.verify_jwt(identity.create_websocket_token(), 'websocket'))->>'sub' as websocket_for_pinned_user;
select identity.uid(), identity.actor()->>'kind' as kind, count(*) as rows_seen from t.docs group by 1, 2;
select (identity.authenticate(api))->>'sub' as pinned_from_api_token from tokens;
select identity.uid(), identity.is_admin(), count(*) as rows_seen from t.docs group by 1, 2;
-- A session cannot pin claims itself.
select t.err($$set identity.verified_claims = '{"sub": "00000000-0000-0000-0000-00000000e001"}'$$) as set_pin;
select t.err($$select set_config('identity.verified_claims', '{"sub": "00000000-0000-0000-0000-00000000e001"}', false)$$) as set_config_pin;
select (identity.authenticate(api))->>'sub' as pinned_before_null from tokens;
select identity.authenticate(null) is null as cleared_by_null, identity.uid() is null as uid_cleared;
select (identity.authenticate(api))->>'sub' as pinned_again from tokens;
-- A failed authenticate fails closed (it warns and returns NULL rather than
-- raising, so the pin is not rolled back): nobody for the rest of the
-- transaction, whatever is authenticated after it.
select identity.authenticate('garbage.token.here') is null as rejected;
select identity.uid() is null as cleared, count(*) as rows_seen from t.docs;
select (identity.authenticate(api))->>'sub' as still_nobody from tokens;
select identity.authenticate(null) is null as null_lifts_nothing;
select identity.uid() is null as cleared_again, identity.actor()->>'kind' as kind, count(*) as rows_seen from t.docs;
commit;
-- Commit ended it: nothing of it is left for the next transaction.
select identity.uid() is null as no_uid_after_commit, identity.jwt() is null as no_jwt,
       current_setting('identity.verified_claims') = '' as no_pin, count(*) as rows_seen from t.docs;
-- An autocommit statement is its own transaction: the pin ends with it.
select (identity.authenticate(jwt))->>'sub' as pinned_in_one_statement, identity.uid() as uid_in_it from tokens;
select identity.authenticate('idt_' || repeat('0', 36)) is null as bad_api_token;
select identity.uid() is null as gone_after_the_statement;
-- Rollback ends it too.
begin;
select (identity.authenticate(jwt))->>'sub' is not null as pinned from tokens;
rollback;
select identity.uid() is null as gone_after_rollback;
-- A pin made in a savepoint that rolls back ends with the savepoint; one
-- made before it survives it.
begin;
select (identity.authenticate(api))->>'sub' as outer_pin from tokens;
savepoint s;
select (identity.authenticate(jwt))->>'sub' as inner_pin from tokens;
select identity.uid() as uid_in_savepoint;
rollback to savepoint s;
select identity.uid() as uid_after_savepoint_rollback;
savepoint s2;
select (identity.authenticate(jwt))->>'sub' as released_pin from tokens;
release savepoint s2;
select identity.uid() as uid_after_release;
commit;
select identity.uid() is null as gone_after_savepoints;
reset role;
reset identity.claims_source;

-- In mode request the pin wins over request.jwt.claims inside its
-- transaction; after it, request.jwt.claims is read again.
set role authenticated;
begin;
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-00000000e001", "user_role": "admin", "organization_id": "00000000-0000-0000-0000-0000000000a9"}', true) is not null as request_claims;
select (identity.authenticate(jwt))->>'sub' as pinned from tokens;
select identity.uid() as pin_wins, count(*) as rows_seen from t.docs group by 1;
commit;
begin;
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-00000000e001", "user_role": "admin", "organization_id": "00000000-0000-0000-0000-0000000000a9"}', true) is not null as request_claims;
select identity.uid() as request_claims_again, count(*) as rows_seen from t.docs group by 1;
commit;
reset role;
