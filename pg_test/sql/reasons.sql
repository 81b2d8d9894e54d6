\i pg_test/fixtures.sql
-- Reason codes (API.md 16, README "Reason codes"): every error's DETAIL
-- starts with a code of one catalog (`code`, or `code: detail`: the code is
-- ^[a-z_]+ up to the first colon or the end); try_verify_jwt answers it as
-- `code`, and try_verify_api_token answers it for any text without raising.
-- Tokens are random: the file prints verdicts and codes, never a token.
-- t.code(sql): 'ok', or the SQLSTATE and the code its DETAIL starts with.
create or replace function t.code(sql text) returns text language plpgsql as $$
declare
    d text;
begin
    execute sql;
    return 'ok';
exception when others then
    get stacked diagnostics d = pg_exception_detail;
    return sqlstate || ' ' || coalesce(substring(d from '^([a-z_]+)(?::|$)'), '<no code: ' || coalesce(d, 'no detail') || '>');
end
$$;
grant execute on function t.code(text) to public;
create or replace function t.b64url(s text) returns text language sql immutable as $$
  select rtrim(translate(encode(convert_to(s, 'utf8'), 'base64'), E'+/\n', '-_'), '=') $$;
grant execute on function t.b64url(text) to public;

insert into identity.organizations (id, name) values ('00000000-0000-0000-0000-000000003100', 'Reasons Org');
insert into identity.users (id, email, organization_id, user_role) values
  ('00000000-0000-0000-0000-000000003101', 'live@reasons.test', '00000000-0000-0000-0000-000000003100', 'user'),
  ('00000000-0000-0000-0000-000000003102', 'suspended@reasons.test', '00000000-0000-0000-0000-000000003100', 'user'),
  ('00000000-0000-0000-0000-000000003103', 'gone@reasons.test', null, 'user');

-- JWTs: every refusal with its code.
create table t.rj (name text primary key, token text, audience text);
grant select on t.rj to public;
grant insert on t.rj to service_role;
set role service_role;
insert into t.rj values
  ('valid',          identity.sign_jwt('{"sub": "00000000-0000-0000-0000-000000003101"}'), null),
  ('expired',        identity.sign_jwt('{"sub": "00000000-0000-0000-0000-000000003101", "exp": 1000}'), null),
  ('not_yet_valid',  identity.sign_jwt('{"sub": "00000000-0000-0000-0000-000000003101", "nbf": 4000000000}'), null),
  ('iat_ahead',      identity.sign_jwt('{"sub": "00000000-0000-0000-0000-000000003101", "iat": 4000000000}'), null),
  ('other_audience', identity.sign_jwt('{"sub": "00000000-0000-0000-0000-000000003101"}'), 'other'),
  ('revoked_jti',    identity.sign_jwt('{"sub": "00000000-0000-0000-0000-000000003101", "jti": "reasons-revoked"}'), null),
  ('revoked_session', identity.sign_jwt('{"sub": "00000000-0000-0000-0000-000000003101", "session_id": "00000000-0000-0000-0000-0000000031e1"}'), null),
  ('suspended_user', identity.sign_jwt('{"sub": "00000000-0000-0000-0000-000000003102"}'), null),
  ('bad_jti',        identity.sign_jwt('{"sub": "00000000-0000-0000-0000-000000003101", "jti": 7}'), null);
select identity.revoke_jwt('reasons-revoked', now() + interval '1 day');
select identity.revoke_session('00000000-0000-0000-0000-0000000031e1');
reset role;
-- (The API token of the user about to be suspended, for the API token part below.)
create table t.ra (name text primary key, token_id uuid, token text);
grant select on t.ra to public;
grant insert on t.ra to service_role;
insert into t.ra select 'suspended_user', token_id, token from identity.create_api_token('00000000-0000-0000-0000-000000003102', 'suspended');
update identity.users set status = 'suspended' where id = '00000000-0000-0000-0000-000000003102';
insert into t.rj select 'bad_signature', split_part(a.token, '.', 1) || '.' || split_part(a.token, '.', 2) || '.' || split_part(b.token, '.', 3), null
  from t.rj a, t.rj b where a.name = 'valid' and b.name = 'expired';
insert into t.rj select 'alg_none', t.b64url('{"alg":"none"}') || '.' || split_part(token, '.', 2) || '.', null from t.rj where name = 'valid';
insert into t.rj select 'unknown_kid', t.b64url('{"alg":"ES256","kid":"reasons-nope"}') || '.' || split_part(token, '.', 2) || '.' || split_part(token, '.', 3), null
  from t.rj where name = 'valid';
insert into t.rj select 'crit', t.b64url('{"alg":"HS256","crit":["x"]}') || '.' || split_part(token, '.', 2) || '.' || split_part(token, '.', 3), null
  from t.rj where name = 'valid';
insert into t.rj values ('malformed', 'abc.def', null), ('garbage', 'not a token at all', null), ('empty', '', null),
  ('too_large', repeat('a', 20000), null), ('null', null, null);

