#!/usr/bin/env bash
# pg_upgrade of a database that uses identity, from PostgreSQL 15 to 17 and
# to 18, with --link and in copy mode (IDENTITY_PG_UPGRADE_TARGETS, by
# default "17:link 17:copy 18:link 18:copy"):
#   1. a PostgreSQL 15 cluster (Debian 12's) with data made by this build
#      (pg_test/pg_upgrade/before.sql): users, a service user, API tokens,
#      HS256, ES256, RS256 and EdDSA JWTs and access tokens, a revoked jti and
#      a revoked session among over 1,000 revocations of each kind (so the
#      shared revocation filter holds them), credentials sealed under
#      identity.encryption_key, registered issuers (one fetched from a
#      loopback jwks_uri), the audit trail; and what it answered;
#   2. pg_attver: Debian's 15.20 stamps every column it creates with that
#      attribute option, which 17 and 18 do not know, so pg_upgrade's
#      restore would fail; pg_test/pg_upgrade/strip_attver.sql removes it
#      first, in every database (README "Upgrading PostgreSQL's major");
#   3. for each target: a copy of the stopped 15 cluster, a new cluster
#      initialised by the target's initdb with the same locale, encoding,
#      preload and secrets (no data checksums: 15's cluster has none, and
#      18's initdb turns them on by default), pg_upgrade as the OS user;
#      then on the new major: every check of pg_test/pg_upgrade/checks.sql
#      (tokens verify, revoked ones stay refused, credentials decrypt, the
#      audit chain verifies, issuers and keys unchanged), the workers and
#      the filter (pg_test/pg_upgrade/workers.sql), the extension's catalog
#      equal to a fresh install's on that major (pg_test/upgrade/catalog.sql),
#      and ALTER EXTENSION identity UPDATE a no-op
#      (version and catalog unchanged, the checks again);
#   4. every server stops with a fast shutdown while the JWKS fetcher runs
#      (pg_upgrade needs the old one stopped).
# The extension is installed into each major first (the debug build, as
# scripts/test.sh does; IDENTITY_PG_UPGRADE_INSTALL=0 skips that when the
# current build is installed already). Prints "pg_upgrade: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
export IDENTITY_PG=15
. scripts/cluster.sh
OLD_BIN=$PG_BIN
TARGETS=${IDENTITY_PG_UPGRADE_TARGETS:-17:link 17:copy 18:link 18:copy}
OLD_PORT=${IDENTITY_PG_UPGRADE_PORT:-28830}
NEW_PORT=$((OLD_PORT + 1))
JWKS_PORT=$((OLD_PORT + 2))
ROOT=$CLUSTER_ROOT/pg_upgrade
passed=0; failed=0
check() { # name, expected, actual
    if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok   $1";
    else failed=$((failed + 1)); echo "FAIL $1: expected [$2], got [$3]"; fi
}
checks_from() { # label, then psql output lines "name|ok"
    local label=$1 name ok n=0
    while IFS='|' read -r name ok; do
        [ -n "$name" ] || continue
        n=$((n + 1)); check "$label: $name" "t" "$ok"
    done
    [ "$n" -gt 0 ] || check "$label: the checks ran" "some rows" "none"
}
run_checks() { # label, command printing "name|ok" lines (psql -f FILE)
    local label=$1 out; shift
    out=$("$@" 2>"$ROOT/stderr") || check "$label: $* ran without error" ok "$(tail -n 3 "$ROOT/stderr" | tr '\n' ' ')"
    checks_from "$label" <<<"$out"
}
pg_config_of() { (IDENTITY_PG=$1; . scripts/pg.sh; echo "$PG_CONFIG"); }
bin_of() { "$(pg_config_of "$1")" --bindir; }

init_cluster() { # DIR BIN [initdb options...]: initdb + the test configuration
    local dir=$1 bin=$2; shift 2
    rm -rf "$dir"; mkdir -p "$dir"; chown "$IDENTITY_OS_USER" "$dir"
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 "$@" >/dev/null
    as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_preload_libraries = 'identity'
identity.jwt_secret = '$IDENTITY_TEST_JWT_SECRET'
identity.encryption_key = '$IDENTITY_TEST_ENCRYPTION_KEY'
identity.jwks_allow_private_addresses = on
fsync = off
log_min_messages = warning
CONF
}
start() { as_pg "$2/pg_ctl" -D "$1/data" -l "$1/server.log" -o "-p $3" -w start >/dev/null; }
stop() { # DIR BIN: a fast shutdown (fails when it does not end within 20 s)
    [ ! -f "$1/data/postmaster.pid" ] || as_pg "$2/pg_ctl" -D "$1/data" -m fast -t 20 -w stop >/dev/null 2>&1
}
kill_server() { # DIR BIN: an immediate shutdown, for the clean-up
    [ ! -f "$1/data/postmaster.pid" ] || as_pg "$2/pg_ctl" -D "$1/data" -m immediate -w stop >/dev/null 2>&1 || true
}

