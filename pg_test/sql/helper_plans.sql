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

-- Every other place a helper may stand plans and answers (no error): a
-- function in FROM, VALUES, a CTE, a set operation, LATERAL, GROUP BY and
-- ORDER BY, an aggregate's FILTER, a window, CASE, INSERT ... VALUES and
-- RETURNING, ON CONFLICT DO UPDATE, UPDATE and DELETE quals, MERGE, a
-- plpgsql assignment and IF, a correlated subquery, a cursor.
select set_config('request.jwt.claims', t.claims_a(), false) is not null as as_a;
select u from unnest(array[identity.uid(), identity.org_id()]) u order by 1;
select * from (values (identity.uid()), (identity.org_id())) v(x) order by 1;
with mine as (select id from t.items where owner = identity.uid())
select count(*) as cte from mine;
select count(*) as set_op from (select id from t.items where owner = identity.uid()
                                union all select id from t.items where identity.has_scope('items:read') and id < 10) s;
select count(*) as lateral_join from generate_series(1, 3) g,
       lateral (select id from t.items where owner = identity.uid() and id % 10 = g) x;
select needs = identity.user_role() as own_role, count(*) from t.items group by 1 order by 1;
select id from t.items where owner = identity.uid() order by identity.claim('user_role'), id limit 2;
select count(*) filter (where owner = identity.uid()) as filtered,
       max(id) filter (where identity.is_admin()) as admin_max from t.items;
select id, count(*) over (partition by owner = identity.uid()) as win from t.items order by id limit 2;
select count(case when owner = identity.uid() then 1 end) as in_case from t.items;
create table t.plan_notes (id int primary key, author uuid default identity.uid(), body text);
insert into t.plan_notes values (1, identity.uid(), 'one') returning author = identity.uid() as returned_mine;
insert into t.plan_notes (id, body) values (2, 'two');
insert into t.plan_notes values (1, null, 'again') on conflict (id) do update set author = identity.org_id(), body = identity.claim('user_role')
  returning id, author = identity.org_id() as conflict_updated, body;
update t.plan_notes set body = 'mine' where author = identity.uid() returning id;
delete from t.plan_notes where author = identity.org_id() returning id;
merge into t.plan_notes n using (select 3 as id) s on n.id = s.id
  when not matched and identity.is_admin() then insert values (s.id, identity.uid(), 'merged');
select id, author = identity.uid() as mine, body from t.plan_notes order by id;
do $$
declare v uuid; n int;
begin
  v := identity.uid();
  if identity.is_admin() and v = '00000000-0000-0000-0000-00000000d101' then
    select count(*) into n from t.items where owner = identity.uid();
    raise notice 'plpgsql: % rows', n;
  end if;
end $$;
select count(*) as correlated from t.items i
  where exists (select 1 from t.plan_notes n where n.id = i.id and n.author = identity.uid());
begin;
declare c cursor for select count(*) from t.items where owner = identity.uid();
fetch c;
close c;
commit;
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
