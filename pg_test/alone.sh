#!/usr/bin/env bash
# Every scenario file on its own: each runs alone in a new database of one
# throwaway cluster (pg_regress --use-existing), and must give its expected
# output without any other file having run first. Prints
# "scenarios alone: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
PORT=${IDENTITY_ALONE_PORT:-28818}
cluster_start scenarios_alone "$PORT"
trap cluster_stop EXIT
passed=0; failed=0
for t in $(awk '/^test:/ {print $2}' pg_test/schedule); do
    out="$CLUSTER_DIR/alone/$t"; mkdir -p "$out"
    db="alone_$t"
    psql -qX -c "create database $db" >/dev/null
    if "$PG_REGRESS" --bindir="$PG_BIN" --use-existing --host="$PGHOST" --port="$PGPORT" --user=postgres \
           --dbname="$db" --inputdir=pg_test --outputdir="$out" "$t" > "$out/summary.txt" 2>&1; then
        passed=$((passed + 1)); echo "ok   $t alone"
    else
        failed=$((failed + 1)); echo "FAIL $t alone"; cat "$out/regression.diffs" 2>/dev/null | head -40
    fi
done
echo "scenarios alone: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
