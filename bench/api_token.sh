#!/usr/bin/env bash
# verify_api_token through pgbench (prepared, 1 and 8 clients) against a
# plain primary-key lookup of the same table, in one cluster; then
# verify_api_token, authenticate and exchange_api_token per call. Both transactions
# first fetch a random token (and its id) by primary key with \gset; then
# one verifies the token, the other selects the api_tokens row by id.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
cluster_start bench_tokens "${IDENTITY_BENCH_PORT:-28823}"
trap cluster_stop EXIT
DUR=${BENCH_SECONDS:-10}
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
create extension identity;
insert into identity.users (id, email)
select ('00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid, 'u' || i || '@bench.test' from generate_series(1, 1000) i;
create schema bench;
create table bench.api as
  select row_number() over () as id, t.token_id, t.token
  from generate_series(1, 10000) i,
       lateral identity.create_api_token(('00000000-0000-0000-0000-' || lpad(to_hex(1 + i % 1000), 12, '0'))::uuid, 'bench') t;
alter table bench.api add primary key (id);
analyze;
-- Warm: every token verified once, so last_used_at is fresh for the run.
select count(identity.verify_api_token(token)) from bench.api;
SQL
tmp=$(mktemp -d)
printf '\\set id random(1, 10000)\nselect token from bench.api where id = :id \\gset\nselect identity.verify_api_token(:token);\n' > "$tmp/verify.sql"
printf '\\set id random(1, 10000)\nselect token_id from bench.api where id = :id \\gset\nselect * from identity.api_tokens where id = :token_id;\n' > "$tmp/pk.sql"
tps() { grep -oE 'tps = [0-9.]+' | head -1 | awk '{print $3}'; }
pgbench -n -M prepared -c 1 -T 2 -f "$tmp/verify.sql" >/dev/null   # warm-up
# Each measurement starts with every token's last_used_at just written, as
# the warm-up left it: the runs take over a minute in all, and otherwise the
# later ones would meet the moment every token is due its once-a-minute
# write in every backend at once (each backend then tries each token once).
# Steady state is one write per token a minute, shared by all calls.
fresh() { psql -qAtX -c "update identity.api_tokens set last_used_at = now()" >/dev/null; }
# 1 and 8 clients (-j 2: the machine's two cores), interleaved twice.
run() { fresh; pgbench -n -M prepared -c "$1" -j "$(( $1 > 1 ? 2 : 1 ))" -T "$DUR" -f "$tmp/$2.sql" 2>&1 | tps; }
v1=$(run 1 verify); k1=$(run 1 pk); v1b=$(run 1 verify); k1b=$(run 1 pk)
v8=$(run 8 verify); k8=$(run 8 pk); v8b=$(run 8 verify); k8b=$(run 8 pk)
rm -rf "$tmp"
# Per call inside the server: exchange_api_token (signs a JWT, audited) and
# authenticate (verifies and pins), over the 10,000 tokens, minus an empty
# scan of the same table; minimum of 3 rounds.
. bench/lib.sh
per_call=""
for _ in 1 2 3; do
    fresh
    per_call="$per_call $(exec_ms "select count(token) from bench.api") \
$(exec_ms "select count(identity.verify_api_token(token)) from bench.api") \
$(exec_ms "select count(identity.authenticate(token)) from bench.api") \
$(exec_ms "select count(identity.exchange_api_token(token)) from bench.api")"
done
echo "== verify_api_token vs primary-key lookup, pgbench -M prepared, ${DUR}s x 2 interleaved"
python3 - "$v1" "$v1b" "$k1" "$k1b" "$v8" "$v8b" "$k8" "$k8b" $per_call <<'PY'
import sys
a = list(map(float, sys.argv[1:9]))
for clients, (v, vb, k, kb) in ((1, a[0:4]), (8, a[4:8])):
    v, k = (v + vb) / 2, (k + kb) / 2
    print(f'{clients} client{"s" if clients > 1 else " "}: verify_api_token {v:9.0f} tps, primary-key lookup {k:9.0f} tps, ratio {v / k:5.2f}  (target >= 0.95)')
t = list(map(float, sys.argv[9:]))
m = [min(t[i::4]) for i in range(4)]
for name, ms in (("verify_api_token", m[1]), ("authenticate(api token)", m[2]), ("exchange_api_token", m[3])):
    print(f'per call in the server: {name:24s} {(ms - m[0]) * 1000 / 10000:6.2f} us')
PY
