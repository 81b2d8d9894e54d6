-- 100,000 users (every 10th a service user, every 50th suspended) and the
-- PL/pgSQL baseline hook: the same lookup and claim edits in the style of
-- Supabase's RBAC example.
create extension identity;
insert into identity.organizations (id, name) values ('00000000-0000-0000-0000-0000000000a1', 'Bench');
insert into identity.users (id, email, organization_id, user_role, is_service_user, application_id, status)
select ('00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid, 'u' || i || '@bench.test',
       '00000000-0000-0000-0000-0000000000a1', case when i % 7 = 0 then 'admin' else 'user' end,
       i % 10 = 0, case when i % 10 = 0 then gen_random_uuid() end,
       case when i % 50 = 0 then 'suspended' else 'active' end
from generate_series(1, 100000) i;
-- As autovacuum leaves a table after a bulk load: its visibility map set,
-- so a backend loads the refusable users by an index-only scan.
vacuum (analyze) identity.users;

create schema bench;
create function bench.event(i int) returns jsonb language sql immutable as $$
  select jsonb_build_object(
    'metadata', jsonb_build_object('uuid', '1d0f3e5a-6b7c-4d8e-9f00-112233445566', 'time', '2026-11-21T12:00:00Z',
                                   'name', 'customize-access-token', 'ip_address', '127.0.0.1'),
    'user_id', '00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'),
    'authentication_method', 'password',
    'claims', jsonb_build_object(
      'iss', 'https://project.supabase.co/auth/v1', 'aud', 'authenticated', 'exp', 2000000000, 'iat', 1999996400,
      'sub', '00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'), 'email', 'u' || i || '@bench.test',
      'phone', '', 'role', 'authenticated', 'aal', 'aal1',
      'amr', jsonb_build_array(jsonb_build_object('method', 'password', 'timestamp', 1999996400)),
      'session_id', '4b938a09-5372-4177-a314-cfa292099ea2', 'is_anonymous', false,
      'app_metadata', jsonb_build_object('provider', 'email', 'providers', jsonb_build_array('email')),
      'user_metadata', jsonb_build_object('email_verified', true)))
$$;
create table bench.events as
  select i as id, bench.event(i) as ev, bench.event(i)::text as ev_text from generate_series(1, 100000) i;
alter table bench.events add primary key (id);
analyze bench.events;

create function bench.plpgsql_hook(event jsonb) returns jsonb language plpgsql stable as $$
declare
  claims jsonb;
  u record;
begin
  select is_service_user, user_role, organization_id, application_id, status into u
  from identity.users where id = (event->>'user_id')::uuid;
  claims := event->'claims';
  if found and u.status <> 'active' then
    return jsonb_build_object('error', jsonb_build_object('http_code', 403, 'message', 'user is ' || u.status));
  end if;
  claims := jsonb_set(claims, '{is_service_user}', to_jsonb(coalesce(u.is_service_user, false)));
  claims := jsonb_set(claims, '{user_role}', to_jsonb(coalesce(u.user_role, 'user')));
  claims := jsonb_set(claims, '{organization_id}', coalesce(to_jsonb(u.organization_id), 'null'));
  if u.is_service_user then
    claims := jsonb_set(claims, '{application_id}', coalesce(to_jsonb(u.application_id), 'null'));
  end if;
  return jsonb_build_object('claims', claims);
end
$$;
-- Both hooks must agree (modulo our extra checks) before they are timed.
do $$
declare d int;
begin
  select count(*) into d from bench.events e
  where identity.custom_access_token_hook(e.ev) <> bench.plpgsql_hook(e.ev) and e.id <= 2000;
  if d > 0 then raise exception 'hooks disagree on % of 2000 events', d; end if;
end $$;
