#!/usr/bin/env bash
# verify_api_token through pgbench (prepared, 1 client) against a plain
# primary-key lookup of the same table, in one cluster. Both transactions
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
v=$(pgbench -n -M prepared -c 1 -T "$DUR" -f "$tmp/verify.sql" 2>&1 | tps)
k=$(pgbench -n -M prepared -c 1 -T "$DUR" -f "$tmp/pk.sql" 2>&1 | tps)
v2=$(pgbench -n -M prepared -c 1 -T "$DUR" -f "$tmp/verify.sql" 2>&1 | tps)
k2=$(pgbench -n -M prepared -c 1 -T "$DUR" -f "$tmp/pk.sql" 2>&1 | tps)
rm -rf "$tmp"
echo "== verify_api_token vs primary-key lookup, pgbench -M prepared, 1 client, ${DUR}s x 2 interleaved"
python3 -c "
v, k = ($v + $v2) / 2, ($k + $k2) / 2
print(f'verify_api_token   {v:9.0f} tps')
print(f'primary-key lookup {k:9.0f} tps')
print(f'ratio              {v / k:9.2f}  (target >= 0.8)')"
