#!/usr/bin/env bash
# Flat at scale (issue 19): the per-call cost of verify_jwt, verify_api_token,
# the hook and uid() with 1,000 and with 1,000,000 users, API tokens,
# revoked jtis and revoked sessions (one cluster per scale, same machine,
# same run), and what a backend spends on its per-backend copies.
#
# At each scale the tables are filled directly (10% of the users suspended,
# so the copy of the users a check can refuse grows with them), then 1,000
# real users get an API token and two access JWTs each through the
# extension. Per call = a query over those 1,000 inputs minus an empty scan
# of the same table, measured in a backend that already ran the same
# workload once on other inputs (steady state: copies loaded, or found too
# big and probed), minimum of 3 rounds. The clusters of all scales run side
# by side (one port each) and the rounds go through the scales in turn, so
# a drift of the machine's speed during the run falls on every scale alike. The copies hold whole tables under
# 50,000 rows (src/store/cache.rs, MAX_ROWS); above that every check is an
# index probe, so 1,000 rows are copied and 1,000,000 probed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
. bench/lib.sh
SCALES=${BENCH_SCALES:-1000 40000 1000000}
results=$(mktemp)
port_of() { # the cluster of scale N: its port (one per scale, side by side)
    local i=0 s
    for s in $SCALES; do
        [ "$s" = "$1" ] && { echo $((${IDENTITY_BENCH_PORT:-28828} + i)); return; }
        i=$((i + 1))
    done
}
use_scale() { # point psql at the cluster of scale N
    export PGHOST="$CLUSTER_ROOT/bench_scale_$1" PGPORT=$(port_of "$1") PGUSER=postgres PGDATABASE=postgres
}
stop_scales() {
    for s in $SCALES; do cluster_stop_dir "$CLUSTER_ROOT/bench_scale_$s"; done
}
trap stop_scales EXIT
declare -A rows_of times_of
for n in $SCALES; do
    cluster_start "bench_scale_$n" "$(port_of "$n")"
    psql -qX -v ON_ERROR_STOP=1 -v n="$n" >/dev/null <<'SQL'
create extension identity;
create schema bench;
-- Filler: n users (10% suspended), n API tokens, n revoked jtis and sessions.
insert into identity.users (id, email, status)
  select pg_catalog.md5('u' || i)::uuid, 'filler' || i || '@bench.test',
         case when i % 10 = 0 then 'suspended' else 'active' end
  from generate_series(1, :n) i;
insert into identity.api_tokens (user_id, name, token_hash, display_prefix, last4)
  select pg_catalog.md5('u' || (1 + i % :n))::uuid, 'filler', pg_catalog.sha256(('t' || i)::bytea), 'idt_filler', 'abcd'
  from generate_series(1, :n) i;
insert into identity.revoked_jwts (jti, expires_at)
  select 'revoked-' || i, pg_catalog.now() + interval '1 day' from generate_series(1, :n) i;
insert into identity.revoked_sessions (session_id)
  select pg_catalog.md5('s' || i)::uuid from generate_series(1, :n) i;
-- 1,000 real users with a token each and two JWTs (a warm-up set and a
-- measured set), and 1,000 hook events.
create table bench.real as
  select (identity.provision_user('real' || i, 'real' || i || '@bench.test') -> 'user' ->> 'id')::uuid as id
  from generate_series(1, 1000) i;
create table bench.inputs as
  select r.id,
         (select t.token from identity.create_api_token(r.id, 'bench') t) as api,
         identity.issue_access_token(r.id) as jwt_warm,
         identity.issue_access_token(r.id) as jwt,
         pg_catalog.jsonb_build_object('user_id', r.id, 'authentication_method', 'password', 'claims',
           pg_catalog.jsonb_build_object('aud', 'authenticated', 'exp', 2000000000, 'iat', 1700000000,
             'sub', r.id, 'email', 'x@bench.test', 'phone', '', 'role', 'authenticated', 'aal', 'aal1',
             'session_id', pg_catalog.gen_random_uuid(), 'is_anonymous', false)) as event
  from bench.real r;
