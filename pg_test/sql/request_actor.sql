\i pg_test/fixtures.sql
-- An actor taken from request.jwt.claims (claims_source = request, the
-- default: PostgREST verified the JWT and set the claims) passes exactly
-- the stateful checks verify_jwt applies: a JWT whose parent API token was
-- revoked, whose session or jti was revoked, or whose user was suspended
-- (then reactivated: tokens_valid_after moved) acts no more, in the
-- management functions and in the RLS helpers; and a failed
-- identity.authenticate pins nobody for the rest of its transaction.
insert into identity.organizations (id, name) values ('00000000-0000-0000-0000-0000000000e0', 'Actor Org');
insert into identity.users (id, email, organization_id, user_role, is_service_user) values
  ('00000000-0000-0000-0000-0000000000e1', 'svc@actor.test', '00000000-0000-0000-0000-0000000000e0', 'user', true),
  ('00000000-0000-0000-0000-0000000000e2', 'admin@actor.test', '00000000-0000-0000-0000-0000000000e0', 'admin', false),
  ('00000000-0000-0000-0000-0000000000e3', 'member@actor.test', '00000000-0000-0000-0000-0000000000e0', 'admin', false);
create table t.actor_tokens (name text primary key, token_id uuid, token text, jwt text);
grant all on t.actor_tokens to public;
insert into t.actor_tokens (name, token_id, token)
  select 'parent', token_id, token from identity.create_api_token('00000000-0000-0000-0000-0000000000e1', 'parent');
update t.actor_tokens set jwt = identity.exchange_api_token(token) where name = 'parent';
-- The claims as PostgREST sets them after verifying the JWT.
create function t.request_as(jwt text) returns void language sql as $$
  select set_config('request.jwt.claims', (identity.decode_jwt(jwt)->'payload')::text, true)
$$;
grant execute on function t.request_as(text) to public;
-- identity.current_user() for the claims of `jwt`, or its refusal.
create function t.current_user_as(jwt text) returns text language plpgsql as $$
begin
    perform t.request_as(jwt);
    return t.err('select identity.current_user()');
end
$$;

-- Before the revocation: the derived JWT acts.
begin;
set local role authenticated;
select t.request_as(jwt) from t.actor_tokens where name = 'parent' \gset
select identity.uid() as uid, identity.org_id() as org_id, identity.is_service_user() as svc;
select (identity.current_user()->'user'->>'id') as current_user_id;
select t.err($$select count(*) from identity.create_api_token('00000000-0000-0000-0000-0000000000e1', 'child', '1 day')$$) as mint;
rollback;

-- The parent API token is revoked: verify_jwt refuses the JWT, and so does
-- every function that takes the actor from the same claims.
select identity.revoke_api_token(token_id) from t.actor_tokens where name = 'parent';
select t.err(format('select identity.verify_jwt(%L)', jwt)) as verify_jwt from t.actor_tokens where name = 'parent';
begin;
set local role authenticated;
select t.request_as(jwt) from t.actor_tokens where name = 'parent' \gset
select identity.uid() as uid, identity.org_id() as org_id, identity.is_service_user() as svc,
       identity.jwt() as jwt, identity.user_role() as user_role;
select t.err($$select identity.current_user()$$) as current_user;
select t.err($$select count(*) from identity.create_api_token('00000000-0000-0000-0000-0000000000e1', 'child', '1 day')$$) as mint;
select t.err($$select identity.create_websocket_token()$$) as websocket;
select count(*) as users_visible from identity.users;
rollback;

-- A session and a jti revoked.
select identity.sign_jwt('{"sub": "00000000-0000-0000-0000-0000000000e2", "role": "authenticated", "session_id": "00000000-0000-0000-0000-00000000e5e5"}') as by_session \gset
select identity.sign_jwt('{"sub": "00000000-0000-0000-0000-0000000000e2", "role": "authenticated", "jti": "actor-jti-1"}') as by_jti \gset
begin;
set local role authenticated;
select t.request_as(:'by_session') \gset
select identity.uid() is not null as session_acts_before;
rollback;
select identity.revoke_session('00000000-0000-0000-0000-00000000e5e5');
select identity.revoke_jwt('actor-jti-1', now() + interval '1 hour');
select t.err(format('select identity.verify_jwt(%L)', :'by_session')) as session_verify_jwt;
select t.current_user_as(:'by_session') as session_current_user;
select t.err(format('select identity.verify_jwt(%L)', :'by_jti')) as jti_verify_jwt;
select t.current_user_as(:'by_jti') as jti_current_user;