jwks_pid=
cleanup() {
    kill_server "$ROOT/old" "$OLD_BIN"
    for t in $TARGETS; do kill_server "$ROOT/new-${t%%:*}" "$(bin_of "${t%%:*}")"; done
    [ -n "$jwks_pid" ] && kill "$jwks_pid" 2>/dev/null || true
}
trap cleanup EXIT
mkdir -p "$CLUSTER_ROOT"; chown "$IDENTITY_OS_USER" "$CLUSTER_ROOT"
rm -rf "$ROOT"; mkdir -p "$ROOT"; chown "$IDENTITY_OS_USER" "$ROOT"

if [ "${IDENTITY_PG_UPGRADE_INSTALL:-1}" != 0 ]; then
    for m in 15 $(for t in $TARGETS; do echo "${t%%:*}"; done | sort -u); do
        echo "-- installing the extension into PostgreSQL $m"
        cargo pgrx install --pg-config "$(pg_config_of "$m")" 2>&1 | tail -n 1
    done
fi

# The key server the uri issuer's keys are fetched from (RFC 8037's Ed25519
# example public key).
echo '{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "rfc8037", "alg": "EdDSA", "use": "sig"}]}' \
    > "$ROOT/jwks.json"
python3 pg_test/pg_upgrade/jwks_server.py "$JWKS_PORT" "$ROOT/jwks.json" &
jwks_pid=$!

echo "-- PostgreSQL 15 ($("$OLD_BIN/postgres" --version)): data made by this build"
init_cluster "$ROOT/old" "$OLD_BIN"
start "$ROOT/old" "$OLD_BIN" "$OLD_PORT"
old() { "$OLD_BIN/psql" -qAtX -v ON_ERROR_STOP=1 -h "$ROOT/old" -p "$OLD_PORT" -U postgres "$@"; }
old -d postgres -c "create database app" >/dev/null
old -d app -v jwks_uri="http://127.0.0.1:$JWKS_PORT/jwks.json" -f pg_test/pg_upgrade/before.sql > "$ROOT/before.out"
check "15: before.sql kept every value" "0" "$(grep -c '^kept:.*|f$' "$ROOT/before.out" || true)"
run_checks "15, before pg_upgrade" old -d app -f pg_test/pg_upgrade/checks.sql
version=$(old -d app -c "select extversion from pg_extension where extname = 'identity'")

