#!/usr/bin/env bash
# The per-backend copies (src/store/cache.rs) on a logical-replication
# subscriber: a publisher and a subscriber on loopback, the extension's
# cached tables published and subscribed. Logical replication's apply worker
# fires row triggers only, never the statement triggers that invalidate the
# copies on a primary: the row triggers `cached_row_applied` (ENABLE
# REPLICA) do it there. A long-lived subscriber session that loaded its
# copies sees a revoked jti, a revoked session, a suspended user and a
# revoked API token applied from the publisher. Prints
# "logical: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
PUB_PORT=${IDENTITY_PUBLISHER_PORT:-28823}
SUB_PORT=${IDENTITY_SUBSCRIBER_PORT:-28824}
cluster_start logical_sub "$SUB_PORT"
SUB_DIR=$CLUSTER_DIR
cluster_start logical_pub "$PUB_PORT"
PUB_DIR=$CLUSTER_DIR
cleanup() {
    cluster_stop_dir "$SUB_DIR"
    cluster_stop_dir "$PUB_DIR"
}
trap cleanup EXIT
as_pg tee -a "$PUB_DIR/data/postgresql.conf" >/dev/null <<CONF
wal_level = logical
CONF
as_pg "$PG_BIN/pg_ctl" -D "$PUB_DIR/data" -l "$PUB_DIR/server.log" -w restart >/dev/null
passed=0; failed=0
check() { # name, expected, actual
    if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok   $1";
    else failed=$((failed + 1)); echo "FAIL $1: expected [$2], got [$3]"; fi
}
p() { psql -qAtX -h "$PUB_DIR" -p "$PUB_PORT" -v ON_ERROR_STOP=1 "$@"; }
s() { psql -qAtX -h "$SUB_DIR" -p "$SUB_PORT" -v ON_ERROR_STOP=1 "$@"; }
TABLES="identity.organizations, identity.users, identity.deleted_users, identity.api_tokens, identity.revoked_jwts, identity.revoked_sessions"

p -c "create extension identity" >/dev/null
s -c "create extension identity" >/dev/null
p -c "create publication identity_pub for table $TABLES" >/dev/null
p -c "insert into identity.users (id, email) values ('00000000-0000-0000-0000-00000000b001', 'sub1@example.com'), ('00000000-0000-0000-0000-00000000b002', 'sub2@example.com')" >/dev/null
s -c "create subscription identity_sub connection 'host=$PUB_DIR port=$PUB_PORT user=postgres dbname=postgres' publication identity_pub" >/dev/null 2>&1
wait_applied() { # until the subscriber has the row the query `q` looks for
    for _ in $(seq 200); do
        [ "$(s -c "$1")" = "t" ] && return 0
        sleep 0.1
    done
    echo "the subscriber did not apply: $1" >&2; return 1
}
wait_applied "select count(*) = 2 from identity.users"
jwt_jti=$(p -c "select identity.sign_jwt('{\"sub\": \"00000000-0000-0000-0000-00000000b001\", \"jti\": \"logical-jti\"}')")
jwt_sid=$(p -c "select identity.sign_jwt('{\"sub\": \"00000000-0000-0000-0000-00000000b001\", \"session_id\": \"00000000-0000-0000-0000-00000000b5b5\"}')")
jwt_user=$(p -c "select identity.sign_jwt('{\"sub\": \"00000000-0000-0000-0000-00000000b002\"}')")
token=$(p -c "select token from identity.create_api_token('00000000-0000-0000-0000-00000000b001', 'logical')")
wait_applied "select count(*) = 1 from identity.api_tokens"
publisher="psql -qAtX -h $PUB_DIR -p $PUB_PORT -v ON_ERROR_STOP=1"
session=$(s <<SQL 2>&1
select 'before: ' || (identity.try_verify_jwt('$jwt_jti')).valid || ' ' || (identity.try_verify_jwt('$jwt_sid')).valid
       || ' ' || (identity.try_verify_jwt('$jwt_user')).valid || ' ' || (identity.verify_api_token('$token') is not null);
select 'again: ' || (identity.try_verify_jwt('$jwt_jti')).valid || ' ' || (identity.try_verify_jwt('$jwt_sid')).valid
       || ' ' || (identity.try_verify_jwt('$jwt_user')).valid || ' ' || (identity.verify_api_token('$token') is not null);
\! $publisher -c "select identity.revoke_jwt('logical-jti', now() + interval '1 hour')" -c "select identity.revoke_session('00000000-0000-0000-0000-00000000b5b5')" -c "select identity.suspend_user('00000000-0000-0000-0000-00000000b002')" -c "select identity.revoke_api_token(id) from identity.api_tokens where name = 'logical'" >/dev/null
do \$\$ begin
  for i in 1..200 loop
    exit when exists (select 1 from identity.api_tokens where name = 'logical' and revoked_at is not null)
          and exists (select 1 from identity.users where id = '00000000-0000-0000-0000-00000000b002' and status = 'suspended')
          and exists (select 1 from identity.revoked_jwts where jti = 'logical-jti')
          and exists (select 1 from identity.revoked_sessions where session_id = '00000000-0000-0000-0000-00000000b5b5');
    perform pg_sleep(0.1);
  end loop;
end \$\$;
select 'after: ' || (identity.try_verify_jwt('$jwt_jti')).reason || ' / ' || (identity.try_verify_jwt('$jwt_sid')).reason
       || ' / ' || (identity.try_verify_jwt('$jwt_user')).reason;
\set VERBOSITY sqlstate
\set ON_ERROR_STOP 0
select identity.verify_api_token('$token');
SQL
)
check "a subscriber session's copies follow the applied revocations and suspension" \
      "before: true true true true|again: true true true true|after: jti revoked / session revoked / user suspended|ERROR:  28000" \
      "$(echo "$session" | paste -sd '|')"
check "the row triggers fire only where session_replication_role is replica" "6" \
      "$(s -c "select count(*) from pg_catalog.pg_trigger where tgname = 'cached_row_applied' and tgenabled = 'R'")"
s -c "drop subscription identity_sub" >/dev/null
echo "logical: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
