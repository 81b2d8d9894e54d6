#!/usr/bin/env bash
# ALTER EXTENSION identity UPDATE from 0.1.0 (the tree at commit 37ab521),
# on PostgreSQL 15 (0.1.0 was never built for another major):
#   1. build 0.1.0 from a git worktree and install it; make data with it
#      (organization, users, service user, API tokens, HS256 and ES256 JWTs,
#      an active signing key, credentials, audit rows) and record what 0.1.0
#      answered (pg_test/upgrade/before.sql);
#   2. install the current build over it and restart Postgres (the library is
#      preloaded): with 0.1.0's SQL definitions still in place, every 0.1.0
#      C symbol must exist in the new library and every check must pass
#      (pg_test/upgrade/checks.sql);
#   3. ALTER EXTENSION identity UPDATE: the checks again, and the catalog
#      must equal a fresh CREATE EXTENSION's, object by object
#      (pg_test/upgrade/catalog.sql).
# Prints "upgrade: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
export IDENTITY_PG=15
. scripts/cluster.sh
OLD_REF=37ab521
OLD_TREE=${IDENTITY_OLD_TREE:-/var/tmp/identity-0.1.0}
OLD_TARGET=${IDENTITY_OLD_TARGET:-/var/tmp/identity-0.1.0-target}
PORT=${IDENTITY_UPGRADE_PORT:-28823}
passed=0; failed=0
check() { # name, expected, actual
    if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok   $1";
    else failed=$((failed + 1)); echo "FAIL $1: expected [$2], got [$3]"; fi
}
q() { psql -qAtX -v ON_ERROR_STOP=1 "$@"; }

echo "-- building 0.1.0 ($OLD_REF) in a git worktree"
git worktree prune
[ -d "$OLD_TREE" ] && { git worktree remove --force "$OLD_TREE" 2>/dev/null || rm -rf "$OLD_TREE"; }
git worktree add --force --detach "$OLD_TREE" "$OLD_REF" >/dev/null 2>&1
trap 'git worktree remove --force "$OLD_TREE" >/dev/null 2>&1 || true' EXIT
(cd "$OLD_TREE" && CARGO_TARGET_DIR=$OLD_TARGET cargo pgrx install --pg-config "$PG_CONFIG" 2>&1 | tail -n 1)

cluster_start upgrade "$PORT"
trap 'cluster_stop; git worktree remove --force "$OLD_TREE" >/dev/null 2>&1 || true' EXIT
q -c "create database upgraded"
q -d upgraded -f pg_test/upgrade/before.sql > "$CLUSTER_DIR/before.out"
check "0.1.0 installed" "0.1.0" "$(q -d upgraded -c "select extversion from pg_extension where extname = 'identity'")"
check "0.1.0 made every row (18 values kept)" "18 0" \
      "$(grep -c '^kept:.*|t$' "$CLUSTER_DIR/before.out") $(grep -c '^kept:.*|f$' "$CLUSTER_DIR/before.out")"

echo "-- installing the current build over it and restarting (the library is preloaded)"
cargo pgrx install --pg-config "$PG_CONFIG" 2>&1 | tail -n 1
as_pg "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -m fast -w restart >/dev/null
nm -D --defined-only "$("$PG_CONFIG" --pkglibdir)/identity.so" | awk '{print $3}' | sort -u > "$CLUSTER_DIR/symbols"
q -d upgraded -c "select p.prosrc from pg_proc p join pg_language l on l.oid = p.prolang
                  where p.pronamespace = 'identity'::regnamespace and l.lanname = 'c' order by 1" \
    | sort -u > "$CLUSTER_DIR/wanted"
missing=$(comm -23 "$CLUSTER_DIR/wanted" "$CLUSTER_DIR/symbols" | tr '\n' ' ')
check "every 0.1.0 C symbol ($(wc -l < "$CLUSTER_DIR/wanted")) is in the new library" "" "$missing"
while IFS='|' read -r name ok; do
    check "before UPDATE (0.1.0 SQL, new library): $name" "t" "$ok"
done < <(q -d upgraded -f pg_test/upgrade/checks.sql)

echo "-- ALTER EXTENSION identity UPDATE"
q -d upgraded -c "alter extension identity update"
check "updated to the current version" "$(sed -n "s/^default_version = '\(.*\)'/\1/p" identity.control)" \
      "$(q -d upgraded -c "select extversion from pg_extension where extname = 'identity'")"
while IFS='|' read -r name ok; do
    check "after UPDATE: $name" "t" "$ok"
done < <(q -d upgraded -f pg_test/upgrade/checks.sql)

check "0.1.0's audit rows are chained by the update and verify" "true t" \
      "$(q -d upgraded -c "select identity.verify_audit_log()->>'valid', (identity.verify_audit_log()->>'rows_checked')::int >= (select v::int from before where k = 'audit_rows')" | tr '|' ' ')"

echo "-- the catalog of a fresh install"
q -c "create database fresh"
# The same roles and levels as before.sql gave, so the grants compare.
q -d fresh -c "create extension identity" >/dev/null
q -d fresh -c "select identity.grant_access('authenticated', 'user')" \
  -c "select identity.grant_access('supabase_auth_admin', 'hook')" \
  -c "select identity.grant_access('service_role', 'admin')" >/dev/null
q -d upgraded -f pg_test/upgrade/catalog.sql > "$CLUSTER_DIR/catalog.upgraded"
q -d fresh -f pg_test/upgrade/catalog.sql > "$CLUSTER_DIR/catalog.fresh"
if diff -u "$CLUSTER_DIR/catalog.fresh" "$CLUSTER_DIR/catalog.upgraded" > "$CLUSTER_DIR/catalog.diff"; then
    check "catalog equals a fresh install ($(wc -l < "$CLUSTER_DIR/catalog.fresh") lines)" same same
else
    head -60 "$CLUSTER_DIR/catalog.diff"
    check "catalog equals a fresh install" same "$(grep -c '^[-+][^-+]' "$CLUSTER_DIR/catalog.diff") lines differ"
fi
echo "upgrade: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
