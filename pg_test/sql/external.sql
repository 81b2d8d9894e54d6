\i pg_test/fixtures.sql
\set scenario_db :DBNAME
-- External issuers (API.md 11) as real roles. The "provider" here is a key
-- of our own (generate_signing_key) signing tokens whose iss names another
-- issuer, registered with that key's public JWKS: authenticate then
-- verifies them as that issuer's, maps the subject to our user, and pins
-- our claims.
create table t.ext (kid text, token text, other text);
grant all on t.ext to public;
set role service_role;
insert into t.ext (kid) select identity.generate_signing_key('ES256');
select identity.activate_signing_key(kid) from t.ext;
update t.ext set token = identity.sign_jwt('{"iss": "https://idp.example", "sub": "ext-1", "email": "ext1@example.com"}'),
                 other = identity.sign_jwt('{"iss": "https://idp.example", "sub": "ext-2"}');
select identity.register_issuer('https://idp.example',
         jsonb_build_object('keys', jsonb_path_query_array(identity.jwks(), '$.keys[*] ? (@.kid == $k)', jsonb_build_object('k', kid))),
         '{"audience": "authenticated"}')->>'key_count' as keys
from t.ext;
-- Provisioning is off: an unknown subject is refused (a warning, NULL).
select identity.authenticate(token) is null as refused from t.ext;
-- A user whose external_id is the subject is linked on the first sign-in.
select (identity.provision_user('ext-1', 'ext1@example.com')->'user'->>'external_id') as provisioned;
reset role;
create view t.ext_user as select id from identity.users where external_id = 'ext-1';
grant select on t.ext_user to public;
alter view t.ext_user owner to postgres;
set role service_role;
begin;
select c->>'sub' = (select id::text from t.ext_user) as our_uuid_sub,
       c->'amr'->0->>'method' as amr, c->'amr'->0->>'provider' as provider, c->>'user_role' as user_role
from t.ext, identity.authenticate(token) c;
select identity.uid() = (select id from t.ext_user) as uid_is_ours;
commit;
reset role;
select issuer, subject, user_id = (select id from t.ext_user) as linked from identity.identities;
set role service_role;
-- The exchange gives our JWT, which verify_jwt accepts; an unlinked subject
-- is refused (28000).
select identity.verify_jwt(identity.exchange_external_token(token))->'amr'->0->>'provider' as exchanged from t.ext;
-- Suspension takes effect at once for the issuer's tokens too.
select identity.suspend_user((select id from t.ext_user));
select identity.authenticate(token) is null as suspended_refused from t.ext;
select identity.reactivate_user((select id from t.ext_user));
-- After reactivation, tokens issued before the suspension stay refused.
select t.state(format('select identity.exchange_external_token(%L)', token)) as issued_before_suspension from t.ext;
select t.state(format('select identity.exchange_external_token(%L)', other)) as not_linked from t.ext;
-- Management is system only.
reset role;
set role authenticated;
select t.state($$select identity.register_issuer('https://x.example', '{"keys": []}')$$) as user_registers;
select t.state($$select identity.list_issuers()$$) as user_lists;
reset role;
select identity.grant_access('anon', 'webhook')
 where not pg_catalog.has_function_privilege('anon', 'identity.handle_webhook(text, jsonb, text)', 'execute');
-- The webhook level may call handle_webhook and nothing else of section 11;
-- an issuer without a webhook secret answers as a bad signature.
set role anon;
select t.state($$select identity.handle_webhook('https://idp.example', '{}', '{}')$$) as no_secret;
select t.state($$select identity.list_issuers()$$) as anon_lists;
reset role;
-- Bad arguments are 22023 and write nothing.
set role service_role;
select t.state($$select identity.register_issuer('has space', '{"keys": []}')$$) as bad_issuer;
select t.state($$select identity.register_issuer('https://y.example', '{"keys": [{"kty": "oct", "k": "AAAA"}]}')$$) as symmetric;
select t.state($$select identity.register_issuer('https://y.example', null)$$) as no_jwks;
select t.state($$select identity.set_issuer_jwks('https://nope.example', '{"keys": []}')$$) as bad_set;
select t.state($$select identity.remove_issuer('https://nope.example')$$) as unknown_removed;
select count(*) as issuers from identity.list_issuers();
reset role;
select action, target_id from identity.audit_log where target_type = 'issuer' order by id;