create table bench.million as select i.id from bench.inputs i, generate_series(1, 1000) g;
create function bench.uid_per_row() returns uuid stable parallel safe language c as '$libdir/identity', 'identity_uid';
vacuum analyze;
SQL
    rows_of[$n]=$(psql -qAtX -c "select (select count(*) from identity.users) || ' users, ' || (select count(*) from identity.api_tokens) || ' API tokens, ' || (select count(*) from identity.revoked_jwts) || ' revoked jtis, ' || (select count(*) from identity.revoked_sessions) || ' revoked sessions'")
done
warm="select count(identity.verify_jwt(jwt_warm)) from bench.inputs \\g /dev/null
select count(identity.verify_api_token(api)) from bench.inputs \\g /dev/null
select count(identity.custom_access_token_hook(event)) from bench.inputs \\g /dev/null
select set_config('request.jwt.claims', '{\"sub\": \"00000000-0000-0000-0000-000000000001\"}', false) \\g /dev/null
set max_parallel_workers_per_gather = 0;"
for _ in 1 2 3; do
    for n in $SCALES; do
        use_scale "$n"
        t=""
        t="$t $(exec_ms "select count(jwt) from bench.inputs" "$warm")"
        t="$t $(exec_ms "select count(identity.verify_jwt(jwt)) from bench.inputs" "$warm")"
        t="$t $(exec_ms "select count(identity.verify_api_token(api)) from bench.inputs" "$warm")"
        t="$t $(exec_ms "select count(identity.custom_access_token_hook(event)) from bench.inputs" "$warm")"
        # uid() per row over 1,000,000 rows, with the support function
        # detached (a call per row), against the same scan comparing to a
        # constant.
        t="$t $(exec_ms "select count(*) from bench.million where id = '00000000-0000-0000-0000-000000000001'::uuid" "$warm")"
        t="$t $(exec_ms "select count(*) from bench.million where id = bench.uid_per_row()" "$warm")"
        times_of[$n]="${times_of[$n]:-} $t"
    done
done
for n in $SCALES; do
    use_scale "$n"
    # Memory: a fresh backend's private memory (RssAnon: not the shared buffers
    # it touched), then after the warm-up.
    mem=$(psql -qAtX <<SQL
select pg_backend_pid() as pid \gset
\setenv BACKEND :pid
\! sed -n 's/^RssAnon:\s*\([0-9]*\).*/\1/p' /proc/\$BACKEND/status
$warm
\! sed -n 's/^RssAnon:\s*\([0-9]*\).*/\1/p' /proc/\$BACKEND/status
SQL
)
    echo "$n|${rows_of[$n]}|${times_of[$n]}|$(echo "$mem" | grep -E '^[0-9]+$' | tr '\n' ' ')" >> "$results"
done
stop_scales
echo "== flat at scale: per call, steady state, min of 3 rounds"
python3 - "$results" <<'PY'
import sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1])]
per = {}
for n, desc, t, mem in rows:
    v = list(map(float, t.split()))
    m = [min(v[i::6]) for i in range(6)]
    base = m[0]
    rss = list(map(int, mem.split()))
    per[n] = {
        "verify_jwt (new token)": (m[1] - base) / 1000 * 1000,
        "verify_api_token": (m[2] - base) / 1000 * 1000,
        "custom_access_token_hook": (m[3] - base) / 1000 * 1000,
        # ms over 1,000,000 rows = ns per row
        "uid() per row, no InitPlan": m[5] - m[4],
        "rss": (rss[1] - rss[0]) if len(rss) == 2 else None,
    }
    print(f"scale {int(n):>9,}: {desc}")
names = ["verify_jwt (new token)", "verify_api_token", "custom_access_token_hook", "uid() per row, no InitPlan"]
scales = list(per)
print(f"{'':28s}" + "".join(f"{int(s):>14,}" for s in scales) + "   largest / smallest")
for k in names:
    vals = [per[s][k] for s in scales]
    unit = "ns" if k.startswith("uid") else "us"
    print(f"{k:28s}" + "".join(f"{v:11.2f} {unit}" for v in vals) + f"   {max(vals) / min(vals):5.2f}x (target <= 1.5x)")
print(f"{'private memory, warm-up':28s}" + "".join(f"{per[s]['rss']:11d} kB" if per[s]['rss'] is not None else f"{'?':>14s}" for s in scales))
PY
rm -f "$results"
