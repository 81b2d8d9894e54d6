#!/usr/bin/env bash
# Sets up everything identity needs on a Debian 12 machine, idempotently:
# Debian packages, cargo-pgrx =0.18.1, `cargo pgrx init` against the real
# Postgres 15, and the unprivileged OS user that runs test clusters
# (initdb refuses root). A second run changes nothing and takes seconds.
set -euo pipefail

PGRX_VERSION=0.18.1
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
IDENTITY_OS_USER=${IDENTITY_OS_USER:-identity_pg}
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '== setup: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. Debian packages (clang/libclang for bindgen come with server-dev).
packages=(postgresql-15 postgresql-server-dev-15 postgresql-client-15 sudo
          build-essential pkg-config libclang-dev clang libssl-dev
          python3 python3-venv ca-certificates pgbouncer)
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

# 4. pgrx init against the real pg_config (Debian's /usr/bin one is a wrapper).
if ! grep -qs "pg15 = \"$PG_CONFIG\"" "$HOME/.pgrx/config.toml"; then
    log "cargo pgrx init --pg15 $PG_CONFIG"
    cargo pgrx init --pg15 "$PG_CONFIG"
fi

# 5. The OS user that owns throwaway clusters.
if ! id "$IDENTITY_OS_USER" >/dev/null 2>&1; then
    log "creating OS user $IDENTITY_OS_USER"
    as_root useradd --system --create-home --shell /bin/bash "$IDENTITY_OS_USER"
fi
log "ready (cargo-pgrx $PGRX_VERSION, $("$PG_CONFIG" --version))"
