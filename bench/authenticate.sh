#!/usr/bin/env bash
# Cost per transaction of pinning an identity (issue 12): pgbench -M prepared,
# 1 client, one cluster, interleaved rounds. Every transaction is
#   begin; <identity>; select identity.uid(); commit;
# with <identity> one of
#   claims        set_config('request.jwt.claims', claims, true)  (the baseline: PostgREST's own way)
#   jwt           identity.authenticate(an HS256 JWT)
#   api_token     identity.authenticate(an API token)
#   pre_request   request.headers with x-api-key, then identity.pre_request()
#                 (what a PostgREST request with an API key adds)
# Two measures, each in interleaved rounds:
#   in server: a procedure runs 20,000 such transactions (COMMIT in a loop),
#              so only the server's work is timed; minimum over the rounds;
#   pgbench:   the same transactions from a client (-M prepared, 1 client),
#              round trips included; median tps over the rounds.
# Each is printed with its cost over the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
cluster_start bench_authenticate "${IDENTITY_BENCH_PORT:-28824}"
trap cluster_stop EXIT
DUR=${BENCH_SECONDS:-4}
ROUNDS=${BENCH_ROUNDS:-5}
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
create extension identity;
create role authenticated nologin;
select identity.grant_access('authenticated', 'user');
insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000000b1', 'bench@example.com');
create schema bench;
create procedure bench.loop(kind text, n int, arg text) language plpgsql as $$
begin
    for i in 1..n loop
        case kind
            when 'claims' then perform pg_catalog.set_config('request.jwt.claims', arg, true);
            when 'pre_request' then perform pg_catalog.set_config('request.headers', arg, true); perform identity.pre_request();
            else perform identity.authenticate(arg);
        end case;
        perform identity.uid();
        commit;
    end loop;
end $$;
SQL
jwt=$(psql -qAtX -c "select identity.issue_access_token('00000000-0000-0000-0000-0000000000b1', '1 day')")
api=$(psql -qAtX -c "select token from identity.create_api_token('00000000-0000-0000-0000-0000000000b1', 'bench')")
claims=$(psql -qAtX -c "select identity.decode_jwt('$jwt')->>'payload'")
headers="{\"x-api-key\": \"$api\", \"accept\": \"application/json\"}"
tmp=$(mktemp -d)
# Each transaction has four statements and sends back a boolean, so every
# kind pays the same round trips and the difference is the server's work.
printf 'begin;\nselect set_config($$request.jwt.claims$$, :claims, true) is not null;\nselect identity.uid();\ncommit;\n' > "$tmp/claims.sql"
printf 'begin;\nselect identity.authenticate(:jwt) is not null;\nselect identity.uid();\ncommit;\n' > "$tmp/jwt.sql"
printf 'begin;\nselect identity.authenticate(:api) is not null;\nselect identity.uid();\ncommit;\n' > "$tmp/api_token.sql"
printf 'begin;\nselect set_config($$request.headers$$, :headers, true) is not null, identity.pre_request() is null;\nselect identity.uid();\ncommit;\n' > "$tmp/pre_request.sql"
run() { pgbench -n -M prepared -c 1 -T "$1" -D claims="$claims" -D jwt="$jwt" -D api="$api" -D headers="$headers" \
            -f "$tmp/$2.sql" 2>&1 | grep -oE 'tps = [0-9.]+' | head -1 | awk '{print $3}'; }
kinds=(claims jwt api_token pre_request)
for k in "${kinds[@]}"; do run 1 "$k" >/dev/null; done   # warm-up
declare -A results
for r in $(seq "$ROUNDS"); do
    for k in "${kinds[@]}"; do results[$k]="${results[$k]:-} $(run "$DUR" "$k")"; done
done
rm -rf "$tmp"
N=20000
arg_of() { case $1 in claims) echo "$claims";; jwt) echo "$jwt";; api_token) echo "$api";; pre_request) echo "$headers";; esac; }
declare -A server
for r in $(seq "$ROUNDS"); do
    for k in "${kinds[@]}"; do
        ms=$(printf '%s\n' '\timing on' "call bench.loop(:'kind', $N, :'arg');" \
               | psql -qAtX -v ON_ERROR_STOP=1 -v kind="$k" -v arg="$(arg_of "$k")" | grep -oE 'Time: [0-9.]+' | awk '{print $2}')
        server[$k]="${server[$k]:-} $ms"
    done
done
echo "== identity per transaction, in server: $N transactions per call (COMMIT in a procedure), minimum of ${ROUNDS} interleaved rounds"
python3 - $N "${server[claims]}" "${server[jwt]}" "${server[api_token]}" "${server[pre_request]}" <<'PY'
import sys
n = int(sys.argv[1])
names = ["claims (baseline)", "authenticate(jwt)", "authenticate(api_token)", "pre_request (x-api-key)"]
us = [min(float(x) for x in a.split()) * 1000 / n for a in sys.argv[2:]]
for name, u in zip(names, us):
    print(f"{name:26s} {u:7.2f} us/tx  x{u / us[0]:5.2f} of baseline  (+{u - us[0]:6.2f} us)")
PY
echo "== identity per transaction: pgbench -M prepared, 1 client, ${ROUNDS} interleaved rounds of ${DUR}s, median"
python3 - "${results[claims]}" "${results[jwt]}" "${results[api_token]}" "${results[pre_request]}" <<'PY'
import statistics, sys
names = ["claims (baseline)", "authenticate(jwt)", "authenticate(api_token)", "pre_request (x-api-key)"]
tps = [statistics.median(float(x) for x in a.split()) for a in sys.argv[1:]]
base = 1e6 / tps[0]
for n, t in zip(names, tps):
    us = 1e6 / t
    print(f"{n:26s} {t:9.0f} tps  {us:7.1f} us/tx  x{us / base:5.2f} of baseline  (+{us - base:6.1f} us)")
PY
