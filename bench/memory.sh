#!/usr/bin/env bash
# Per-backend memory of verification (issue 19): one backend verifies
# 10,000 API tokens, then 10,000 JWTs, then 20,000 more of each (the same
# 1,000 API tokens and 10,000 distinct JWTs again); after each step it reports
# the backend's Postgres memory contexts (pg_backend_memory_contexts) and its
# private memory (RssAnon: the Rust heap of the per-backend copies and the
# signature cache too; not the shared buffers it touched). Bounded means the second round adds
# (almost) nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
cluster_start bench_memory "${IDENTITY_BENCH_PORT:-28827}"
trap cluster_stop EXIT
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
create extension identity;
create schema bench;
select identity.create_organization('Bench') as org \gset
create table bench.users as
  select (identity.provision_user('mem' || i, 'mem' || i || '@bench.test', null, null, :'org') -> 'user' ->> 'id')::uuid as id
  from generate_series(1, 100) i;
create table bench.api as
  select t.token from bench.users u, generate_series(1, 10) k,
       lateral identity.create_api_token(u.id, 'bench' || k) t;
create table bench.jwts as
  select identity.issue_access_token(u.id) as token from bench.users u, generate_series(1, 100) k;
SQL
psql -qAtX -v ON_ERROR_STOP=1 <<'SQL'
select pg_backend_pid() as pid \gset
\setenv BACKEND :pid
\set contexts 'select ''  Postgres memory contexts: '' || (sum(total_bytes) / 1024)::bigint || '' kB'' from pg_catalog.pg_backend_memory_contexts'
select identity.verify_api_token(token) is not null from bench.api limit 1 \g /dev/null
select identity.verify_jwt(token) is not null from bench.jwts limit 1 \g /dev/null
\echo start (one call each)
:contexts;
\! sed -n 's/^RssAnon:\s*/  private memory (RssAnon): /p' /proc/$BACKEND/status
select count(identity.verify_api_token(token)) from bench.api, generate_series(1, 10) \g /dev/null
\echo after 10,000 verify_api_token (1,000 tokens)
:contexts;
\! sed -n 's/^RssAnon:\s*/  private memory (RssAnon): /p' /proc/$BACKEND/status
select count(identity.verify_jwt(token)) from bench.jwts \g /dev/null
\echo after 10,000 verify_jwt (10,000 distinct tokens)
:contexts;
\! sed -n 's/^RssAnon:\s*/  private memory (RssAnon): /p' /proc/$BACKEND/status
select count(identity.verify_api_token(token)) from bench.api, generate_series(1, 20) \g /dev/null
select count(identity.verify_jwt(token)) from bench.jwts, generate_series(1, 2) \g /dev/null
\echo after 20,000 more of each
:contexts;
\! sed -n 's/^RssAnon:\s*/  private memory (RssAnon): /p' /proc/$BACKEND/status
SQL
