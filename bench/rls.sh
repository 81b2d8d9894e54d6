#!/usr/bin/env bash
# RLS helper cost per row (issues: RLS helpers; 19). One cluster, one run:
# count(*) over 1,000,000 rows with the predicate written unwrapped, as a
# policy would, against the same query comparing to a constant (or without
# the helper); minimum of interleaved rounds; parallelism off so every row
# is evaluated here. The helpers' planner support function (src/pg/planner.rs)
# plans an unwrapped call as an InitPlan; the rows "support off" measure the
# same calls with it detached (per-row calls, as before issue 19).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
cluster_start bench_rls "${IDENTITY_BENCH_PORT:-28825}"
trap cluster_stop EXIT
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
create extension identity;
create schema bench;
create table bench.rows as
  select case when i % 100 = 0 then '00000000-0000-0000-0000-00000000000a'::uuid else gen_random_uuid() end as user_id,
         case when i % 10 = 0 then '00000000-0000-0000-0000-0000000000b0'::uuid else gen_random_uuid() end as org_id,
         i % 7 = 0 as is_service,
         case when i % 5 = 0 then 'admin' else 'user' end as role_name
  from generate_series(1, 1000000) i;
vacuum analyze bench.rows;
-- Supabase's auth.uid() style: an SQL function reading the setting per call.
create function bench.sql_uid() returns uuid language sql stable as
  $$ select nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '')::uuid $$;
-- The same helpers with the support function detached, in another schema.
create schema nosupport;
create function nosupport.uid() returns uuid stable parallel safe language c as '$libdir/identity', 'identity_uid';
create function nosupport.user_role() returns text stable parallel safe language c as '$libdir/identity', 'user_role_wrapper';
SQL
CLAIMS='{"sub": "00000000-0000-0000-0000-00000000000a", "organization_id": "00000000-0000-0000-0000-0000000000b0", "is_service_user": true, "user_role": "admin", "scopes": ["users:read"]}'
. bench/lib.sh
PREAMBLE="set max_parallel_workers_per_gather = 0;
select set_config('request.jwt.claims', '$CLAIMS', false) \\g /dev/null"
queries=(
  "select count(*) from bench.rows where user_id = '00000000-0000-0000-0000-00000000000a'::uuid"
  "select count(*) from bench.rows where user_id = identity.uid()"
  "select count(*) from bench.rows where user_id = bench.sql_uid()"
  "select count(*) from bench.rows where user_id = (current_setting('request.jwt.claims')::jsonb ->> 'sub')::uuid"
  "select count(*) from bench.rows where org_id = '00000000-0000-0000-0000-0000000000b0'::uuid"
  "select count(*) from bench.rows where org_id = identity.org_id()"
  "select count(*) from bench.rows where is_service = true"
  "select count(*) from bench.rows where is_service = identity.is_service_user()"
  "select count(*) from bench.rows where role_name = 'admin'"
  "select count(*) from bench.rows where role_name = identity.user_role()"
  "select count(*) from bench.rows where role_name = identity.claim('user_role')"
  "select count(*) from bench.rows where is_service"
  "select count(*) from bench.rows where is_service and identity.is_admin()"
  "select count(*) from bench.rows where is_service and identity.has_role('admin')"
  "select count(*) from bench.rows where is_service and identity.has_scope('users:read')"
  "select count(*) from bench.rows where user_id = (select identity.uid())"
  "select count(*) from bench.rows where user_id = nosupport.uid()"
  "select count(*) from bench.rows where role_name = nosupport.user_role()"
)
ROUNDS=${BENCH_ROUNDS:-5}
out=""
for _ in $(seq "$ROUNDS"); do
    for q in "${queries[@]}"; do out="$out $(exec_ms "$q" "$PREAMBLE")"; done
done
echo "== RLS helpers, count(*) over 1,000,000 rows, predicate unwrapped (min of $ROUNDS interleaved rounds)"
python3 - "${#queries[@]}" $out <<'PY'
import sys
k = int(sys.argv[1]); t = list(map(float, sys.argv[2:]))
m = [min(t[i::k]) for i in range(k)]
row = lambda name, ms, base, target="": print(f"{name:58s} {ms:8.1f} ms  {ms / base:5.2f}x {target}")
row("user_id = constant (baseline)", m[0], m[0])
row("user_id = identity.uid()", m[1], m[0], "(target <= 1.1x)")
row("user_id = SQL helper (Supabase auth.uid() style)", m[2], m[0])
row("user_id = (current_setting(...)::jsonb->>'sub')::uuid", m[3], m[0])
row("org_id = constant (baseline)", m[4], m[4])
row("org_id = identity.org_id()", m[5], m[4], "(target <= 1.1x)")
row("is_service = true (baseline)", m[6], m[6])
row("is_service = identity.is_service_user()", m[7], m[6], "(target <= 1.1x)")
row("role_name = 'admin' (baseline)", m[8], m[8])
row("role_name = identity.user_role()", m[9], m[8], "(target <= 1.2x)")
row("role_name = identity.claim('user_role')", m[10], m[8], "(target <= 1.2x)")
row("is_service (baseline: the query without the helper)", m[11], m[11])
row("is_service and identity.is_admin()", m[12], m[11], "(target <= 1.2x)")
row("is_service and identity.has_role('admin')", m[13], m[11], "(target <= 1.2x)")
row("is_service and identity.has_scope('users:read')", m[14], m[11], "(target <= 1.2x)")
row("user_id = (select identity.uid()) (wrapped by hand)", m[15], m[0])
row("user_id = uid() with the support function detached", m[16], m[0])
row("role_name = user_role() with the support function detached", m[17], m[8])
PY
