\i pg_test/fixtures.sql
-- Opaque API tokens (API.md 4). Tokens are random: the file prints shapes
-- and verdicts, never a token.
insert into identity.organizations (id, name) values ('00000000-0000-0000-0000-0000000000f0', 'Token Org');
insert into identity.users (id, email, organization_id, user_role, is_service_user, application_id) values
  ('00000000-0000-0000-0000-0000000000f1', 'svc@tokens.test', '00000000-0000-0000-0000-0000000000f0', 'user', true,
   '00000000-0000-0000-0000-0000000000fa'),
  ('00000000-0000-0000-0000-0000000000f2', 'other@tokens.test', null, 'admin', false, null);
create table t.api (name text primary key, token_id uuid, token text, expires_at timestamptz);
grant all on t.api to public;

set role service_role;
insert into t.api select 'main', * from identity.create_api_token('00000000-0000-0000-0000-0000000000f1', 'ci deploy',
                                                                  scopes => array['credentials:read', 'agents.run']);
insert into t.api select 'forever', * from identity.create_api_token('00000000-0000-0000-0000-0000000000f2', 'no expiry', null);
insert into t.api select 'short', * from identity.create_api_token('00000000-0000-0000-0000-0000000000f2', 'short', '1 second');
-- The documented format: prefix, 30 base62, 6 base62 checksum; default expiry 90 days.
select name, token ~ '^idt_[0-9A-Za-z]{36}$' as shape, length(token) as len,
       round(extract(epoch from expires_at - now()) / 86400) as days
from t.api order by name;
-- Listing shows no secret.
select l->>'name' as name, l->>'display_prefix' = left(a.token, 8) as prefix_ok, l->>'last4' = right(a.token, 4) as last4_ok,
       l->'scopes' as scopes, l ? 'token_hash' as has_hash
from identity.list_api_tokens('00000000-0000-0000-0000-0000000000f1') l join t.api a on a.token_id = (l->>'token_id')::uuid;
reset role;
-- Only the SHA-256 is stored: the plaintext is in no column of any identity table.
select count(*) as tokens_in_clear
from t.api a, (select to_jsonb(x)::text as r from identity.api_tokens x
               union all select to_jsonb(x)::text from identity.audit_log x) rows
where position(a.token in rows.r) > 0;
select count(*) as hashes_match from t.api a join identity.api_tokens k on k.token_hash = sha256(convert_to(a.token, 'utf8'));

-- Verification as an end user's role: the principal.
set role authenticated;
select p - 'token_id' - 'expires_at' as principal, (p->>'token_id')::uuid = a.token_id as token_id_ok
from t.api a, lateral identity.verify_api_token(a.token) p where a.name = 'main';
select identity.verify_api_token(null) is null as null_in_null_out;
-- Typos are refused by the checksum, before any lookup; unknown tokens after.
select t.err(format('select identity.verify_api_token(%L)', left(token, 10) || case when substr(token, 11, 1) = 'A' then 'B' else 'A' end || substr(token, 12)))
       as typo from t.api where name = 'main';
select t.err($$select identity.verify_api_token('idt_000000000000000000000000000000000000')$$) as bad_checksum;
select t.err($$select identity.verify_api_token('')$$) as empty;
select t.err($$select identity.verify_api_token(repeat('x', 1048576))$$) as one_megabyte;
select t.err($$select identity.verify_api_token('sk_live_abc')$$) as other_prefix;
reset role;
-- An unknown token with a valid checksum (made with a throwaway user, then deleted).
insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000000f9', 'gone@tokens.test');
insert into t.api select 'gone', * from identity.create_api_token('00000000-0000-0000-0000-0000000000f9', 'gone');
delete from identity.users where id = '00000000-0000-0000-0000-0000000000f9';
select t.err(format('select identity.verify_api_token(%L)', token)) as deleted_user from t.api where name = 'gone';

