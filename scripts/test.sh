#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine (README: "Test").
# Layers, each ending in its own summary line:
#   0. static checks          cargo fmt --check, cargo clippy -D warnings (pg15, and pg18 for
#                             the code under cfg(feature = "pg18")), scripts/layers.py
#   1. core unit tests        `cargo test -p identity-core` (crates/identity-core: no pgrx, no Postgres), `-p identity-console`
# and then on the supported PostgreSQL majors (scripts/pg.sh says where each
# lives). Layers 2 to 4 and 7 run on every major of IDENTITY_PG_MAJORS
# ("15 17 18" by default); to keep a fresh machine's CI under 30 minutes,
# layers 5 and 6 run on fewer majors (their own lists, each also within
# IDENTITY_PG_MAJORS):
#   2. #[pg_test]             `cargo pgrx test pgNN` in a cluster run as $IDENTITY_OS_USER
#   3. SQL scenario suite     pg_test/ (pg_regress, real roles, installed extension; then each file alone)
#   4. interop                interop/ (psycopg, PyJWT, pgbouncer; jose + node-postgres in interop/js)
#   5. console                console/e2e/run.sh (the admin console in headless Chromium, through
#                             pgbouncer): IDENTITY_CONSOLE_MAJORS, "18" by default (it speaks
#                             only SQL; what differs between majors is covered below it)
#   6. hot standby            pg_test/standby.sh (a real streaming replica on loopback) and
#                             pg_test/logical.sh: IDENTITY_REPLICA_MAJORS, "15" by default (the
#                             oldest major; 17 and 18 on request: 34 s each)
#   7. package                pg_test/package.sh (`cargo pgrx package` files in a clean copy of the
#                             server)
#   8. upgrade                pg_test/upgrade.sh (0.1.0 from commit 37ab521, ALTER EXTENSION UPDATE; PostgreSQL 15)
#   9. pg_upgrade             pg_test/pg_upgrade.sh (a 15 cluster made by this build, pg_upgrade to
#                             each other major of IDENTITY_PG_MAJORS, --link and copy; every token,
#                             revocation, credential, the audit chain, the workers and the filter
#                             checked after)
# and a last line "identity: N passed, M failed" over all layers and majors.
# Each layer also prints how long it took ("took N s").
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
bash scripts/setup.sh
echo "== took $((SECONDS - started)) s: setup"
export PATH="$HOME/.cargo/bin:$PATH"
IDENTITY_PG_MAJORS=${IDENTITY_PG_MAJORS:-15 17 18}
IDENTITY_CONSOLE_MAJORS=${IDENTITY_CONSOLE_MAJORS:-18}
IDENTITY_REPLICA_MAJORS=${IDENTITY_REPLICA_MAJORS:-15}
IDENTITY_OS_USER=${IDENTITY_OS_USER:-identity_pg}
logs=$(mktemp -d)
passed=0
failed=0
status=0
layer_start=$SECONDS
took() { # NAME: how long the layer that just ended took
    echo "== took $((SECONDS - layer_start)) s: $1"
    layer_start=$SECONDS
}
runs_on() { # LIST: whether the current major is in LIST
    case " $1 " in *" $major "*) return 0 ;; *) return 1 ;; esac
}
count() { # sums "N passed; M failed" / "N passed, M failed" lines of a log
    local p f
    p=$( { grep -oE '[0-9]+ passed' "$1" || true; } | awk '{s+=$1} END {print s+0}')
    # pytest reports setup failures as "N errors": they count as failed.
    f=$( { grep -oE '[0-9]+ (failed|errors?)\b' "$1" || true; } | awk '{s+=$1} END {print s+0}')
    passed=$((passed + p)); failed=$((failed + f))
}

echo "== 0/9 static checks (rustfmt, clippy -D warnings, layers)"
# Each check is one "passed" or "failed" line. rustfmt and clippy come with
# the machine's Rust toolchain (rustup components); if one is missing the
# check says so and fails.
static_check() { # NAME COMMAND...: one line "NAME: 1 passed" or "NAME: 1 failed"
    local name=$1; shift
    if "$@" > "$logs/$name.log" 2>&1; then
        echo "$name: 1 passed, 0 failed"
    else
        tail -n 30 "$logs/$name.log"; echo "$name: 0 passed, 1 failed"; status=1
    fi
}
{
    static_check rustfmt cargo fmt --all --check
    static_check clippy cargo clippy --workspace --all-targets --features pg_test -- -D warnings
    # Code under cfg(feature = "pg18") is linted too. (17 takes 15's branch
    # of every cfg: the pg15 clippy lints it; `cargo pgrx test pg17` builds it.)
    static_check clippy_pg18 cargo clippy --workspace --all-targets --no-default-features \
        --features pg18,pg_test -- -D warnings
    static_check layers python3 scripts/layers.py
} | tee "$logs/static.log"
grep -E '^(rustfmt|clippy|clippy_pg18|layers): ' "$logs/static.log" > "$logs/static.summary" || true
count "$logs/static.summary"
grep -q ' 1 failed' "$logs/static.summary" && status=1
took "static checks"

echo "== 1/9 core unit tests (cargo test -p identity-core, no Postgres; the console's own unit tests)"
cargo test -p identity-core 2>&1 | tee "$logs/core.log" || status=1
cargo test -p identity-console 2>&1 | grep -vE '^\s+(Compiling|Checking)' | tee -a "$logs/core.log" || status=1
count "$logs/core.log"
took "core unit tests"

