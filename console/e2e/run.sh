#!/usr/bin/env bash
# The console layer: the admin console (console/) end to end in Debian's
# headless Chromium (installed by scripts/setup.sh), driven by playwright-core
# (npm, from the committed package-lock.json). A throwaway cluster with the
# installed extension and console/demo/seed.sql's data; pgbouncer in
# transaction mode with one server connection in front of it, so every
# console connection shares one backend; the console on loopback, built
# here. Prints "console: N passed, M failed"; screenshots go to
# $IDENTITY_CONSOLE_SCREENSHOTS (default target/console-screenshots).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
. scripts/cluster.sh
if ! cmp -s console/e2e/package-lock.json console/e2e/node_modules/.package-lock.json 2>/dev/null; then
    (cd console/e2e && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp console/e2e/package-lock.json console/e2e/node_modules/.package-lock.json
fi
echo "== building the console"
cargo build -q -p identity-console
PORT=${IDENTITY_CONSOLE_PG_PORT:-28818}
BOUNCER_PORT=${IDENTITY_CONSOLE_BOUNCER_PORT:-28819}
CONSOLE_PORT=${IDENTITY_CONSOLE_PORT:-28820}
cluster_start console "$PORT"
work=$CLUSTER_DIR
console_pid=
stop_all() {
    [ -n "$console_pid" ] && kill "$console_pid" 2>/dev/null || true
    bouncer_stop
    cluster_stop
}
trap stop_all EXIT
psql -X -q -c "create extension identity"
psql -X -q -v out="$work/demo.json" -f console/demo/seed.sql
bouncer_start "$BOUNCER_PORT" "postgres = host=127.0.0.1 port=$PGPORT dbname=postgres user=identity_console"
IDENTITY_CONSOLE_DATABASE_URL="host=127.0.0.1 port=$BOUNCER_PORT dbname=postgres user=identity_console" \
IDENTITY_CONSOLE_LISTEN="127.0.0.1:$CONSOLE_PORT" IDENTITY_CONSOLE_POOL=4 \
    target/debug/identity-console 2> "$work/console.log" &
console_pid=$!
for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$CONSOLE_PORT") 2>/dev/null && break
    sleep 0.2
done
export CONSOLE_URL="http://127.0.0.1:$CONSOLE_PORT" DEMO_JSON="$work/demo.json" \
       CONSOLE_LOG="$work/console.log" \
       SCREENSHOTS=${IDENTITY_CONSOLE_SCREENSHOTS:-$PWD/target/console-screenshots}
set +e
(cd console/e2e && node --test --test-reporter=tap) > "$work/e2e.tap" 2>&1
rc=$?
set -e
grep -E '^(not )?ok|^# (tests|pass|fail)' "$work/e2e.tap" || true
[ "$rc" -ne 0 ] && { grep -B2 -A30 '^not ok' "$work/e2e.tap" | head -120; tail -n 20 "$work/console.log"; }
echo "console: $(sed -n 's/^# pass //p' "$work/e2e.tap") passed, $(sed -n 's/^# fail //p' "$work/e2e.tap") failed"
echo "screenshots: $SCREENSHOTS"
exit "$rc"