set role authenticated;
-- try_verify_jwt: valid, claims and reason as in 0.1.0, and the code.
select name, v.valid, v.code, v.reason is not null as has_reason, v.claims is not null as has_claims
from t.rj, lateral identity.try_verify_jwt(token, audience) v order by name;
-- verify_jwt raises 28000 with the same code first in DETAIL.
select name, t.code(format('select identity.verify_jwt(%L, %L)', token, audience)) as verify_jwt
from t.rj where name <> 'null' order by name;
-- The DETAIL is the code, a colon, a space and the reason try_verify_jwt answers.
select t.err(format('select identity.verify_jwt(%L)', token)) from t.rj where name = 'expired';
reset role;

-- API tokens: try_verify_api_token never raises; verify_api_token's DETAIL
-- carries the same code.
set role service_role;
insert into t.ra select 'valid', token_id, token from identity.create_api_token('00000000-0000-0000-0000-000000003101', 'valid', scopes => array['users:read']);
insert into t.ra select 'expired', token_id, token from identity.create_api_token('00000000-0000-0000-0000-000000003101', 'expired');
insert into t.ra select 'revoked', token_id, token from identity.create_api_token('00000000-0000-0000-0000-000000003101', 'revoked');
insert into t.ra select 'unknown', token_id, token from identity.create_api_token('00000000-0000-0000-0000-000000003103', 'unknown');
select identity.revoke_api_token(token_id) from t.ra where name = 'revoked';
reset role;
update identity.api_tokens set expires_at = now() - interval '1 minute' where id = (select token_id from t.ra where name = 'expired');
-- A deleted user's tokens go with it: the token is then unknown.
delete from identity.users where id = '00000000-0000-0000-0000-000000003103';
insert into t.ra select 'bad_checksum', null, left(token, -1) || case when right(token, 1) = 'A' then 'B' else 'A' end from t.ra where name = 'valid';
insert into t.ra values ('wrong_prefix', null, 'sk_live_000000000000000000000000000000000000'),
  ('garbage', null, 'garbage'), ('empty', null, ''), ('one_megabyte', null, repeat('x', 1048576)),
  ('jwt_shaped', null, 'eyJhbGciOiJIUzI1NiJ9.e30.c2ln'), ('non_ascii', null, 'idt_' || repeat('é', 18)),
  ('null', null, null);

set role authenticated;
select name, v.valid, v.code, v.principal->>'user_id' as principal_user, v.principal->'scopes' as scopes,
       (v.principal->>'token_id')::uuid is not distinct from a.token_id and v.valid as same_token
from t.ra a, lateral identity.try_verify_api_token(a.token) v order by name;
select name, t.code(format('select identity.verify_api_token(%L)', token)) as verify_api_token
from t.ra where name <> 'null' order by name;
-- The principal is verify_api_token's, exactly.
select v.principal = identity.verify_api_token(a.token) as same_principal
from t.ra a, lateral identity.try_verify_api_token(a.token) v where a.name = 'valid';
-- exchange_api_token's refusals carry the same codes.
select t.code('select identity.exchange_api_token(null)') as exchange_null;
select t.code(format('select identity.exchange_api_token(%L)', token)) as exchange_revoked from t.ra where name = 'revoked';
reset role;

-- Every other kind of error carries its code too.
set role authenticated;
select t.act('00000000-0000-0000-0000-000000003101');
select t.code($$select identity.suspend_user('00000000-0000-0000-0000-000000003101')$$) as suspend_self;
select t.code($$select identity.create_api_token('00000000-0000-0000-0000-000000003102', 'x')$$) as token_for_stranger;
select t.code($$select identity.create_api_token('00000000-0000-0000-0000-000000003101', '')$$) as empty_name;
select t.code($$select identity.decode_jwt('abc.def')$$) as decode_malformed;
select t.code($$select identity.decode_jwt(repeat('a', 20000))$$) as decode_too_large;
-- A scoped actor (an API token's claims, pinned for the transaction) without the scope.
begin;
select identity.authenticate(token) is not null as signed_in from t.ra where name = 'valid';
select t.code($$select identity.list_credentials()$$) as scope_missing;
commit;
-- A websocket token's claims mint nothing.
select t.act(null);
select set_config('request.jwt.claims', jsonb_build_object('sub', '00000000-0000-0000-0000-000000003101', 'role', 'authenticated', 'aud', 'websocket')::text, false);
select t.code($$select identity.create_api_token('00000000-0000-0000-0000-000000003101', 'x')$$) as websocket_mints;
select set_config('request.jwt.claims', '', false);
select t.code($$select identity.create_api_token('00000000-0000-0000-0000-000000003101', 'x')$$) as no_claims;
reset role;
-- Webhooks and external issuers.
set role service_role;
select t.code($$select identity.handle_webhook('https://unknown.reasons.test', '{}', '{}')$$) as webhook_unknown_issuer;
select t.code('select identity.exchange_external_token(null)') as external_null;
select t.code(format('select identity.exchange_external_token(%L)', token)) as external_ours from t.rj where name = 'valid';
select t.code($$select identity.revoke_api_token('00000000-0000-0000-0000-000000000000')$$) as unknown_token_id;
reset role;
-- Not configured: the secret unset.
begin;
set local identity.jwt_secret = '';
select t.code($$select identity.sign_jwt('{}')$$) as no_secret;
rollback;
