#!/usr/bin/env bash
# Sets up what is missing, builds and installs the release build, starts a
# throwaway cluster (PostgreSQL 15; IDENTITY_PG=17 or 18 for those), runs
# demo/demo.sql and stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
echo "== building and installing the release build"
. scripts/pg.sh
cargo pgrx install --release --pg-config "$PG_CONFIG" 2>&1 | tail -n 1
. scripts/cluster.sh
cluster_start demo "${IDENTITY_DEMO_PORT:-28814}"
trap cluster_stop EXIT
echo "== throwaway cluster on port $PGPORT (identity preloaded, demo secrets set)"
psql -X -v ON_ERROR_STOP=1 --echo-queries -f demo/demo.sql
