#!/usr/bin/env bash
# Interop layer: real clients against the installed extension in a throwaway
# cluster. Python deps live in a venv outside the tree.
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
export IDENTITY_TEST_JWT_SECRET
cluster_start interop "${IDENTITY_INTEROP_PORT:-28816}"
trap cluster_stop EXIT
# The whole cluster logs at debug5 for test_no_secrets_in_logs.py.
as_pg tee -a "$CLUSTER_DIR/data/postgresql.conf" >/dev/null <<CONF
log_min_messages = debug5
CONF
as_pg "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" reload >/dev/null
# pgbouncer (Debian package, installed by scripts/setup.sh) in transaction
# mode with one server connection per pool, for test_pooling.py: every
# client of a pool shares that one backend. It refuses to run as root.
PGBOUNCER_PORT=${IDENTITY_PGBOUNCER_PORT:-28817}
as_pg tee "$CLUSTER_DIR/pgbouncer.ini" >/dev/null <<INI
[databases]
pooling = host=127.0.0.1 port=$PGPORT dbname=pooling user=authenticator
pooling_verified = host=127.0.0.1 port=$PGPORT dbname=pooling user=authenticator_verified
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 1
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = 1
max_client_conn = 100
ignore_startup_parameters = extra_float_digits,options
logfile = $CLUSTER_DIR/pgbouncer.log
pidfile = $CLUSTER_DIR/pgbouncer.pid
INI
as_pg /usr/sbin/pgbouncer -d -q "$CLUSTER_DIR/pgbouncer.ini"
stop_all() {
    [ -f "$CLUSTER_DIR/pgbouncer.pid" ] && kill "$(cat "$CLUSTER_DIR/pgbouncer.pid")" 2>/dev/null || true
    cluster_stop
}
trap stop_all EXIT
export IDENTITY_PGBOUNCER_PORT=$PGBOUNCER_PORT
export IDENTITY_TEST_ENCRYPTION_KEY IDENTITY_SERVER_LOG="$CLUSTER_DIR/server.log"
"$VENV/bin/pytest" -q -p no:cacheprovider interop "$@"
