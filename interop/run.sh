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
"$VENV/bin/pytest" -q -p no:cacheprovider interop
