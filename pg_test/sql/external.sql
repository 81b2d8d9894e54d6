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
         '{"audience": "authenticated", "match_external_id": true}')->>'key_count' as keys
from t.ext;
-- Provisioning is off: an unknown subject is refused (a warning, NULL).
select identity.authenticate(token) is null as refused from t.ext;
-- A user whose external_id is the subject (provision_user's, of no issuer)
-- is linked on the first sign-in, as match_external_id asks.
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
select t.state($$select identity.register_issuer('https://y.example', '{"keys": [{"kty": "oct", "k": "AAAA"}]}', '{"audience": "a"}')$$) as symmetric;
select t.state($$select identity.register_issuer('https://y.example', null, '{"audience": "a"}')$$) as no_jwks;
select t.state($$select identity.set_issuer_jwks('https://nope.example', '{"keys": []}')$$) as bad_set;
select t.state($$select identity.remove_issuer('https://nope.example')$$) as unknown_removed;
select count(*) as issuers from identity.list_issuers();
reset role;
select action, target_id from identity.audit_log where target_type = 'issuer' order by id;
-- One issuer never reaches another's users or organizations (issue 30,
-- item 3). Issuer A provisions and links its users; issuer B, registered
-- with the most permissive options (provisioning auto, match_external_id,
-- an organization claim, a webhook secret), signs A's subjects, A's
-- organization id and webhooks about A's users. Users of A stay A's: every
-- link is scoped to its issuer (identities, users.external_issuer,
-- organizations.external_issuer).
create function t.hmac256(msg bytea, key bytea) returns bytea language plpgsql immutable as $$
declare
    k bytea := key;
    ip bytea;
    op bytea;
