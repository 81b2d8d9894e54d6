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
export IDENTITY_TEST_ENCRYPTION_KEY IDENTITY_SERVER_LOG="$CLUSTER_DIR/server.log"
"$VENV/bin/pytest" -q -p no:cacheprovider interop
