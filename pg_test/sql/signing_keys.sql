\i pg_test/fixtures.sql
\set scenario_db :DBNAME
insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000d5001', 'keys-ws@example.com');
-- Asymmetric signing keys and the JWKS (API.md 3).
create table t.keys (alg text primary key, kid text);
grant all on t.keys to public;
set role service_role;
-- Generated keys start as `next`: published in the JWKS, not yet signing.
insert into t.keys select a, identity.generate_signing_key(a) from unnest(array['ES256', 'RS256', 'EdDSA']) a;
select k->>'alg' as alg, k->>'kty' as kty, k->>'crv' as crv, k->>'use' as use, k ? 'd' as has_private_part,
       k->>'kid' = (select kid from t.keys where alg = k->>'alg') as kid_ok
from jsonb_array_elements(identity.jwks()->'keys') k order by 1;
-- No active key yet: sign_jwt uses HS256.
select identity.decode_jwt(identity.sign_jwt('{"sub": "x"}'))->'header' as header;
-- Activate ES256: tokens carry its kid; verify_jwt picks the key by kid.
select identity.activate_signing_key(kid) from t.keys where alg = 'ES256';
create temp table tok as select 'es256' as name, identity.sign_jwt('{"sub": "x"}') as token;
select h->>'alg' as alg, h->>'kid' = (select kid from t.keys where alg = 'ES256') as kid_ok
from tok, lateral (select identity.decode_jwt(token)->'header' as h) d;
select (identity.verify_jwt(token))->>'sub' as sub from tok where name = 'es256';
-- Forged headers: another alg with the same kid, and an unknown kid.
select t.err(format('select identity.verify_jwt(%L)',
         rtrim(translate(encode(convert_to('{"alg":"HS256","kid":"' || (select kid from t.keys where alg = 'ES256') || '"}', 'utf8'), 'base64'), E'+/\n', '-_'), '=')
         || '.' || split_part(token, '.', 2) || '.' || split_part(token, '.', 3))) as hs256_with_es256_kid from tok;
select t.err(format('select identity.verify_jwt(%L)',
         rtrim(translate(encode(convert_to('{"alg":"ES256","kid":"nope"}', 'utf8'), 'base64'), E'+/\n', '-_'), '=')
         || '.' || split_part(token, '.', 2) || '.' || split_part(token, '.', 3))) as unknown_kid from tok;
-- Rotate to EdDSA: the ES256 key is retired but keeps verifying its tokens.
select identity.activate_signing_key(kid) from t.keys where alg = 'EdDSA';
insert into tok select 'eddsa', identity.sign_jwt('{"sub": "y"}');
select name, identity.decode_jwt(token)#>>'{header,alg}' as alg, (identity.verify_jwt(token))->>'sub' as sub from tok order by name;
select k->>'alg' as alg, s.status from jsonb_array_elements(identity.jwks()->'keys') k
  join (select kid, case when alg = 'ES256' then 'retired' when alg = 'EdDSA' then 'active' else 'next' end as status from t.keys) s
  on s.kid = k->>'kid' order by 1;
-- RS256 too; then retiring the active key falls back to HS256.
select identity.activate_signing_key(kid) from t.keys where alg = 'RS256';
insert into tok select 'rs256', identity.sign_jwt('{"sub": "z"}');
select identity.decode_jwt(token)#>>'{header,alg}' as alg, (identity.verify_jwt(token))->>'sub' as sub from tok where name = 'rs256';
select identity.retire_signing_key(kid) from t.keys where alg = 'RS256';
select identity.decode_jwt(identity.sign_jwt('{}'))#>>'{header,alg}' as after_retiring_all;
-- Other issuers sign with the active key too.
select identity.activate_signing_key(identity.generate_signing_key('ES256'));
select identity.decode_jwt(identity.create_websocket_token('00000000-0000-0000-0000-0000000d5001'))#>>'{header,alg}' as websocket_alg;
-- Bad calls.
select t.err($$select identity.generate_signing_key('HS256')$$) as hs256_key;
select t.err($$select identity.generate_signing_key('none')$$) as none_key;
select t.err($$select identity.activate_signing_key('nope')$$) as unknown;
select t.err(format('select identity.activate_signing_key(%L)', kid)) as reactivate from t.keys where alg = 'RS256';
select t.err($$select identity.retire_signing_key('nope')$$) as retire_unknown;
reset role;
set role authenticated;
select jsonb_array_length(identity.jwks()->'keys') > 0 as users_read_jwks;
select t.err($$select identity.generate_signing_key()$$) as user_generates;
reset role;
-- An expired retired key neither verifies nor stays in the JWKS.
update identity.signing_keys set expires_at = now() - interval '1 second' where kid = (select kid from t.keys where alg = 'ES256');
select t.err(format('select identity.verify_jwt(%L)', token)) as expired_key from tok where name = 'es256';
select count(*) as es256_in_jwks from jsonb_array_elements(identity.jwks()->'keys') k where k->>'alg' = 'ES256' and k->>'kid' = (select kid from t.keys where alg = 'ES256');
-- Private keys at rest: versioned AEAD ciphertext (format 2: the sealing key's id in bytes 2-9), never DER in clear.
select count(*) as keys, bool_and(get_byte(private_key_ciphertext, 0) = 2) as sealed,
       bool_and(position('\x3082'::bytea in private_key_ciphertext) <> 1) as no_der_header
from identity.signing_keys;
-- A new backend (no cached keys) with the wrong encryption key cannot sign.
\c :scenario_db
set identity.encryption_key = 'd3Jvbmcta2V5LWRvLW5vdC11c2UtMDEyMzQ1Njc4OWE=';
select t.err($$select identity.sign_jwt('{}')$$) as wrong_key;
set identity.encryption_key = '';
select t.err($$select identity.generate_signing_key()$$) as no_key;
reset identity.encryption_key;