-- Works in a read-only transaction, and then writes nothing.
begin transaction read only;
select (identity.verify_api_token(token))->>'user_role' as role_read_only from t.api where name = 'forever';
commit;
select last_used_at is null as untouched_by_read_only from identity.api_tokens k join t.api a on a.token_id = k.id where a.name = 'forever';
-- In a writable one, last_used_at is set, and not rewritten within a minute.
select (identity.verify_api_token(token)) is not null as ok from t.api where name = 'forever';
create temp table seen as select last_used_at from identity.api_tokens k join t.api a on a.token_id = k.id where a.name = 'forever';
select (identity.verify_api_token(token)) is not null as ok from t.api where name = 'forever';
select k.last_used_at is not null and k.last_used_at = s.last_used_at as written_once
from identity.api_tokens k join t.api a on a.token_id = k.id, seen s where a.name = 'forever';

-- Expiry, revocation, suspension: effective on the next call.
select pg_sleep(1.1);
select t.err(format('select identity.verify_api_token(%L)', token)) as expired from t.api where name = 'short';
set role service_role;
select identity.revoke_api_token(token_id) from t.api where name = 'forever';
select identity.revoke_api_token(token_id) from t.api where name = 'forever';  -- idempotent
select t.err($$select identity.revoke_api_token('00000000-0000-0000-0000-000000000000')$$) as unknown_id;
reset role;
select t.err(format('select identity.verify_api_token(%L)', token)) as revoked from t.api where name = 'forever';
update identity.users set status = 'suspended' where id = '00000000-0000-0000-0000-0000000000f1';
select t.err(format('select identity.verify_api_token(%L)', token)) as suspended from t.api where name = 'main';
update identity.users set status = 'active' where id = '00000000-0000-0000-0000-0000000000f1';

-- Exchange: a short-lived access JWT that verify_jwt accepts, as the hook builds claims.
set role authenticated;
select c->>'sub' as sub, c->>'role' as role, c->'is_service_user' as is_service_user, c->>'user_role' as user_role,
       c->>'organization_id' as org, c->>'application_id' as app, c->'scopes' as scopes,
       c->'amr'->0->>'method' as amr, (c->>'exp')::bigint - (c->>'iat')::bigint as lifetime, c->>'email' as email
from t.api a, lateral identity.verify_jwt(identity.exchange_api_token(a.token)) c where a.name = 'main';
select (c->>'exp')::bigint - (c->>'iat')::bigint as lifetime
from t.api a, lateral identity.verify_jwt(identity.exchange_api_token(a.token, '5 minutes')) c where a.name = 'main';
select t.err(format('select identity.exchange_api_token(%L)', token)) as exchange_revoked from t.api where name = 'forever';
select t.err(format('select identity.exchange_api_token(%L, %L)', token, '2 days')) as ttl_too_long from t.api where name = 'main';
-- Without claims a user-level role manages nothing (no user to act for).
select t.err($$select identity.create_api_token('00000000-0000-0000-0000-0000000000f1', 'x')$$);
select t.err($$select identity.list_api_tokens()$$);
-- Self-service: signed in as f2, its own tokens (list with NULL: its own);
-- f1, a user of an organization f2 does not administer, does not exist for
-- it (as a random id), nor do f1's tokens; no token without expiry.
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-0000000000f2", "role": "authenticated"}', false) is not null as signed_in;
insert into t.api select 'own', * from identity.create_api_token('00000000-0000-0000-0000-0000000000f2', 'mine', '30 days', array['users:read']);
select name, expires_at between now() + interval '29 days' and now() + interval '31 days' as thirty_days from t.api where name = 'own';
select array_agg(l->>'name' order by l->>'name') as own_list, bool_and(l->>'user_id' = '00000000-0000-0000-0000-0000000000f2') as all_mine
from identity.list_api_tokens() l;
select t.err($$select identity.create_api_token('00000000-0000-0000-0000-0000000000f2', 'x', null)$$) as no_expiry;
select t.err($$select identity.create_api_token('00000000-0000-0000-0000-0000000000f1', 'x')$$) as other_user;
select t.err($$select identity.create_api_token('00000000-0000-0000-0000-0000000000ee', 'x')$$) as random_user;
select t.err($$select identity.list_api_tokens('00000000-0000-0000-0000-0000000000f1')$$) as other_list;
select t.err(format('select identity.revoke_api_token(%L)', token_id)) as other_token from t.api where name = 'main';
select t.err($$select identity.revoke_api_token('00000000-0000-0000-0000-000000000000')$$) as random_token;
select identity.revoke_api_token(token_id) from t.api where name = 'own';
select set_config('request.jwt.claims', '', false) = '' as signed_out;
reset role;
-- Audited with the user as the actor.
select (select revoked_at is not null from identity.api_tokens where id = a.token_id) as own_revoked from t.api a where name = 'own';
select actor_kind, action, actor_id from identity.audit_log where target_id = (select token_id::text from t.api where name = 'own') order by id;


