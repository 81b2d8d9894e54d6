#!/usr/bin/env bash
# verify_api_token and verify_jwt on a real hot standby: a primary and a
# streaming replica made with pg_basebackup -R, both on loopback. Prints
# "standby: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
PRIMARY_PORT=${IDENTITY_PRIMARY_PORT:-28821}
STANDBY_PORT=${IDENTITY_STANDBY_PORT:-28822}
cluster_start standby_primary "$PRIMARY_PORT"
PRIMARY_DIR=$CLUSTER_DIR
STANDBY_DIR="$CLUSTER_ROOT/standby_replica"
cleanup() {
    cluster_stop_dir "$STANDBY_DIR"
    CLUSTER_DIR=$PRIMARY_DIR cluster_stop
}
trap cleanup EXIT
passed=0; failed=0
check() { # name, expected, actual
    if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok   $1";
    else failed=$((failed + 1)); echo "FAIL $1: expected [$2], got [$3]"; fi
}
p() { psql -qAtX -h "$PRIMARY_DIR" -p "$PRIMARY_PORT" -v ON_ERROR_STOP=1 "$@"; }
s() { psql -qAtX -h "$STANDBY_DIR" -p "$STANDBY_PORT" "$@"; }

p -c "create extension identity" >/dev/null
p -c "insert into identity.users (id, email) values ('00000000-0000-0000-0000-00000000a001', 'replica@example.com')" >/dev/null
token=$(p -c "select token from identity.create_api_token('00000000-0000-0000-0000-00000000a001', 'standby test')")
revoked=$(p -c "select token from identity.create_api_token('00000000-0000-0000-0000-00000000a001', 'to revoke')")
jwt=$(p -c "select identity.sign_jwt('{\"sub\": \"00000000-0000-0000-0000-00000000a001\"}')")
derived=$(p -c "select identity.exchange_api_token('$revoked')")

# The replica: a base backup with -R (standby.signal + primary_conninfo).
cluster_stop_dir "$STANDBY_DIR"; rm -rf "$STANDBY_DIR"; mkdir -p "$STANDBY_DIR"; chown "$IDENTITY_OS_USER" "$STANDBY_DIR"
as_pg "$PG_BIN/pg_basebackup" -h "$PRIMARY_DIR" -p "$PRIMARY_PORT" -U postgres -D "$STANDBY_DIR/data" -R -X stream >/dev/null
as_pg tee -a "$STANDBY_DIR/data/postgresql.conf" >/dev/null <<CONF
port = $STANDBY_PORT
unix_socket_directories = '$STANDBY_DIR'
hot_standby = on
CONF
as_pg "$PG_BIN/pg_ctl" -D "$STANDBY_DIR/data" -l "$STANDBY_DIR/server.log" -w start >/dev/null

wait_replay() { # until the standby has replayed the primary's current WAL
    local lsn; lsn=$(p -c "select pg_current_wal_lsn()")
    for _ in $(seq 100); do
        [ "$(s -c "select pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = "t" ] && return 0
        sleep 0.1
    done
    echo "standby did not catch up" >&2; return 1
}
wait_replay
check "the replica is in recovery" "t" "$(s -c 'select pg_is_in_recovery()')"
check "verify_api_token on the standby" "00000000-0000-0000-0000-00000000a001" \
      "$(s -c "select identity.verify_api_token('$token')->>'user_id'")"
check "verify_jwt on the standby" "00000000-0000-0000-0000-00000000a001" \
      "$(s -c "select identity.verify_jwt('$jwt')->>'sub'")"
last=${token: -1}; other=x; [ "$last" = x ] && other=y
check "a typo is refused on the standby" "28000" \
      "$(s -c "\\set VERBOSITY sqlstate" -c "select identity.verify_api_token('${token%?}$other')" 2>&1 | grep -oE '^ERROR: +[0-9A-Z]{5}' | awk '{print $2}')"
check "a JWT exchanged for an API token verifies on the standby" "t" \
      "$(s -c "select (identity.try_verify_jwt('$derived')).valid")"
p -c "select identity.revoke_api_token(id) from identity.api_tokens where name = 'to revoke'" >/dev/null
wait_replay
check "a JWT derived from a token revoked on the primary is refused on the standby" \
      "the API token it was derived from is revoked, expired or gone" \
      "$(s -c "select (identity.try_verify_jwt('$derived')).reason")"
check "revocation on the primary is enforced on the standby" "28000" \
      "$(s -c "\\set VERBOSITY sqlstate" -c "select identity.verify_api_token('$revoked')" 2>&1 | grep -oE '^ERROR: +[0-9A-Z]{5}' | awk '{print $2}')"
check "the standby wrote no last_used_at (it cannot)" "" \
      "$(p -c "select last_used_at from identity.api_tokens where name = 'standby test'")"
p -c "select identity.verify_api_token('$token') is not null" >/dev/null
check "the primary writes last_used_at" "t" \
      "$(p -c "select last_used_at is not null from identity.api_tokens where name = 'standby test'")"
