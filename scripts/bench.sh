#!/usr/bin/env bash
# Benchmarks (README "Benchmarks"): sets up what is missing, installs the
# release build, runs the SQL-level benchmarks against in-cluster baselines,
# then the criterion benchmarks of core. Not part of the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
. scripts/pg.sh
cargo pgrx install --release --pg-config "$PG_CONFIG" 2>&1 | tail -n 1
# Everything is also kept in one log, whose lines with a target become the
# summary table at the end.
log=$(mktemp)
exec > >(tee "$log") 2>&1
echo "== hook: identity vs PL/pgSQL baseline (bench/hook.sh)"
bash bench/hook.sh
echo "== JWT HS256: identity vs plain-SQL pgcrypto baseline (bench/jwt.sh)"
. scripts/cluster.sh
export IDENTITY_TEST_JWT_SECRET
bash bench/jwt.sh
echo "== API tokens: verify_api_token vs a primary-key lookup (bench/api_token.sh)"
bash bench/api_token.sh
echo "== identity per transaction: authenticate / pre_request vs request.jwt.claims (bench/authenticate.sh)"
bash bench/authenticate.sh
echo "== audit hash chain: provision_user with 8 clients, chain on vs off (bench/audit.sh)"
bash bench/audit.sh
echo "== RLS helpers per row (bench/rls.sh)"
bash bench/rls.sh
echo "== core (criterion)"
cargo bench -p identity-core --bench core -- --noplot 2>&1 | grep -E '^[a-z].*|time:' || true
echo "== external issuers: authenticate with RS256 / ES256 external tokens vs our own JWTs (bench/external.sh)"
bash bench/external.sh
echo "== per-backend memory after 10,000 verifications (bench/memory.sh)"
bash bench/memory.sh
echo "== flat at scale: 1,000 / 40,000 / 1,000,000 users, tokens, revocations (bench/scale.sh)"
bash bench/scale.sh
echo
echo "== summary: every measure with a target ($(date -u +%F), $(nproc) cores, $("$PG_CONFIG" --version))"
grep -E '\(target' "$log" | sed -E 's/^ +//' | sort -u
