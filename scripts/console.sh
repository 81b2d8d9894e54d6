#!/usr/bin/env bash
# The admin console (API.md section 12) with demo data: sets up what is
# missing, builds and installs the release build of the extension, starts a
# throwaway cluster (PostgreSQL 15; IDENTITY_PG=17 or 18 for those), loads
# console/demo/seed.sql (two organizations, their admins, a member, service
# users, tokens, credentials, audit rows), builds the console and runs it
# on 127.0.0.1 until Ctrl-C, printing the URL and the demo admin's token.
#   IDENTITY_CONSOLE_PORT  the console's port (8787)
#   IDENTITY_CONSOLE_CHECK=1  start, answer one request, stop (a smoke test)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
echo "== building and installing the release build of the extension"
. scripts/pg.sh
cargo pgrx install --release --pg-config "$PG_CONFIG" 2>&1 | tail -n 1
echo "== building the console"
cargo build -q --release -p identity-console
. scripts/cluster.sh
cluster_start console-demo "${IDENTITY_CONSOLE_DEMO_PG_PORT:-28822}"
work=$CLUSTER_DIR
console_pid=
stop_all() {
    [ -n "$console_pid" ] && kill "$console_pid" 2>/dev/null || true
    cluster_stop
}
trap stop_all EXIT
psql -X -q -c "create extension identity"
psql -X -q -v out="$work/demo.json" -f console/demo/seed.sql
port=${IDENTITY_CONSOLE_PORT:-8787}
demo() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$work/demo.json" "$1"; }
# The console's login role (made by the seed) can only become
# `authenticated`, which holds the extension's `user` level.
IDENTITY_CONSOLE_DATABASE_URL="host=127.0.0.1 port=$PGPORT dbname=postgres user=identity_console" \
IDENTITY_CONSOLE_LISTEN="127.0.0.1:$port" \
    target/release/identity-console &
console_pid=$!
for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
done
cat <<TXT

== identity console: http://127.0.0.1:$port
   Sign in as Acme Robotics' admin (ada@acme.test) with this API token:
     $(demo admin_token)
   Globex's admin (gina@globex.test), who sees only Globex:
     $(demo globex_admin_token)
   A member who is not an admin (refused):
     $(demo member_token)
   These are throwaway demo tokens of a throwaway cluster (port $PGPORT).
TXT
if [ "${IDENTITY_CONSOLE_CHECK:-}" = 1 ]; then
    code=$(python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).status)" "http://127.0.0.1:$port/login")
    echo "== check: GET /login answered $code"
    [ "$code" = 200 ]
    exit 0
fi
echo "   Ctrl-C stops the console and the cluster."
wait "$console_pid"
