\i pg_test/fixtures.sql
-- JWTs (API.md 3), HS256 with identity.jwt_secret from the cluster config.
-- Tokens carry random jti and times, so the file prints claims and verdicts,
-- never tokens.
-- hook.sql recreated the extension at its end: grant the levels again.
select identity.grant_access('authenticated', 'user');
select identity.grant_access('service_role', 'admin');
create table t.tok (name text primary key, token text);
grant select on t.tok to public;
grant insert on t.tok to service_role;
set role service_role;
insert into t.tok values
  ('good',      identity.sign_jwt('{"sub": "00000000-0000-0000-0000-0000000000d1", "role": "authenticated", "session_id": "00000000-0000-0000-0000-0000000000e1"}')),
  ('expired',   identity.sign_jwt('{"sub": "x", "exp": 1000}')),
  ('future',    identity.sign_jwt('{"sub": "x", "nbf": 4000000000}')),
  ('iat_ahead', identity.sign_jwt('{"sub": "x", "iat": 4000000000}')),
  ('other_aud', identity.sign_jwt('{"sub": "x", "aud": "websocket"}')),
  ('aud_array', identity.sign_jwt('{"sub": "x", "aud": ["api", "authenticated"]}')),
  ('short_ttl', identity.sign_jwt('{"sub": "x"}', '2 minutes'));
reset role;

-- What sign_jwt filled in.
select name, (p->>'exp')::bigint - (p->>'iat')::bigint as lifetime, p->>'aud' as aud,
       p->>'jti' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' as jti_is_uuid_v4,
       identity.decode_jwt(token)->'header' as header
from t.tok, lateral (select identity.decode_jwt(token)->'payload' as p) d
where name in ('good', 'short_ttl') order by name;

-- Verification as an end user (level user), every outcome.
set role authenticated;
select name, v.valid, v.reason, v.claims->>'sub' as sub
from t.tok, lateral identity.try_verify_jwt(token) v order by name;
select identity.verify_jwt(token) ->> 'session_id' as session from t.tok where name = 'good';
select t.err(format('select identity.verify_jwt(%L)', token)) from t.tok where name = 'expired';
select t.err(format('select identity.verify_jwt(%L, %L)', token, 'websocket')) from t.tok where name = 'good';
select (identity.verify_jwt(token, 'websocket'))->>'aud' as websocket_aud from t.tok where name = 'other_aud';
select identity.verify_jwt(null) is null as null_in_null_out;

-- Forged and malformed tokens: 28000 with the reason.
select t.err($$select identity.verify_jwt('eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4IiwiZXhwIjo0MDAwMDAwMDAwfQ.')$$) as alg_none;
select t.err(format('select identity.verify_jwt(%L)',
         split_part(token, '.', 1) || '.' || 'eyJzdWIiOiJ4Iiwicm9sZSI6ImFkbWluIiwiZXhwIjo0MDAwMDAwMDAwfQ' || '.' || split_part(token, '.', 3)))
       as tampered_payload from t.tok where name = 'good';
select t.err(format('select identity.verify_jwt(%L)', split_part(token, '.', 1) || '.' || split_part(token, '.', 2) || '.'))
       as empty_signature from t.tok where name = 'good';
select t.err(format('select identity.verify_jwt(%L)', left(token, -3))) as truncated from t.tok where name = 'good';
select t.err($$select identity.verify_jwt('not.a.jwt')$$) as garbage;
select t.err($$select identity.verify_jwt(repeat('a', 1048576))$$) as one_megabyte;
select t.err($$select identity.verify_jwt('e30.WzFd.e30')$$) as payload_not_object;
-- An end user may not sign, explain or revoke.
select t.err($$select identity.sign_jwt('{}')$$);
select t.err($$select identity.explain_jwt('a.b.c')$$);
select t.err($$select identity.revoke_jwt('x', now())$$);
reset role;

-- explain_jwt: every check, pass or fail.
select c->>'check' as check, c->>'pass' as pass, c->>'detail' as detail
from t.tok, lateral jsonb_array_elements(identity.explain_jwt(token)->'checks') c where name = 'iat_ahead';

-- Revocation by jti and by session, immediately effective; audited.
set role service_role;
select identity.revoke_jwt(identity.decode_jwt(token)#>>'{payload,jti}', now() + interval '1 hour') from t.tok where name = 'aud_array';
select identity.revoke_session('00000000-0000-0000-0000-0000000000e1');
select t.err($$select identity.revoke_jwt('', now())$$);
select t.err($$select identity.revoke_session(null)$$);
reset role;
select name, v.valid, v.reason from t.tok, lateral identity.try_verify_jwt(token) v
where name in ('aud_array', 'good', 'short_ttl') order by name;
select action, target_type from identity.audit_log where action in ('jwt.revoked', 'session.revoked') order by id;

-- The user's state: suspension and tokens_valid_after take effect at once.
insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000000d2', 'jwt-user@example.com');
insert into t.tok values ('user', identity.sign_jwt('{"sub": "00000000-0000-0000-0000-0000000000d2"}'));
select v.valid, v.reason from t.tok, lateral identity.try_verify_jwt(token) v where name = 'user';
update identity.users set status = 'suspended' where id = '00000000-0000-0000-0000-0000000000d2';
select v.valid, v.reason from t.tok, lateral identity.try_verify_jwt(token) v where name = 'user';
update identity.users set status = 'active', tokens_valid_after = now() + interval '1 minute'
where id = '00000000-0000-0000-0000-0000000000d2';
select v.valid, v.reason from t.tok, lateral identity.try_verify_jwt(token) v where name = 'user';

-- A new backend loads the users a check can refuse by an index-only scan
-- of users_token_state: from the index tuples where the visibility map
-- says all-visible (after this VACUUM), from the heap where a change
-- since left an index entry whose row is gone.
insert into identity.users (id, email, status) values
  ('00000000-0000-0000-0000-0000000000d3', 'jwt-d3@example.com', 'suspended'),
  ('00000000-0000-0000-0000-0000000000d4', 'jwt-d4@example.com', 'active');
insert into t.tok values
  ('d3', identity.sign_jwt('{"sub": "00000000-0000-0000-0000-0000000000d3"}')),
  ('d4', identity.sign_jwt('{"sub": "00000000-0000-0000-0000-0000000000d4"}'));
vacuum identity.users;
\c
select name, v.valid, v.reason from t.tok, lateral identity.try_verify_jwt(token) v
where name in ('d3', 'd4') order by name;
update identity.users set status = 'active' where id = '00000000-0000-0000-0000-0000000000d3';
update identity.users set status = 'disabled' where id = '00000000-0000-0000-0000-0000000000d4';
\c
select name, v.valid, v.reason from t.tok, lateral identity.try_verify_jwt(token) v
where name in ('d3', 'd4') order by name;

-- Configuration: no secret or a short one is 55000 with a hint, never the value.
set identity.jwt_secret = '';
select t.err(format('select identity.verify_jwt(%L)', token)) from t.tok where name = 'short_ttl';
set identity.jwt_secret = 'short-secret';
select t.err($$select identity.sign_jwt('{}')$$);
reset identity.jwt_secret;
-- Bad arguments.
select t.err($$select identity.sign_jwt('[1]')$$);
select t.err($$select identity.sign_jwt('{}', '-1 hour')$$);
select t.err($$select identity.sign_jwt('{}', '2 years')$$);
select t.err($$select identity.sign_jwt(jsonb_build_object('big', repeat('x', 20000)))$$);
