#!/usr/bin/env bash
# Interop layer: real clients against the installed extension in a throwaway
# cluster. Python deps live in a venv outside the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
VENV=${IDENTITY_VENV:-/var/tmp/identity-venv}
if [ ! -x "$VENV/bin/pytest" ] || ! "$VENV/bin/pip" freeze 2>/dev/null | grep -qi '^psycopg-binary'; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r interop/requirements.txt
fi
cluster_start interop "${IDENTITY_INTEROP_PORT:-28816}"
trap cluster_stop EXIT
"$VENV/bin/pytest" -q -p no:cacheprovider interop
