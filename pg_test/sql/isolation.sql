\i pg_test/fixtures.sql
-- Isolation matrix: two organizations, each with an admin, a user and a
-- service user. For every actor and every table a user-level role can read:
-- what is visible (counts), and every write refused. Rows of other test files
-- belong to other organizations and must stay invisible too.
select identity.grant_access('authenticated', 'user');
insert into identity.organizations (id, name) values
  ('00000000-0000-0000-0000-0000000aa001', 'Org A'), ('00000000-0000-0000-0000-0000000bb001', 'Org B');
insert into identity.users (id, email, organization_id, user_role, is_service_user) values
  ('00000000-0000-0000-0000-00000000a001', 'admin@a.test', '00000000-0000-0000-0000-0000000aa001', 'admin', false),
  ('00000000-0000-0000-0000-00000000a002', 'user@a.test',  '00000000-0000-0000-0000-0000000aa001', 'user', false),
  ('00000000-0000-0000-0000-00000000a003', 'svc@a.test',   '00000000-0000-0000-0000-0000000aa001', 'user', true),
  ('00000000-0000-0000-0000-00000000b001', 'admin@b.test', '00000000-0000-0000-0000-0000000bb001', 'admin', false),
  ('00000000-0000-0000-0000-00000000b002', 'user@b.test',  '00000000-0000-0000-0000-0000000bb001', 'user', false);
select count(*) as tokens from (select identity.create_api_token(u.id, 'iso') from identity.users u
  where u.email like '%@a.test' or u.email like '%@b.test') t;
insert into identity.credentials (id, user_id, organization_id, provider, name, ciphertext, last4)
select ('00000000-0000-0000-0000-0000000c' || right(u.id::text, 4))::uuid, u.id, u.organization_id, 'openrouter', 'main', '\x00', 'abcd'
from identity.users u where u.email like '%@a.test' or u.email like '%@b.test';
insert into identity.credential_usage (credential_id, user_id, amount) select id, user_id, 1 from identity.credentials
  where user_id in (select id from identity.users where email like '%@a.test' or email like '%@b.test');
insert into identity.subscriptions (user_id) select id from identity.users where email like '%@a.test' or email like '%@b.test';
insert into identity.feature_flags (key, enabled) values ('iso.flag', true);
insert into identity.feature_flag_overrides (key, user_id, enabled)
  select 'iso.flag', id, false from identity.users where email like '%@a.test' or email like '%@b.test';
insert into identity.audit_log (actor_kind, organization_id, action) values
  ('system', '00000000-0000-0000-0000-0000000aa001', 'iso.a'), ('system', '00000000-0000-0000-0000-0000000bb001', 'iso.b');

create function t.claims(u uuid) returns text language sql as $$
  select jsonb_build_object('sub', id, 'role', 'authenticated', 'organization_id', organization_id,
                            'user_role', user_role, 'is_service_user', is_service_user)::text
  from identity.users where id = u $$;
create function t.visible() returns table (orgs bigint, users bigint, tokens bigint, creds bigint, usage bigint,
                                            subs bigint, flags bigint, overrides bigint, audit bigint)
language sql as $$
  select (select count(*) from identity.organizations), (select count(*) from identity.users),
         (select count(*) from identity.api_tokens), (select count(*) from identity.credentials),
         (select count(*) from identity.credential_usage), (select count(*) from identity.subscriptions),
         (select count(*) from identity.feature_flags), (select count(*) from identity.feature_flag_overrides),
         (select count(*) from identity.audit_log) $$;
grant execute on function t.claims(uuid), t.visible() to authenticated;
create table t.matrix (actor text, orgs bigint, users bigint, tokens bigint, creds bigint, usage bigint,
                       subs bigint, flags bigint, overrides bigint, audit bigint);
grant insert on t.matrix to authenticated;
-- What each actor sees.
do $$
declare a record;
begin
  for a in select * from (values ('admin A', '00000000-0000-0000-0000-00000000a001'), ('user A', '00000000-0000-0000-0000-00000000a002'),
                                 ('service A', '00000000-0000-0000-0000-00000000a003'), ('admin B', '00000000-0000-0000-0000-00000000b001'),
                                 ('user B', '00000000-0000-0000-0000-00000000b002'), ('anon', null)) v(actor, id)
  loop
    perform set_config('request.jwt.claims', coalesce(t.claims(a.id::uuid), '{"role": "anon"}'), true);
    set local role authenticated;
    insert into t.matrix select a.actor, * from t.visible();
    reset role;
  end loop;
end $$;
select * from t.matrix order by actor;

-- Writes: none for any user-level role, on any table (only functions write).
begin;
set local role authenticated;
select set_config('request.jwt.claims', t.claims('00000000-0000-0000-0000-00000000a001'), true) is not null as admin_a;
select t.err($$update identity.users set user_role = 'admin' where email = 'user@b.test'$$) as update_other_org;
select t.err($$update identity.users set user_role = 'system' where email = 'admin@a.test'$$) as update_own;
select t.err($$delete from identity.users where email = 'user@b.test'$$) as delete_other_org;
select t.err($$insert into identity.users (email, organization_id, user_role) values ('x@b.test', '00000000-0000-0000-0000-0000000bb001', 'admin')$$) as insert;
select t.err($$update identity.api_tokens set revoked_at = now()$$) as revoke_directly;
select t.err($$delete from identity.audit_log$$) as delete_audit;
select t.err($$insert into identity.audit_log (actor_kind, action) values ('system', 'forged')$$) as forge_audit;
select t.err($$select ciphertext from identity.credentials$$) as read_ciphertext;
select t.err($$select token_hash from identity.api_tokens$$) as read_token_hash;
select t.err($$select * from identity.signing_keys$$) as read_signing_keys;
select t.err($$select * from identity.events$$) as read_events;
-- A user of org A naming org B's rows by id still sees nothing.
select count(*) as org_b_user_by_id from identity.users where id = '00000000-0000-0000-0000-00000000b002';
select count(*) as org_b_credential_by_id from identity.credentials where id = '00000000-0000-0000-0000-0000000cb002';
rollback;

-- A service user's scoped token sees only what its scopes allow.
create table t.scoped (scopes text, users bigint, creds bigint, usage bigint, subs bigint, tokens bigint);
grant insert on t.scoped to authenticated;
do $$
declare s text;
begin
  foreach s in array array['["credentials:read"]', '["users:read"]', '["credentials:*", "users:*"]', '[]', '"bad shape"'] loop
    perform set_config('request.jwt.claims',
      (t.claims('00000000-0000-0000-0000-00000000a003')::jsonb || jsonb_build_object('scopes', s::jsonb))::text, true);
    set local role authenticated;
    insert into t.scoped select s, (select count(*) from identity.users), (select count(*) from identity.credentials),
      (select count(*) from identity.credential_usage), (select count(*) from identity.subscriptions),
      (select count(*) from identity.api_tokens);
    reset role;
  end loop;
end $$;
select * from t.scoped order by scopes;
