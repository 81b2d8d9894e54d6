#!/usr/bin/env bash
# Runs the SQL scenario suite (pg_regress) against the extension installed in
# the system folders, in a throwaway cluster. Prints "scenarios: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
PORT=${IDENTITY_SCENARIO_PORT:-28815}

cluster_start scenarios "$PORT"
trap cluster_stop EXIT
out="$CLUSTER_DIR/regress"
mkdir -p "$out"
psql -qX -c "create database regression" >/dev/null
set +e
"$PG_REGRESS" --bindir="$PG_BIN" --use-existing --host="$PGHOST" --port="$PGPORT" --user=postgres \
    --dbname=regression --inputdir=pg_test --outputdir="$out" \
    --schedule=pg_test/schedule 2>&1 | tee "$out/summary.txt"
status=${PIPESTATUS[0]}
set -e
total=$(grep -cE '^(test |ok |not ok )' "$out/summary.txt" || true)
failed=$(grep -cE '(\.\.\. FAILED|^not ok )' "$out/summary.txt" || true)
if [ "$status" -ne 0 ] && [ -f "$out/regression.diffs" ]; then
    cat "$out/regression.diffs"
    # The background audit writer's own lines, for a wait that timed out.
    grep -iE "audit writer|FATAL|PANIC|terminated" "$CLUSTER_DIR/server.log" | tail -n 30 || true
fi
echo "scenarios: $((total - failed)) passed, $failed failed"
exit "$status"
