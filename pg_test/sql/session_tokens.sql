\i pg_test/fixtures.sql
-- Websocket and agent tokens (API.md 5), with claims set the way PostgREST
-- sets them: SET LOCAL ROLE and request.jwt.claims for the transaction.
insert into identity.users (id, email, user_role) values
  ('00000000-0000-0000-0000-00000000c001', 'ws1@example.com', 'admin'),
  ('00000000-0000-0000-0000-00000000c002', 'ws2@example.com', 'user');
insert into identity.users (id, email, status) values ('00000000-0000-0000-0000-00000000c003', 'ws3@example.com', 'suspended');

begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-00000000c001", "role": "authenticated"}', true);
-- Websocket: for the actor, aud websocket, 5 minutes by default, at most 15.
select c->>'sub' as sub, c->>'aud' as aud, c->>'user_role' as user_role,
       (c->>'exp')::bigint - (c->>'iat')::bigint as lifetime
from identity.verify_jwt(identity.create_websocket_token(), 'websocket') c;
select (c->>'exp')::bigint - (c->>'iat')::bigint as lifetime
from identity.verify_jwt(identity.create_websocket_token(ttl => '15 minutes'), 'websocket') c;
select t.err($$select identity.create_websocket_token(ttl => '20 minutes')$$) as too_long;
-- Not the default audience: verify_jwt without 'websocket' refuses it.
select t.err($$select identity.verify_jwt(identity.create_websocket_token())$$) as default_aud;
-- Minting for someone else needs the admin level.
select t.err($$select identity.create_websocket_token('00000000-0000-0000-0000-00000000c002')$$) as other_user;
-- Agent: aud agent, act names the agent, 1 hour by default; no scopes in the
-- claims means the user is unrestricted, and so are requested scopes.
select c->>'sub' as sub, c->>'aud' as aud, c->'act'->>'type' as act_type, c->'act'->>'sub' like 'agent:%' as act_named,
       c->'scopes' as scopes, (c->>'exp')::bigint - (c->>'iat')::bigint as lifetime
from identity.verify_jwt(identity.create_agent_token(scopes => array['tools:run']), 'agent') c;
select c ? 'scopes' as has_scopes from identity.verify_jwt(identity.create_agent_token(), 'agent') c;
rollback;

-- A scoped actor (e.g. a JWT from exchange_api_token): scopes never widen.
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-00000000c001", "scopes": ["a", "b"]}', true);
select c->'scopes' as inherited from identity.verify_jwt(identity.create_agent_token(), 'agent') c;
select c->'scopes' as narrowed from identity.verify_jwt(identity.create_agent_token(scopes => array['a']), 'agent') c;
select t.err($$select identity.create_agent_token(scopes => array['a', 'c'])$$) as widened;
select t.err($$select identity.create_agent_token(scopes => array['Bad'])$$) as invalid;
select t.err($$select identity.create_agent_token(ttl => '2 days')$$) as too_long;
rollback;

-- No claims: the role acts as system. A user-level role may not mint for anyone.
begin;
set local role authenticated;
select t.err($$select identity.create_websocket_token()$$) as no_actor;
select t.err($$select identity.create_websocket_token('00000000-0000-0000-0000-00000000c001')$$) as not_admin;
rollback;
-- Malformed claims fail closed.
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{not json', true);
select t.err($$select identity.create_agent_token()$$) as malformed_claims;
rollback;
-- The admin level (service_role) mints for any user; not for a suspended or unknown one.
begin;
set local role service_role;
select c->>'sub' as sub from identity.verify_jwt(identity.create_websocket_token('00000000-0000-0000-0000-00000000c002'), 'websocket') c;
select t.err($$select identity.create_websocket_token('00000000-0000-0000-0000-00000000c003')$$) as suspended;
select t.err($$select identity.create_agent_token('00000000-0000-0000-0000-0000000000ee')$$) as unknown;
rollback;
-- anon has no grant.
set role anon;
select t.err($$select identity.create_websocket_token()$$) as anon;
reset role;
