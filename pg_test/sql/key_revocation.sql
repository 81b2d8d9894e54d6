\i pg_test/fixtures.sql
\set scenario_db :DBNAME
-- Revoking a compromised signing key (identity.revoke_signing_key): tokens
-- naming it are refused from the next verification on ("key revoked"), it
-- leaves the JWKS, and nothing makes it usable again.
create table t.rk (a text, b text);
create table t.rt (token text);
grant all on t.rk, t.rt to public;
set role service_role;
insert into t.rk select identity.generate_signing_key('ES256'), identity.generate_signing_key('EdDSA');
select identity.activate_signing_key(a) from t.rk;
insert into t.rt select identity.sign_jwt('{"sub": "00000000-0000-0000-0000-0000000d7001"}');
-- Rotating to b retires a: a's tokens still verify.
select identity.activate_signing_key(b) from t.rk;
select identity.verify_jwt(token)->>'sub' as retired_key_verifies from t.rt;
select identity.revoke_signing_key(a) from t.rk;
-- Refused at once in this session, with the reason in DETAIL ...
select t.err(format('select identity.verify_jwt(%L)', token)) as revoked from t.rt;
select valid, reason from t.rt, identity.try_verify_jwt(token);
-- ... explain_jwt names the failing check ...
select c->>'check' as failing_check, c->>'detail' as detail
from t.rt, jsonb_array_elements(identity.explain_jwt(token)->'checks') c where not (c->>'pass')::boolean;
-- ... and the key is no longer published.
select count(*) as revoked_key_in_jwks from t.rk, jsonb_array_elements(identity.jwks()->'keys') k where k->>'kid' = t.rk.a;
select count(*) as active_key_in_jwks from t.rk, jsonb_array_elements(identity.jwks()->'keys') k where k->>'kid' = t.rk.b;
-- It cannot be undone: no activation, no retirement; revoking again changes nothing.
select t.err(format('select identity.activate_signing_key(%L)', a)) as reactivate from t.rk;
select t.err(format('select identity.retire_signing_key(%L)', a)) as retire from t.rk;
select t.err(format('select identity.revoke_signing_key(%L)', a)) as revoke_again from t.rk;
-- The active key cannot be revoked until another is activated (55000).
select t.err(format('select identity.revoke_signing_key(%L)', b)) as revoke_active from t.rk;
select t.err($$select identity.revoke_signing_key('nope')$$) as revoke_unknown;
select t.err($$select identity.revoke_signing_key(null)$$) as revoke_null;
reset role;
-- Only the admin level may revoke.
set role authenticated;
select t.err(format('select identity.revoke_signing_key(%L)', b)) as user_revokes from t.rk;
reset role;
-- Audited, once (the second call changed nothing).
select action, details from identity.audit_log, t.rk
where action = 'signing_key.revoked' and target_id = t.rk.a;
select status, revoked_at is not null as revoked_at_set from identity.signing_keys, t.rk where kid = t.rk.a;
-- Another connection (no cached key) refuses it too.
\c :scenario_db
select t.err(format('select identity.verify_jwt(%L)', token)) as new_session from t.rt;
-- Revoking a next key: it was published, it is not any more.
select identity.generate_signing_key('RS256') as next_kid \gset
select identity.revoke_signing_key(:'next_kid');
select count(*) as next_key_in_jwks from jsonb_array_elements(identity.jwks()->'keys') k where k->>'kid' = :'next_kid';
select identity.retire_signing_key(kid) from identity.signing_keys where status = 'active';
