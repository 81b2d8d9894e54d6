\i pg_test/fixtures.sql
-- The RLS helpers' planner support function (src/pg/planner.rs): an
-- unwrapped call is planned as a once-per-execution InitPlan, as
-- (select identity.uid()) is. Each case checks the plan's shape (through
-- EXPLAIN's JSON, which reads the same on every major) and that the answer
-- follows the claims of each execution: prepared statements with generic
-- plans, parallel plans, SQL functions (inlined and not), views, policies
-- as a real role, claims pinned by identity.authenticate, and arguments
-- that vary per row (no InitPlan then).
select identity.grant_access('authenticated', 'user');
insert into identity.organizations (id, name) values ('00000000-0000-0000-0000-0000000000d1', 'Plans Org');
insert into identity.users (id, email, organization_id, user_role) values
  ('00000000-0000-0000-0000-00000000d101', 'plan-a@example.com', '00000000-0000-0000-0000-0000000000d1', 'admin'),
  ('00000000-0000-0000-0000-00000000d102', 'plan-b@example.com', '00000000-0000-0000-0000-0000000000d1', 'user');
create table t.items (id int primary key, owner uuid, org uuid, needs text);
insert into t.items select i,
    case when i % 4 = 0 then '00000000-0000-0000-0000-00000000d101'::uuid else '00000000-0000-0000-0000-00000000d102'::uuid end,
    '00000000-0000-0000-0000-0000000000d1', case when i % 2 = 0 then 'admin' else 'user' end
  from generate_series(1, 20000) i;
analyze t.items;
-- Claims as PostgREST sets them, for user A (admin, 5000 rows) and B (15000).
create function t.claims_a() returns text language sql as
  $$ select '{"sub": "00000000-0000-0000-0000-00000000d101", "role": "authenticated", "organization_id": "00000000-0000-0000-0000-0000000000d1", "user_role": "admin", "scopes": ["items:read"]}' $$;
create function t.claims_b() returns text language sql as
  $$ select '{"sub": "00000000-0000-0000-0000-00000000d102", "role": "authenticated", "organization_id": "00000000-0000-0000-0000-0000000000d1", "user_role": "user"}' $$;
-- Whether a statement's plan has an InitPlan (a subplan of type "InitPlan"),
-- and a Gather.
create function t.plan_of(q text) returns text language plpgsql as $$
declare p text;
begin
  execute 'explain (format json, costs off) ' || q into p;
  return concat_ws(',', case when p like '%"Subplan Name": "InitPlan%' or p like '%"Parent Relationship": "InitPlan"%' then 'initplan' end,
                        case when p like '%"Node Type": "Gather"%' then 'gather' end);
end $$;

-- Unwrapped helpers become InitPlans; a query without a range table and a
-- per-row argument do not.
select set_config('request.jwt.claims', t.claims_a(), false) is not null as as_a;
select t.plan_of($$select count(*) from t.items where owner = identity.uid()$$) as uid,
       t.plan_of($$select count(*) from t.items where org = identity.org_id()$$) as org_id,
       t.plan_of($$select count(*) from t.items where identity.is_service_user() is false$$) as is_service_user,
       t.plan_of($$select count(*) from t.items where needs = identity.user_role()$$) as user_role,
       t.plan_of($$select count(*) from t.items where identity.is_admin()$$) as is_admin,
       t.plan_of($$select count(*) from t.items where identity.has_role('admin')$$) as has_role,
       t.plan_of($$select count(*) from t.items where identity.has_scope('items:read')$$) as has_scope,
       t.plan_of($$select count(*) from t.items where identity.claim('user_role') = needs$$) as claim;
select t.plan_of($$select identity.uid()$$) as no_range_table,
       t.plan_of($$select count(*) from t.items where identity.has_role(needs)$$) as per_row_argument;
select count(*) filter (where identity.has_role(needs)) as per_row_answers from t.items;

-- A prepared statement's generic plan follows the claims of each execution.
set plan_cache_mode = force_generic_plan;
prepare mine as select count(*) from t.items where owner = identity.uid();
prepare admins as select count(*) from t.items where identity.is_admin() and org = identity.org_id();
prepare needs_mine(text) as select count(*) from t.items where needs = $1 and identity.has_role($1);
execute mine;
execute admins;
execute needs_mine('admin');
select set_config('request.jwt.claims', t.claims_b(), false) is not null as as_b;
execute mine;
execute admins;
execute needs_mine('admin');
execute needs_mine('user');
select set_config('request.jwt.claims', '', false) = '' as no_claims;
execute mine;
execute admins;
select set_config('request.jwt.claims', t.claims_a(), false) is not null as as_a_again;
execute mine;
deallocate all;
reset plan_cache_mode;

-- Parallel plans: the leader computes the InitPlan, the workers use it.
set parallel_setup_cost = 0;
set parallel_tuple_cost = 0;
set min_parallel_table_scan_size = 0;
set max_parallel_workers_per_gather = 2;
select t.plan_of($$select count(*) from t.items where owner = identity.uid()$$) as parallel_uid;
select count(*) as parallel_a from t.items where owner = identity.uid();
select set_config('request.jwt.claims', t.claims_b(), false) is not null as as_b;
select count(*) as parallel_b from t.items where owner = identity.uid();
select count(*) as parallel_b_needs from t.items where identity.claim('user_role') = needs;
reset parallel_setup_cost;
reset parallel_tuple_cost;
reset min_parallel_table_scan_size;
reset max_parallel_workers_per_gather;

-- SQL functions, inlined (a single SELECT, STABLE) and not (VOLATILE,
-- two statements), and a view: each call follows the current claims.
create function t.mine_inlined() returns bigint language sql stable as
  $$ select count(*) from t.items where owner = identity.uid() $$;
create function t.mine_planned() returns bigint language sql volatile as
  $$ select 1; select count(*) from t.items where owner = identity.uid() $$;
create view t.my_items as select * from t.items where owner = identity.uid();
select set_config('request.jwt.claims', t.claims_a(), false) is not null as as_a;
select t.mine_inlined() as inlined_a, t.mine_planned() as planned_a, (select count(*) from t.my_items) as view_a;
select t.plan_of($$select count(*) from t.my_items$$) as view_plan;
select set_config('request.jwt.claims', t.claims_b(), false) is not null as as_b;
select t.mine_inlined() as inlined_b, t.mine_planned() as planned_b, (select count(*) from t.my_items) as view_b;
select set_config('request.jwt.claims', '', false) = '' as no_claims;

-- A policy, as a real role, with claims pinned by identity.authenticate:
-- one prepared generic plan, two users in turn in one session.
alter table t.items enable row level security;
create policy own on t.items for select using (owner = identity.uid());
create policy org_admin on t.items for select using (identity.is_admin() and org = identity.org_id());
grant select on t.items to authenticated;
create temp table tokens as
  select identity.issue_access_token('00000000-0000-0000-0000-00000000d101') as a,
         identity.issue_access_token('00000000-0000-0000-0000-00000000d102') as b;
grant select on tokens to authenticated;
set role authenticated;
set plan_cache_mode = force_generic_plan;
prepare visible as select count(*) from t.items;
begin;
select identity.authenticate(a) is not null as signed_in_a from tokens;
execute visible;
commit;
begin;
select identity.authenticate(b) is not null as signed_in_b from tokens;
execute visible;
-- A second pin in the same transaction: the next execution follows it.
select identity.authenticate(a) is not null as signed_in_a_again from tokens;
execute visible;
commit;
-- Nobody signed in: the policies see no one.
execute visible;
deallocate visible;
reset plan_cache_mode;
reset role;