-- Rotation: the new token works; with grace the old one too, until the grace ends.
set role service_role;
insert into t.api select 'rotated', * from identity.rotate_api_token((select token_id from t.api where name = 'main'), '1 hour');
reset role;
select name, (identity.verify_api_token(token)) is not null as works from t.api where name in ('main', 'rotated') order by name;
select k.rotated_from = m.token_id as linked, k.name, k.scopes
from identity.api_tokens k join t.api r on r.token_id = k.id and r.name = 'rotated', t.api m where m.name = 'main';
set role service_role;
insert into t.api select 'rotated_now', * from identity.rotate_api_token((select token_id from t.api where name = 'rotated'));
reset role;
select t.err(format('select identity.verify_api_token(%L)', token)) as old_after_rotation from t.api where name = 'rotated';
select t.err($$select identity.rotate_api_token('00000000-0000-0000-0000-000000000000')$$) as unknown;

-- Bad arguments: clear errors, nothing written.
select count(*) as before from identity.api_tokens \gset
select t.err($$select identity.create_api_token(null, 'x')$$);
select t.err($$select identity.create_api_token('00000000-0000-0000-0000-0000000000f1', '')$$);
select t.err($$select identity.create_api_token('00000000-0000-0000-0000-0000000000f1', 'x', '-1 day')$$);
select t.err($$select identity.create_api_token('00000000-0000-0000-0000-0000000000f1', 'x', scopes => array['Bad Scope'])$$);
select t.err($$select identity.create_api_token('00000000-0000-0000-0000-0000000000f1', 'x', scopes => array[null]::text[])$$);
select t.err($$select identity.create_api_token('00000000-0000-0000-0000-0000000000ee', 'x')$$);
select count(*) = :before as nothing_written from identity.api_tokens;
-- Audit rows for every mutation, none holding a token.
select action, count(*) from identity.audit_log where target_type = 'api_token' and action <> 'api_token.refused'
group by action order by action;
-- Refused attempts are recorded outside the caller's transaction (by the
-- background writer), with the operation and the SQLSTATE.
select t.wait_until($$select exists (select from identity.audit_log where action = 'api_token.refused')$$) as refusals_recorded;

-- issue_access_token: the hook's claims plus Supabase's standard ones, signed.
set role service_role;
select c->>'sub' as sub, c->>'role' as role, c->>'user_role' as user_role, c->'is_service_user' as is_service_user,
       c->>'organization_id' as org, c->>'application_id' as app, c->'amr'->0->>'method' as amr,
       (c->>'exp')::bigint - (c->>'iat')::bigint as lifetime
from identity.verify_jwt(identity.issue_access_token('00000000-0000-0000-0000-0000000000f1', '10 minutes')) c;
select t.err($$select identity.issue_access_token('00000000-0000-0000-0000-0000000000ee')$$) as unknown_user;
select t.err($$select identity.issue_access_token(null)$$) as null_user;
select t.err($$select identity.issue_access_token('00000000-0000-0000-0000-0000000000f1', '2 days')$$) as ttl_too_long;
reset role;
-- The hook and issue_access_token agree on the claims the extension owns.
select (h->'claims') @> (c - 'aud' - 'sub' - 'role' - 'email' - 'phone' - 'aal' - 'amr' - 'session_id' - 'is_anonymous'
                           - 'exp' - 'iat' - 'jti') as hook_agrees
