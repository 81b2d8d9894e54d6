#!/usr/bin/env bash
# A throwaway Postgres cluster (the major of scripts/pg.sh: IDENTITY_PG, 15
# by default) owned by the unprivileged OS user, with the identity library
# preloaded and test secrets in its config. Sourced by test.sh, demo.sh and
# bench.sh.
#   cluster_start NAME PORT   -> exports PGHOST PGPORT PGUSER PGDATABASE
#   cluster_stop
. "$(dirname "${BASH_SOURCE[0]}")/pg.sh"
IDENTITY_OS_USER=${IDENTITY_OS_USER:-identity_pg}
CLUSTER_ROOT=${CLUSTER_ROOT:-/var/tmp/identity-clusters}

# Test-only secrets. A real deployment sets its own with ALTER SYSTEM.
IDENTITY_TEST_JWT_SECRET=${IDENTITY_TEST_JWT_SECRET:-demo-secret-do-not-use-0123456789abcdef}
IDENTITY_TEST_ENCRYPTION_KEY=${IDENTITY_TEST_ENCRYPTION_KEY:-ZGVtby1rZXktZG8tbm90LXVzZS0wMTIzNDU2Nzg5YWI=}

as_pg() { sudo -u "$IDENTITY_OS_USER" -H "$@"; }

cluster_start() {
    local name=$1 port=$2
    CLUSTER_DIR="$CLUSTER_ROOT/$name"
    cluster_stop_dir "$CLUSTER_DIR"
    rm -rf "$CLUSTER_DIR"
    mkdir -p "$CLUSTER_DIR"
    chown "$IDENTITY_OS_USER" "$CLUSTER_ROOT" "$CLUSTER_DIR"
    as_pg "$PG_BIN/initdb" -D "$CLUSTER_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    as_pg tee -a "$CLUSTER_DIR/data/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$CLUSTER_DIR'
shared_preload_libraries = 'identity'
identity.jwt_secret = '$IDENTITY_TEST_JWT_SECRET'
identity.encryption_key = '$IDENTITY_TEST_ENCRYPTION_KEY'
fsync = off
log_min_messages = warning
CONF
    as_pg "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w start >/dev/null
    export PGHOST=$CLUSTER_DIR PGPORT=$port PGUSER=postgres PGDATABASE=postgres
}

cluster_stop_dir() {
    if [ -f "$1/data/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

cluster_stop() {
    [ -n "${CLUSTER_DIR:-}" ] && cluster_stop_dir "$CLUSTER_DIR"
}

# pgbouncer (Debian package, installed by scripts/setup.sh) in front of the
# running cluster, on loopback, in transaction mode with one server
# connection per pool: every client of a pool shares that one backend. It
# refuses to run as root, so it runs as the cluster's OS user.
#   bouncer_start PORT DATABASES   (DATABASES: the [databases] lines)
#   bouncer_stop
bouncer_start() {
    local port=$1 databases=$2
    as_pg tee "$CLUSTER_DIR/pgbouncer.ini" >/dev/null <<INI
[databases]
$databases
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
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
}

bouncer_stop() {
    if [ -n "${CLUSTER_DIR:-}" ] && [ -f "$CLUSTER_DIR/pgbouncer.pid" ]; then
        kill "$(cat "$CLUSTER_DIR/pgbouncer.pid")" 2>/dev/null || true
    fi
}