# pg_attver (see the header): how many of our columns carry it, and which
# majors refuse it; then removed in every database.
stamped=$(old -d app -c "select count(*) from pg_attribute where attrelid >= 16384
                          and array_to_string(attoptions, ',') like '%pg\_attver=%'")
echo "-- pg_attver on $stamped columns of database app's own relations (Debian's 15: $("$OLD_BIN/postgres" --version))"
for db in $(old -d postgres -c "select datname from pg_database where datallowconn order by 1"); do
    n=$(old -d "$db" -f pg_test/pg_upgrade/strip_attver.sql)
    echo "   $db: pg_attver removed from $n columns"
done
check "15: no column of ours carries pg_attver any more" "0" \
      "$(old -d app -c "select count(*) from pg_attribute where attrelid >= 16384
                        and array_to_string(attoptions, ',') like '%pg\_attver=%'")"
# With the JWKS fetcher running (a fetch due every 2 s): it must leave.
check "15: the server stops (fast shutdown, the JWKS fetcher running)" ok "$(stop "$ROOT/old" "$OLD_BIN" && echo ok)"
kill_server "$ROOT/old" "$OLD_BIN"

for target in $TARGETS; do
    major=${target%%:*}; mode=${target#*:}
    new_bin=$(bin_of "$major")
    label="15 -> $major ($mode)"
    echo "-- pg_upgrade $label"
    work=$ROOT/new-$major
    options=(); [ "$major" -ge 18 ] && options=(--no-data-checksums)
    init_cluster "$work" "$new_bin" "${options[@]}"
    cp -a "$ROOT/old/data" "$work/old-data"
    flag=--copy; [ "$mode" = link ] && flag=--link
    started=$(date +%s)
    if as_pg bash -c "cd '$work' && '$new_bin/pg_upgrade' -U postgres -b '$OLD_BIN' -B '$new_bin' -d '$work/old-data' -D '$work/data' \
                      -p $OLD_PORT -P $NEW_PORT -s '$work' $flag" > "$work/pg_upgrade.log" 2>&1; then
        check "$label: pg_upgrade succeeds ($(( $(date +%s) - started )) s)" ok ok
    else
        tail -n 20 "$work/pg_upgrade.log"
        find "$work/data" -path '*pg_upgrade_output.d*' -name '*.log' -exec tail -n 20 {} + 2>/dev/null || true
        check "$label: pg_upgrade succeeds" ok failed
        continue
    fi
    start "$work" "$new_bin" "$NEW_PORT"
    new() { "$new_bin/psql" -qAtX -v ON_ERROR_STOP=1 -h "$work" -p "$NEW_PORT" -U postgres -d app "$@"; }
    check "$label: the server is PostgreSQL $major" "$major" "$(new -c "select current_setting('server_version_num')::int / 10000")"
    check "$label: extversion unchanged" "$version" "$(new -c "select extversion from pg_extension where extname = 'identity'")"
    run_checks "$label" new -f pg_test/pg_upgrade/checks.sql
    # What pg_upgrade tells users to run next: the planner's statistics are
    # not carried over (reltuples -1), and until ANALYZE a backend copies a
    # revocation table (up to 50,000 rows) instead of asking the shared
    # filter, which it uses only for a table estimated over 1,000 rows.
    "$new_bin/vacuumdb" -h "$work" -p "$NEW_PORT" -U postgres --all --analyze-in-stages >/dev/null
    fresh=$(new -c "select identity.issue_access_token(v::uuid) from before where k = 'user'")
    run_checks "$label" new -v fresh="$fresh" -f pg_test/pg_upgrade/workers.sql
    # The catalog pg_upgrade made equals a fresh CREATE EXTENSION's on the
    # new major (not 15's: each major deparses and registers some things
    # its own way), with the same grant levels.
    new -f pg_test/upgrade/catalog.sql > "$work/catalog.before-update"
    new -d postgres -c "create database fresh" >/dev/null
    new -d fresh -c "create extension identity" -c "select identity.grant_access('authenticated', 'user')" \
        -c "select identity.grant_access('service_role', 'admin')" >/dev/null
    new -d fresh -f pg_test/upgrade/catalog.sql > "$work/catalog.fresh"
    # Two differences that are not one, normalised on both sides: a table or
    # sequence whose ACL is the owner's default privileges spelled out
    # (CREATE EXTENSION's GRANT/REVOKE leave it so) comes back as no ACL
    # (the same privileges: pg_dump writes nothing for a default ACL), and a
    # CHECK's expression is the one 15 deparsed and the new major parsed
    # again ("(a AND b) AND c" becomes "a AND b AND c"): its parentheses
    # are not compared.
    normalise() {
        sed -E -e 's/ acl=\{postgres=(arwdDxtm?|rwU)\/postgres\} / acl= /' \
               -e '/^constraint [^ ]+ CHECK /s/[()]//g' "$1"
    }
    normalise "$work/catalog.fresh" > "$work/catalog.fresh.n"
    normalise "$work/catalog.before-update" > "$work/catalog.before-update.n"
    if diff -u "$work/catalog.fresh.n" "$work/catalog.before-update.n" > "$work/catalog.diff"; then
        check "$label: the extension's catalog equals a fresh install's on $major ($(wc -l < "$work/catalog.fresh") lines)" same same
    else
        head -40 "$work/catalog.diff"
        check "$label: the extension's catalog equals a fresh install's" same "$(grep -c '^[-+][^-+]' "$work/catalog.diff") lines differ"
    fi
    echo "   ALTER EXTENSION identity UPDATE"
    check "$label: ALTER EXTENSION identity UPDATE has nothing to do" \
          "NOTICE:  version \"$version\" of extension \"identity\" is already installed" \
          "$(new -c "alter extension identity update" 2>&1)"
    check "$label: extversion unchanged by the update" "$version" \
          "$(new -c "select extversion from pg_extension where extname = 'identity'")"
    new -f pg_test/upgrade/catalog.sql > "$work/catalog.after-update"
    check "$label: catalog unchanged by the update" "" "$(diff "$work/catalog.before-update" "$work/catalog.after-update" | head -5)"
    run_checks "$label, after UPDATE" new -f pg_test/pg_upgrade/checks.sql
    check "$label: the new server stops (fast shutdown)" ok "$(stop "$work" "$new_bin" && echo ok)"
    kill_server "$work" "$new_bin"
    rm -rf "$work"
done
echo "pg_upgrade: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