for major in $IDENTITY_PG_MAJORS; do
    before_passed=$passed; before_failed=$failed
    export IDENTITY_PG=$major
    . scripts/pg.sh
    echo "== 2/9 #[pg_test] on PostgreSQL $major (cargo pgrx test pg$major)"
    pgrx_root=/var/tmp/identity-pgrx$major
    rm -rf "$pgrx_root"; mkdir -p "$pgrx_root"; chown "$IDENTITY_OS_USER" "$pgrx_root"
    cargo pgrx test "pg$major" --runas "$IDENTITY_OS_USER" --pgdata "$pgrx_root/pgdata" 2>&1 \
        | grep -vE '^\s+(Compiling|Checking)' | tee "$logs/$major-pgrx.log" || status=1
    count "$logs/$major-pgrx.log"
    took "#[pg_test] on $major"

    echo "== 3/9 SQL scenario suite on PostgreSQL $major (pg_test/, installed extension, real roles)"
    # `cargo pgrx test` installed its test build; install the real one.
    cargo pgrx install --pg-config "$PG_CONFIG" 2>&1 | tail -n 1
    bash pg_test/run.sh 2>&1 | tee "$logs/$major-scenarios.log" || status=1
    # ... and each file alone, in a database where no other file ran.
    bash pg_test/alone.sh 2>&1 | tee -a "$logs/$major-scenarios.log" || status=1
    grep -E '^scenarios( alone)?:' "$logs/$major-scenarios.log" > "$logs/$major-scenarios.summary" || true
    count "$logs/$major-scenarios.summary"
    took "scenarios on $major"

    echo "== 4/9 interop on PostgreSQL $major (real drivers, JSON-schema validation)"
    bash interop/run.sh 2>&1 | tee "$logs/$major-interop.log" || status=1
    grep -E '^[0-9]+ (passed|failed)|^[0-9]+ errors? in|^js interop: ' "$logs/$major-interop.log" > "$logs/$major-interop.summary" || true
    count "$logs/$major-interop.summary"
    took "interop on $major"

    if runs_on "$IDENTITY_CONSOLE_MAJORS"; then
        echo "== 5/9 admin console on PostgreSQL $major (headless Chromium, playwright-core)"
        IDENTITY_CONSOLE_SCREENSHOTS="$PWD/target/console-screenshots/pg$major" bash console/e2e/run.sh 2>&1 \
            | tee "$logs/$major-console.log" || status=1
        grep -E '^console: ' "$logs/$major-console.log" > "$logs/$major-console.summary" || true
        count "$logs/$major-console.summary"
        took "console on $major"
    fi

    if runs_on "$IDENTITY_REPLICA_MAJORS"; then
        echo "== 6/9 hot standby on PostgreSQL $major (pg_basebackup -R replica)"
        bash pg_test/standby.sh 2>&1 | tee "$logs/$major-standby.log" || status=1
        # ... and a logical-replication subscriber (publication, subscription).
        bash pg_test/logical.sh 2>&1 | tee -a "$logs/$major-standby.log" || status=1
        grep -E '^(standby|logical):' "$logs/$major-standby.log" > "$logs/$major-standby.summary" || true
        count "$logs/$major-standby.summary"
        took "standby and logical on $major"
    fi

    echo "== 7/9 package on PostgreSQL $major (cargo pgrx package into a clean server)"
    bash pg_test/package.sh 2>&1 | tee "$logs/$major-package.log" || status=1
    grep '^package:' "$logs/$major-package.log" > "$logs/$major-package.summary" || true
    count "$logs/$major-package.summary"
    took "package on $major"
    echo "PostgreSQL $major: $((passed - before_passed)) passed, $((failed - before_failed)) failed"
done
echo "== 8/9 upgrade from 0.1.0 on PostgreSQL 15 (pg_test/upgrade.sh)"
bash pg_test/upgrade.sh 2>&1 | tee "$logs/upgrade.log" || status=1
grep '^upgrade:' "$logs/upgrade.log" > "$logs/upgrade.summary" || true
count "$logs/upgrade.summary"
took "upgrade from 0.1.0"

targets=$(for m in $IDENTITY_PG_MAJORS; do if [ "$m" != 15 ]; then echo "$m:link $m:copy"; fi; done | tr "\n" " ")
major=15
if runs_on "$IDENTITY_PG_MAJORS" && [ -n "${targets// }" ]; then
    echo "== 9/9 pg_upgrade from PostgreSQL 15 to ${targets% } (pg_test/pg_upgrade.sh)"
    # Every major of the loop above has the current build installed
    # (upgrade.sh put it back on 15): no second build.
    IDENTITY_PG_UPGRADE_INSTALL=0 IDENTITY_PG_UPGRADE_TARGETS="$targets" bash pg_test/pg_upgrade.sh 2>&1 \
        | tee "$logs/pg_upgrade.log" || status=1
    grep '^pg_upgrade:' "$logs/pg_upgrade.log" > "$logs/pg_upgrade.summary" || true
    count "$logs/pg_upgrade.summary"
    took "pg_upgrade"
fi

echo "== the whole suite took $((SECONDS - started)) s (setup included)"
echo "identity: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