from identity.verify_jwt(identity.issue_access_token('00000000-0000-0000-0000-0000000000f1')) c,
     identity.custom_access_token_hook(jsonb_build_object('user_id', '00000000-0000-0000-0000-0000000000f1',
       'claims', jsonb_build_object('aud', 'authenticated', 'exp', 2000000000, 'iat', 1999996400,
         'sub', '00000000-0000-0000-0000-0000000000f1', 'email', 'svc@tokens.test', 'phone', '', 'role', 'authenticated',
         'aal', 'aal1', 'session_id', '00000000-0000-0000-0000-000000000001', 'is_anonymous', false))) h;
update identity.users set status = 'disabled' where id = '00000000-0000-0000-0000-0000000000f2';
select t.err($$select identity.issue_access_token('00000000-0000-0000-0000-0000000000f2')$$) as disabled_user;

-- verify_api_token runs with the caller's rights; its one write (last_used_at)
-- runs as the table owner. A role with no table privileges still records use.
update identity.api_tokens set last_used_at = null where id = (select token_id from t.api where name = 'rotated_now');
set role authenticated;
select identity.verify_api_token(token) is not null as ok from t.api where name = 'rotated_now';
reset role;
select last_used_at is not null as recorded from identity.api_tokens where id = (select token_id from t.api where name = 'rotated_now');
-- A hostile `=` for uuid and `<` for timestamptz first on the caller's search_path are not used.
create schema evil;
create function evil.always_true(uuid, uuid) returns boolean language sql as 'select true';
create function evil.loud_lt(timestamptz, timestamptz) returns boolean language plpgsql as
  $$ begin raise exception 'hijacked'; end $$;
create operator evil.= (leftarg = uuid, rightarg = uuid, function = evil.always_true);
create operator evil.< (leftarg = timestamptz, rightarg = timestamptz, function = evil.loud_lt);
grant usage on schema evil to public;
update identity.api_tokens set last_used_at = null;
-- A backend remembers the tokens it verified, and its own last_used_at write
-- for a minute (a change of last_used_at alone tells no backend): a new
-- connection sees the NULL and writes.
\c
set role authenticated;
set search_path = evil, pg_catalog, public;
select identity.verify_api_token(token) ->> 'token_id' = token_id::text as right_token from t.api where name = 'rotated_now';
reset search_path;
reset role;
select count(*) filter (where last_used_at is not null) as touched, count(*) as tokens from identity.api_tokens;
-- The per-backend copies of token rows and users' rows (src/store/cache.rs)
-- are dropped by statement triggers: on api_tokens for every column but
-- last_used_at (a column added to the table must be added to the trigger),
-- on users for every column the copies hold (src/store/tables.rs USERS).
select array(select a.attname::text from pg_attribute a
             where a.attrelid = 'identity.api_tokens'::regclass and a.attnum > 0 and not a.attisdropped
               and a.attname <> 'last_used_at' order by a.attnum)
     = array(select a.attname::text from pg_trigger t, unnest(t.tgattr::int2[]) n, pg_attribute a
             where t.tgrelid = 'identity.api_tokens'::regclass and t.tgname = 'cached_table_changed'
               and a.attrelid = t.tgrelid and a.attnum = n order by a.attnum) as api_tokens_every_column_but_last_used_at;
select array(select a.attname::text from pg_trigger t, unnest(t.tgattr::int2[]) n, pg_attribute a
             where t.tgrelid = 'identity.users'::regclass and t.tgname = 'cached_table_changed'
               and a.attrelid = t.tgrelid and a.attnum = n order by a.attname)
     @> array['application_id', 'email', 'id', 'is_service_user', 'organization_id', 'status', 'tokens_valid_after', 'user_role']
     as users_trigger_covers_the_copies;
-- The revocation filters' row triggers fire always (replica role too).
select c.relname, t.tgname, t.tgenabled from pg_trigger t join pg_class c on c.oid = t.tgrelid
where t.tgname = 'revocation_filter' order by 1;
