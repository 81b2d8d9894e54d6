\i pg_test/fixtures.sql
-- identity.pre_request() as PostgREST runs it (db-pre-request): the session
-- user is the authenticator, each request is a transaction that starts as
-- SET LOCAL ROLE anon with request.headers and request.jwt.claims set
-- locally, then calls pre_request(), then the query.
create role authenticator login noinherit;
grant anon, authenticated to authenticator;
select identity.grant_access('anon', 'user');
insert into identity.organizations (id, name) values ('00000000-0000-0000-0000-0000000c70b1', 'PreRequest Org');
insert into identity.users (id, email, organization_id) values
  ('00000000-0000-0000-0000-0000000c7001', 'pre-a@example.com', '00000000-0000-0000-0000-0000000c70b1'),
  ('00000000-0000-0000-0000-0000000c7002', 'pre-b@example.com', '00000000-0000-0000-0000-0000000c70b1');
create table t.notes (id int, owner uuid);
insert into t.notes values (1, '00000000-0000-0000-0000-0000000c7001'), (2, '00000000-0000-0000-0000-0000000c7002'),
  (3, '00000000-0000-0000-0000-0000000c7002');
alter table t.notes enable row level security;
create policy own on t.notes for select using (owner = identity.uid());
grant select on t.notes to anon, authenticated;
create table t.req as
  select (select token from identity.create_api_token('00000000-0000-0000-0000-0000000c7001', 'pre a')) as api_a,
         (select token from identity.create_api_token('00000000-0000-0000-0000-0000000c7002', 'pre b')) as api_b,
         identity.issue_access_token('00000000-0000-0000-0000-0000000c7002') as jwt_b,
         identity.sign_jwt('{"sub": "00000000-0000-0000-0000-0000000c7001", "role": "postgres"}') as jwt_superuser,
         identity.sign_jwt('{"sub": "00000000-0000-0000-0000-0000000c7001", "role": "service_role"}') as jwt_not_member;
grant select on t.req to anon, authenticated;
-- A request helper: headers as PostgREST builds them.
create function t.headers(h jsonb) returns text language sql as $$
  select set_config('request.headers', h::text, true) $$;
grant execute on function t.headers(jsonb) to public;

set session authorization authenticator;

-- 1. An API token in x-api-key: verified, pinned, and the request becomes
--    the token's role (authenticated).
begin;
set local role anon;
select set_config('request.jwt.claims', '{"role": "anon"}', true) is not null as anon_claims;
select t.headers(jsonb_build_object('x-api-key', api_a, 'accept', 'application/json')) is not null from t.req;
select identity.pre_request();
select current_user as role, identity.uid(), identity.actor()->>'kind' as kind, array_agg(id order by id) as notes from t.notes;
commit;
-- 2. The next request on the same connection, anonymous: nothing is left.
begin;
set local role anon;
select set_config('request.jwt.claims', '{"role": "anon"}', true) is not null as anon_claims;
select t.headers('{"accept": "application/json"}') is not null;
select identity.pre_request();
select current_user as role, identity.uid() is null as no_uid, identity.jwt() as claims, count(*) as notes from t.notes;
commit;
-- 3. Another user's key, then with no claims at all.
begin;
set local role anon;
select t.headers(jsonb_build_object('x-api-key', api_b)) is not null from t.req;
select identity.pre_request();
select current_user as role, identity.uid(), array_agg(id order by id) as notes from t.notes;
commit;
begin;
set local role anon;
select identity.pre_request();
select current_user as role, identity.uid() is null as no_uid, count(*) as notes from t.notes;
commit;
-- 4. Refusals: PT401 (PostgREST answers 401), with a message that names no
--    secret; malformed headers 22023.
begin;
set local role anon;
select t.headers('{"x-api-key": "idt_0000000000000000000000000000000000000"}') is not null;
select t.err('select identity.pre_request()') as unknown_key;
select t.headers('{"x-api-key": "not-a-token"}') is not null;
select t.err('select identity.pre_request()') as malformed_key;
select t.headers('{"x-api-key": ""}') is not null;
select t.err('select identity.pre_request()') as empty_key;
select t.headers('{"authorization": "Basic dXNlcjpwYXNz"}') is not null;
select t.err('select identity.pre_request()') as basic_auth;
select set_config('request.headers', '{oops', true) is not null;
select t.err('select identity.pre_request()') as bad_json;
select current_user as still_anon, identity.uid() is null as no_uid;
commit;
-- 5. A revoked key is refused at the next request.
reset session authorization;
select identity.revoke_api_token((select (identity.verify_api_token(api_b))->>'token_id' from t.req)::uuid);
set session authorization authenticator;
begin;
set local role anon;
select t.headers(jsonb_build_object('x-api-key', api_b)) is not null from t.req;
select t.err('select identity.pre_request()') as revoked_key;
commit;
-- 6. A Bearer JWT: in mode request it is PostgREST's (it verified it and set
--    request.jwt.claims), so pre_request leaves it; in mode verified it is
--    verified and pinned here.
begin;
set local role anon;
select t.headers(jsonb_build_object('authorization', 'Bearer ' || jwt_b)) is not null from t.req;
select identity.pre_request();
select current_user as role, identity.uid() is null as no_uid_in_request_mode;
commit;
reset session authorization;
set identity.claims_source = 'verified';
set session authorization authenticator;
begin;
set local role anon;
select t.headers(jsonb_build_object('authorization', 'Bearer ' || jwt_b)) is not null from t.req;
select identity.pre_request();
select current_user as role, identity.uid(), array_agg(id order by id) as notes from t.notes;
commit;
begin;
set local role anon;
select t.headers(jsonb_build_object('authorization', 'Bearer ' || jwt_b || 'x')) is not null from t.req;
select t.err('select identity.pre_request()') as bad_signature;
-- A role the authenticator is not a member of: Postgres refuses the switch.
select t.headers(jsonb_build_object('authorization', 'Bearer ' || jwt_not_member)) is not null from t.req;
select t.err('select identity.pre_request()') as not_a_member;
-- A superuser role is never taken.
select t.headers(jsonb_build_object('authorization', 'Bearer ' || jwt_superuser)) is not null from t.req;
select t.err('select identity.pre_request()') as superuser_role;
select current_user as still_anon, identity.uid() is null as no_uid;
commit;
reset session authorization;
reset identity.claims_source;