begin
    if length(k) > 64 then k := sha256(k); end if;
    k := k || decode(repeat('00', 64 - length(k)), 'hex');
    ip := k; op := k;
    for i in 0..63 loop
        ip := set_byte(ip, i, get_byte(k, i) # 54);
        op := set_byte(op, i, get_byte(k, i) # 92);
    end loop;
    return sha256(op || sha256(ip || msg));
end
$$;
-- A Svix delivery of `body` to issuer `iss`, signed with `secret` (whsec_...).
create function t.deliver(iss text, secret text, id text, body text) returns jsonb language sql as $$
    select identity.handle_webhook(iss, jsonb_build_object(
        'svix-id', id, 'svix-timestamp', ts,
        'svix-signature', 'v1,' || encode(t.hmac256(convert_to(id || '.' || ts || '.' || body, 'UTF8'),
                                                     decode(substr(secret, 7), 'base64')), 'base64')), body)
    from (select extract(epoch from now())::bigint::text as ts) n
$$;
create function t.clerk_user(ty text, sub text, email text) returns text language sql as $$
    select jsonb_build_object('type', ty, 'data', jsonb_build_object('id', sub,
        'first_name', 'Mallory', 'primary_email_address_id', 'idn_1',
        'email_addresses', jsonb_build_array(jsonb_build_object('id', 'idn_1', 'email_address', email,
                                                                'verification', jsonb_build_object('status', 'verified')))))::text
$$;
-- A token of `iss` (signed by the test's key, registered as both issuers').
create function t.ext_token(iss text, sub text, email text, org text default null) returns text language sql as $$
    select identity.sign_jwt(jsonb_build_object('iss', iss, 'sub', sub, 'email', email,
                                                'email_verified', true, 'o', jsonb_build_object('id', org)))
$$;
create table t.ids (who text primary key, id uuid);
grant all on t.ids to public;
grant execute on all functions in schema t to public;
set role service_role;
select identity.register_issuer(iss,
         jsonb_build_object('keys', jsonb_path_query_array(identity.jwks(), '$.keys[*] ? (@.kid == $k)', jsonb_build_object('k', kid))),
         jsonb_build_object('audience', 'authenticated', 'provisioning', 'auto', 'match_external_id', true,
                            'organization_id', 'o.id', 'webhook_secret', secret))->>'issuer' as registered
from t.ext, (values ('https://a.example', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'),
                    ('https://b.example', 'whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJC')) v(iss, secret);
select identity.create_organization('A''s organization') as org_a \gset
-- Clerk's org id, with no issuer yet: no issuer's claim places users there.
select identity.set_organization_external_id(:'org_a', 'org_A');
-- A's users: one A provisions from its token, one provision_user made
-- (linked by A's first sign-in, and from then on A's).
insert into t.ids select 'a1', (identity.authenticate(t.ext_token('https://a.example', 'user_A1', 'a1@example.com', 'org_A'))->>'sub')::uuid;
insert into t.ids select 'p', (identity.provision_user('user_P', 'p@example.com')->'user'->>'id')::uuid;
select (identity.authenticate(t.ext_token('https://a.example', 'user_P', 'p@example.com'))->>'sub')::uuid
       = (select id from t.ids where who = 'p') as a_links_provision_users_user;
-- 1. B's token with A's subject signs in as B's own new user, never as A's
--    (and B's organization claim does not place it in A's organization).
select c->>'sub' is not null as signed_in,
       (c->>'sub')::uuid <> (select id from t.ids where who = 'a1') as not_a1,
       c->>'email' as email, c->>'organization_id' is null as no_org
from identity.authenticate(t.ext_token('https://b.example', 'user_A1', 'b1@evil.example', 'org_A')) c;
select (c->>'sub')::uuid <> (select id from t.ids where who = 'p') as not_p, c->>'email' as email
from identity.authenticate(t.ext_token('https://b.example', 'user_P', 'bp@evil.example')) c;
-- A still signs in as its users.
select (identity.authenticate(t.ext_token('https://a.example', 'user_A1', 'a1@example.com'))->>'sub')::uuid
       = (select id from t.ids where who = 'a1') as a1_is_a1;
-- 2. B's webhooks about A's subjects act on B's identities only: an update
--    does not touch A's user, a delete does not delete it.
select (r->>'user_id')::uuid <> (select id from t.ids where who = 'a1') as not_a1, r->>'status' as status
from t.deliver('https://b.example', 'whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJC', 'msg_b1',
               t.clerk_user('user.updated', 'user_A1', 'mallory@evil.example')) r;
select r->>'status' as status, (r->>'user_id')::uuid <> (select id from t.ids where who = 'a1') as not_a1
from t.deliver('https://b.example', 'whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJC', 'msg_b2',
               t.clerk_user('user.deleted', 'user_A1', 'x@x.example')) r;
select r->>'status' as status, (r->>'user_id')::uuid is distinct from (select id from t.ids where who = 'p') as not_p
from t.deliver('https://b.example', 'whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJC', 'msg_b3',
               t.clerk_user('user.deleted', 'user_P', 'x@x.example')) r;
select who, identity.user_by_id(id)->>'email' as email, identity.user_by_id(id)->>'first_name' as first_name
from t.ids order by who;
-- A's own webhook still acts on A's user.
select r->>'status' as status, (r->>'user_id')::uuid = (select id from t.ids where who = 'a1') as a1
from t.deliver('https://a.example', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_a1',
               t.clerk_user('user.updated', 'user_A1', 'a1-new@example.com')) r;
-- 3. Once the organization's id is named as A's, A's claim places A's new
--    users there; B's claim of the same id still places nobody.
select identity.set_organization_external_id(:'org_a', 'org_A', 'https://a.example');
select (c->>'organization_id')::uuid = :'org_a' as a2_in_org_a
from identity.authenticate(t.ext_token('https://a.example', 'user_A2', 'a2@example.com', 'org_A')) c;
select c->>'organization_id' is null as b2_in_no_org
from identity.authenticate(t.ext_token('https://b.example', 'user_B2', 'b2@evil.example', 'org_A')) c;
select t.state(format($$select identity.set_organization_external_id(%L, 'org_A', 'https://nope.example')$$, :'org_a')) as unregistered_issuer,
       t.state(format($$select identity.set_organization_external_id(%L, null, 'https://a.example')$$, :'org_a')) as issuer_without_id;
reset role;
select u.external_id, u.external_issuer, i.issuer, (select who from t.ids where id = u.id) as who
from identity.users u join identity.identities i on i.user_id = u.id
where i.issuer in ('https://a.example', 'https://b.example') order by u.email, i.issuer;
select issuer, subject, user_id is null as tombstone from identity.identities
where issuer = 'https://b.example' and user_id is null order by subject;
-- A new external_id (system's update_user) is no issuer's, as provision_user's.
set role service_role;
select identity.update_user(id, '{"external_id": "user_A1b"}')->>'external_id' as changed from t.ids where who = 'a1';
reset role;
select external_id, external_issuer from identity.users where id = (select id from t.ids where who = 'a1');
-- An email whose email_verified is not true provisions nobody (issue 30,
-- item 11): false and absent alike.
set role service_role;
select identity.authenticate(identity.sign_jwt(jsonb_build_object('iss', 'https://a.example', 'sub', 'user_A3',
           'email', 'a3@example.com', 'email_verified', false))) is null as unverified_refused;
select identity.authenticate(identity.sign_jwt(jsonb_build_object('iss', 'https://a.example', 'sub', 'user_A3',
           'email', 'a3@example.com'))) is null as unstated_refused;
-- An issuer names the audience its tokens are for (aud or azp), or opts out
-- explicitly: else every token its provider issues, for any application,
-- would sign in here.
select t.state(format($$select identity.register_issuer('https://c.example', %L, '{}')$$, identity.jwks())) as no_audience,
       t.state(format($$select identity.register_issuer('https://c.example', %L, '{"provisioning": "auto"}')$$, identity.jwks())) as still_none,
       t.state(format($$select identity.register_issuer('https://c.example', %L, '{"any_audience": true, "audience": "x"}')$$, identity.jwks())) as contradictory,
       t.state(format($$select identity.register_issuer('https://c.example', %L, '{"any_audience": true}')$$, identity.jwks())) as opted_out;
reset role;