# One long-lived standby session whose per-backend copies (src/cache.rs)
# hold the revocations and the user's state: changes committed on the
# primary reach it through the replayed invalidation messages.
p -c "insert into identity.users (id, email) values ('00000000-0000-0000-0000-00000000a002', 'cached@example.com')" >/dev/null
jwt_a=$(p -c "select identity.issue_access_token('00000000-0000-0000-0000-00000000a002')")
jwt_b=$(p -c "select identity.issue_access_token('00000000-0000-0000-0000-00000000a002')")
sid_a=$(p -c "select identity.decode_jwt('$jwt_a')#>>'{payload,session_id}'")
wait_replay
primary="psql -qAtX -h $PRIMARY_DIR -p $PRIMARY_PORT -v ON_ERROR_STOP=1"
session=$(s -v ON_ERROR_STOP=1 <<SQL 2>&1
select 'before: ' || (identity.try_verify_jwt('$jwt_a')).valid || ' ' || (identity.try_verify_jwt('$jwt_b')).valid;
select 'again: ' || (identity.try_verify_jwt('$jwt_a')).valid || ' ' || (identity.try_verify_jwt('$jwt_b')).valid;
\! $primary -c "select identity.revoke_session('$sid_a')" -c "select identity.suspend_user('00000000-0000-0000-0000-00000000a002')" >/dev/null
do \$\$ begin
  for i in 1..100 loop
    exit when exists (select 1 from identity.users where id = '00000000-0000-0000-0000-00000000a002' and status = 'suspended');
    perform pg_sleep(0.1);
  end loop;
  perform pg_sleep(0.2);
end \$\$;
select 'after: ' || (identity.try_verify_jwt('$jwt_a')).reason || ' / ' || (identity.try_verify_jwt('$jwt_b')).reason;
SQL
)
check "a standby session's cached state is valid, then sees the primary's revocation and suspension" \
      "before: true true|again: true true|after: session revoked / user suspended" "$(echo "$session" | paste -sd '|')"
# A signing key revoked on the primary: a standby session that verified a
# token with it (and cached the parsed key) refuses it once replayed.
kid=$(p -c "select identity.generate_signing_key('EdDSA')")
p -c "select identity.activate_signing_key('$kid')" >/dev/null
keyed=$(p -c "select identity.sign_jwt('{\"sub\": \"00000000-0000-0000-0000-00000000a001\"}')")
p -c "select identity.activate_signing_key(identity.generate_signing_key('ES256'))" >/dev/null
wait_replay
session=$(s -v ON_ERROR_STOP=1 <<SQL 2>&1
select 'before: ' || (identity.try_verify_jwt('$keyed')).valid;
\! $primary -c "select identity.revoke_signing_key('$kid')" >/dev/null
do \$\$ begin
  for i in 1..100 loop
    exit when exists (select 1 from identity.signing_keys where kid = '$kid' and status = 'revoked');
    perform pg_sleep(0.1);
  end loop;
end \$\$;
select 'after: ' || (identity.try_verify_jwt('$keyed')).reason;
select 'jwks: ' || count(*) from jsonb_array_elements(identity.jwks()->'keys') k where k->>'kid' = '$kid';
SQL
)
check "a key revoked on the primary is refused by a standby session that used it" \
      "before: true|after: key revoked|jwks: 0" "$(echo "$session" | paste -sd '|')"
# Beyond 50,000 revoked rows the primary trusts its shared revocation
# filter; a standby never does (no trigger fires during replay): its session
# probes, and sees a jti revoked on the primary.
p -c "insert into identity.revoked_jwts (jti, expires_at) select 'filler-' || i, now() + interval '1 day' from generate_series(1, 50001) i" >/dev/null
p -c "vacuum analyze identity.revoked_jwts" >/dev/null
p -c "insert into identity.users (id, email) values ('00000000-0000-0000-0000-00000000a003', 'big@example.com')" >/dev/null
big_a=$(p -c "select identity.issue_access_token('00000000-0000-0000-0000-00000000a003')")
big_b=$(p -c "select identity.issue_access_token('00000000-0000-0000-0000-00000000a003')")
jti_a=$(p -c "select identity.decode_jwt('$big_a')#>>'{payload,jti}'")
p -c "select (identity.try_verify_jwt('$big_a')).valid" >/dev/null  # the primary builds its filter
wait_replay
session=$(s -v ON_ERROR_STOP=1 <<SQL 2>&1
select 'before: ' || (identity.try_verify_jwt('$big_a')).valid || ' ' || (identity.try_verify_jwt('$big_b')).valid;
\! $primary -c "select identity.revoke_jwt('$jti_a', now() + interval '1 hour')" >/dev/null
do \$\$ begin
  for i in 1..100 loop
    exit when exists (select 1 from identity.revoked_jwts where jti = '$jti_a');
    perform pg_sleep(0.1);
  end loop;
end \$\$;
select 'after: ' || (select coalesce(reason, 'valid') from identity.try_verify_jwt('$big_a')) || ' / ' || (identity.try_verify_jwt('$big_b')).valid;
SQL
)
check "over 50,000 revoked jtis a standby session probes, and refuses a jti revoked on the primary" \
      "before: true true|after: jti revoked / true" "$(echo "$session" | paste -sd '|')"
echo "standby: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
