#!/usr/bin/env bash
# Interop layer: real clients against the installed extension in a throwaway
# cluster: Python (psycopg, PyJWT, pgbouncer) in interop/*.py, with its deps
# in a venv outside the tree; JavaScript (jose, node-postgres) in
# interop/js, with the machine's Node.js and its deps installed by `npm ci`
# from the committed package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
VENV=${IDENTITY_VENV:-/var/tmp/identity-venv}
# Reinstall when requirements.txt changes (a stamp holds the installed copy).
if [ ! -x "$VENV/bin/pytest" ] || ! cmp -s interop/requirements.txt "$VENV/requirements.installed"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r interop/requirements.txt
    cp interop/requirements.txt "$VENV/requirements.installed"
fi
if ! cmp -s interop/js/package-lock.json interop/js/node_modules/.package-lock.json 2>/dev/null; then
    (cd interop/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp interop/js/package-lock.json interop/js/node_modules/.package-lock.json
fi
export IDENTITY_TEST_JWT_SECRET
cluster_start interop "${IDENTITY_INTEROP_PORT:-28816}"
trap cluster_stop EXIT
# The whole cluster logs at debug5 for test_no_secrets_in_logs.py.
as_pg tee -a "$CLUSTER_DIR/data/postgresql.conf" >/dev/null <<CONF
log_min_messages = debug5
# The JWKS tests serve their key sets over plain http on loopback.
identity.jwks_allow_private_addresses = on
CONF
as_pg "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" reload >/dev/null
# pgbouncer (scripts/cluster.sh: transaction mode, one server connection per
# pool), for test_pooling.py: every client of a pool shares that one backend.
PGBOUNCER_PORT=${IDENTITY_PGBOUNCER_PORT:-28817}
bouncer_start "$PGBOUNCER_PORT" "pooling = host=127.0.0.1 port=$PGPORT dbname=pooling user=authenticator
pooling_verified = host=127.0.0.1 port=$PGPORT dbname=pooling user=authenticator_verified"
stop_all() {
    bouncer_stop
    cluster_stop
}
trap stop_all EXIT
export IDENTITY_PGBOUNCER_PORT=$PGBOUNCER_PORT
export IDENTITY_TEST_ENCRYPTION_KEY IDENTITY_SERVER_LOG="$CLUSTER_DIR/server.log"
set +e
"$VENV/bin/pytest" -q -p no:cacheprovider interop "$@"
py=$?
# node --test prints TAP; its "# pass N" / "# fail M" become one summary line.
(cd interop/js && node --test --test-reporter=tap) > "$CLUSTER_DIR/js.tap" 2>&1
js=$?
set -e
grep -E '^not ok|^# (Subtest|tests|pass|fail)' "$CLUSTER_DIR/js.tap" | grep -v '^# Subtest' || true
[ "$js" -ne 0 ] && grep -A30 '^not ok' "$CLUSTER_DIR/js.tap" | head -60
echo "js interop: $(sed -n 's/^# pass //p' "$CLUSTER_DIR/js.tap") passed, $(sed -n 's/^# fail //p' "$CLUSTER_DIR/js.tap") failed"
[ "$py" -eq 0 ] && [ "$js" -eq 0 ]
