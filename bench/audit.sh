#!/usr/bin/env bash
# provision_user throughput with 8 clients (pgbench -M prepared), with the
# audit trail's hash chaining on and off, in one cluster and one run,
# interleaved. The chaining runs in the database's background writer after
# commit (identity.audit_chain_pending; "off" renames that function, so the
# writer finds nothing to run, and the backlog is chained before the next
# "on" round). provision_user writes several audit rows; "one organization"
# appends them all to one chain, "an organization per client" to eight.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
cluster_start bench_audit "${IDENTITY_BENCH_PORT:-28825}"
trap cluster_stop EXIT
DUR=${BENCH_SECONDS:-10}
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
create extension identity;
create schema bench;
create table bench.orgs as select i, identity.create_organization('bench ' || i) as id from generate_series(1, 8) i;
SQL
org1=$(psql -qAtX -c "select id from bench.orgs where i = 1")
tmp=$(mktemp -d)
# A unique external id per transaction: client id and a per-client counter.
cat > "$tmp/one_org.sql" <<SQL
\\set n random(1, 2000000000)
select identity.provision_user('b-' || :client_id || '-' || :n, 'b' || :client_id || '-' || :n || '@bench.test', organization_id => '$org1');
SQL
cat > "$tmp/own_org.sql" <<'SQL'
\set n random(1, 2000000000)
select id as org from bench.orgs where i = 1 + :client_id % 8 \gset
select identity.provision_user('c-' || :client_id || '-' || :n, 'c' || :client_id || '-' || :n || '@bench.test', organization_id => :org::uuid);
SQL
tps() { grep -oE 'tps = [0-9.]+' | head -1 | awk '{print $3}'; }
run() { pgbench -n -M prepared -c 8 -j 2 -T "$DUR" -f "$tmp/$1.sql" 2>&1 | tps; }
chain() {
    if [ "$1" = disable ]; then
        psql -qAtX -c "alter function identity.audit_chain_pending(integer) rename to audit_chain_pending_off" >/dev/null
    else
        psql -qAtX -c "alter function identity.audit_chain_pending_off(integer) rename to audit_chain_pending" >/dev/null
        psql -qAtX -c "select identity.audit_chain_pending(2147483647)" >/dev/null
    fi
}
pgbench -n -M prepared -c 8 -j 2 -T 2 -f "$tmp/one_org.sql" >/dev/null   # warm-up
declare -A r
for round in 1 2; do
    for mode in one_org own_org; do
        chain disable; r[off_${mode}_$round]=$(run $mode)
        chain enable;  r[on_${mode}_$round]=$(run $mode)
    done
done
# What recording outside the caller's transaction costs the caller: a reveal
# (audited through the shared-memory queue) against a get_credential of the
# same row (audited by an INSERT in the caller's transaction), 300 calls in
# one statement, min of 5 interleaved rounds.
. bench/lib.sh
psql -qAtX >/dev/null <<'SQL'
insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000be001', 'reveal@bench.test');
select identity.create_system_credential('00000000-0000-0000-0000-0000000be001', 'openrouter', 'sk-or-v1-bench-secret-0001');
SQL
cid=$(psql -qAtX -c "select id from identity.credentials limit 1")
reveal=(); get=()
for _ in 1 2 3 4 5; do
    reveal+=("$(exec_ms "select count(identity.reveal_credential_secret('$cid')) from generate_series(1, 300)")")
    get+=("$(exec_ms "select count(identity.get_credential('$cid')) from generate_series(1, 300)")")
    sleep 0.3   # let the writer drain the ring between rounds
done
rm -rf "$tmp"
python3 -c "
r, g = min(map(float, '${reveal[*]}'.split())), min(map(float, '${get[*]}'.split()))
print(f'reveal_credential_secret, audited outside the transaction {r / 300 * 1000:7.1f} us a call')
print(f'get_credential, audited by an INSERT in the transaction   {g / 300 * 1000:7.1f} us a call   (ratio {r / g:4.2f}x)')
"
echo "== provision_user, pgbench -M prepared, 8 clients, ${DUR}s, 2 interleaved rounds (medians of 2 = means)"
python3 - <<PY
r = {k: float(v) for k, v in dict(x.split('=') for x in "$(for k in "${!r[@]}"; do printf '%s=%s ' "$k" "${r[$k]}"; done)".split()).items()}
for mode, label in [("one_org", "one organization (one chain)"), ("own_org", "an organization per client")]:
    on = (r[f"on_{mode}_1"] + r[f"on_{mode}_2"]) / 2
    off = (r[f"off_{mode}_1"] + r[f"off_{mode}_2"]) / 2
    print(f"{label:32s} chain off {off:8.0f} tps   chain on {on:8.0f} tps   on/off {on / off:5.2f}x")
PY