-- A user suspended and then reactivated: tokens issued before stay dead.
select identity.sign_jwt('{"sub": "00000000-0000-0000-0000-0000000000e3", "role": "authenticated"}') as before_suspension \gset
select pg_sleep(1.1);
select identity.suspend_user('00000000-0000-0000-0000-0000000000e3');
select identity.reactivate_user('00000000-0000-0000-0000-0000000000e3');
select t.err(format('select identity.verify_jwt(%L)', :'before_suspension')) as suspended_verify_jwt;
select t.current_user_as(:'before_suspension') as suspended_current_user;
begin;
set local role authenticated;
select t.request_as(:'before_suspension') \gset
select identity.uid() as uid_after_reactivation, identity.is_admin() as admin;
select t.err($$select identity.list_api_tokens('00000000-0000-0000-0000-0000000000e3')$$) as list;
rollback;
-- A new token of the reactivated user acts (tokens_valid_after is rounded
-- up to the next second).
select pg_sleep(1.1);
select identity.sign_jwt('{"sub": "00000000-0000-0000-0000-0000000000e3", "role": "authenticated"}') as after \gset
begin;
set local role authenticated;
select t.request_as(:'after') \gset
select identity.uid() as uid_new_token;
rollback;

-- The same backend that saw the claims act sees the revocation at once:
-- claims set for the whole session, a revocation committed in between.
select identity.sign_jwt('{"sub": "00000000-0000-0000-0000-0000000000e2", "role": "authenticated", "jti": "actor-jti-2"}') as long_lived \gset
select set_config('request.jwt.claims', (identity.decode_jwt(:'long_lived')->'payload')::text, false) \gset
select identity.uid() as uid_before, identity.org_id() as org_before;
select identity.revoke_jwt('actor-jti-2', now() + interval '1 hour') \gset
select identity.uid() as uid_after, identity.org_id() as org_after, identity.is_service_user() as svc_after;
select set_config('request.jwt.claims', '', false) \gset

-- A failed identity.authenticate pins nobody: an admin-level caller that
-- ignores the NULL is not the system, helpers answer NULL, and neither a
-- later authenticate nor authenticate(NULL) lifts it in that transaction.
begin;
set local role service_role;
select identity.authenticate('not-a-token') is null as refused;
select identity.uid() as uid, identity.jwt() as jwt, identity.actor()->>'kind' as kind;
select t.err($$select count(*) from identity.create_api_token('00000000-0000-0000-0000-0000000000e1', 'x', '1 day')$$) as mint;
select t.err($$select identity.suspend_user('00000000-0000-0000-0000-0000000000e1')$$) as suspend;
select identity.authenticate(null) is null as cleared;
select t.err($$select identity.suspend_user('00000000-0000-0000-0000-0000000000e1')$$) as suspend_after_null;
select identity.authenticate(:'after') is null as second_refused;
select identity.uid() as uid_after_second;
-- RESET ALL (which resets superuser-only settings too) lifts nothing.
reset all;
select identity.actor()->>'kind' as kind_after_reset_all;
rollback;
-- The next transaction starts clean: system again for the admin level.
begin;
set local role service_role;
select identity.actor()->>'kind' as kind_next_transaction;
rollback;

-- Claims set for a whole session stop acting when their exp passes (with
-- identity.jwt_leeway), though no table changed.
set identity.jwt_leeway = 0;
select set_config('request.jwt.claims', jsonb_build_object('sub', '00000000-0000-0000-0000-0000000000e3',
       'role', 'authenticated', 'iat', extract(epoch from now())::bigint + 1,
       'exp', extract(epoch from now())::bigint + 2)::text, false) \gset
select identity.uid() as uid_before_exp, identity.user_role() as role_before_exp;
select pg_sleep(3);
select identity.uid() as uid_after_exp, identity.user_role() as role_after_exp;
select t.err($$select identity.current_user()$$) as current_user_after_exp;
select set_config('request.jwt.claims', '', false) \gset
reset identity.jwt_leeway;
