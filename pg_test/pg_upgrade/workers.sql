-- After pg_upgrade (pg_test/pg_upgrade.sh): the background workers run on
-- the new major, and the shared revocation filter is in use. One row per
-- check, "name|t". Runs as the superuser; psql variables: fresh (an access
-- token issued on the new major, not revoked).
\set ON_ERROR_STOP 1
-- Whether a backend of that type shows in pg_stat_activity for this
-- database within `seconds` (sampled every 5 ms: the audit writer leaves
-- 250 ms after its last record).
create function pg_temp.seen(kind text, seconds float8) returns boolean language plpgsql as $$
declare
    deadline timestamptz := clock_timestamp() + make_interval(secs => seconds);
begin
    loop
        perform pg_stat_clear_snapshot();
        if exists (select 1 from pg_stat_activity where backend_type = kind and datname = current_database()) then
            return true;
        end if;
        exit when clock_timestamp() > deadline;
        perform pg_sleep(0.005);
    end loop;
    return false;
end
$$;
-- Whether `query` (a boolean) becomes true within `seconds`.
create function pg_temp.eventually(query text, seconds float8) returns boolean language plpgsql as $$
declare
    deadline timestamptz := clock_timestamp() + make_interval(secs => seconds);
    ok boolean;
begin
    loop
        execute query into ok;
        if ok then
            return true;
        end if;
        exit when clock_timestamp() > deadline;
        perform pg_sleep(0.05);
    end loop;
    return false;
end
$$;

-- The audit writer: a revealed secret is queued in shared memory and
-- written by the database's writer, started on demand.
select count(*) as reveals_before from identity.audit_log where action = 'credential.revealed' \gset
select identity.reveal_credential_secret(v::uuid) = 'sk-ant-pgup-system-0002' as revealed
from before where k = 'system_credential' \gset
select 'the audit writer runs (pg_stat_activity)' as check, :'revealed'::boolean and pg_temp.seen('identity audit writer', 10) as ok;
select 'the audit writer wrote the reveal',
       pg_temp.eventually(format('select count(*) > %s from identity.audit_log where action = %L',
                                 :reveals_before, 'credential.revealed'), 10);
select 'the audit chain verifies with the rows written after the upgrade',
       pg_temp.eventually($q$select (identity.verify_audit_log()->>'valid')::boolean$q$, 5);

-- The JWKS fetcher: a token naming the issuer with a jwks_uri wakes it
-- (the token itself is refused: its key is not the issuer's).
select identity.authenticate(identity.sign_jwt('{"iss": "https://uri.pgup.test", "sub": "ext-pgup", "aud": "pgup-app"}')) is null
       as refused \gset
select 'the JWKS fetcher runs (pg_stat_activity)', :'refused'::boolean and pg_temp.seen('identity jwks fetcher', 10);
select 'the JWKS fetcher fetched the jwks_uri on the new server',
       pg_temp.eventually($q$select (i->>'jwks_fetched_at')::timestamptz > pg_postmaster_start_time() and (i->>'key_count')::int = 1
                              from identity.list_issuers() i where i->>'issuer' = 'https://uri.pgup.test'$q$, 10);

-- The shared revocation filter (each table holds over 1,000 rows): a new
-- connection's check of a token probes neither revocation table (no copy
-- loaded, the filter rules the token's jti and session out), and a jti
-- revoked before the upgrade is a "maybe", probed, and refused. Index scans
-- read inside one transaction, so the differences are exact. The filter is
-- built once per server, by the first check that finds a table estimated
-- over 1,000 rows (after the ANALYZE pg_upgrade asks for): this one.
select (identity.try_verify_jwt(v)).valid as builds_the_filter from before where k = 'access_jwt' \g /dev/null
\c
begin;
select pg_stat_get_xact_numscans('identity.revoked_jwts_pkey'::regclass) as jwts0,
       pg_stat_get_xact_numscans('identity.revoked_sessions_pkey'::regclass) as sessions0 \gset
select (identity.try_verify_jwt(:'fresh')).valid as fresh_valid \gset
select pg_stat_get_xact_numscans('identity.revoked_jwts_pkey'::regclass) as jwts1,
       pg_stat_get_xact_numscans('identity.revoked_sessions_pkey'::regclass) as sessions1 \gset
select (identity.try_verify_jwt(v)).reason = 'jti revoked' as refused from before where k = 'jti_revoked_jwt' \gset
select 'the filter answers for a new token (no probe, no copy)', :'fresh_valid'::boolean and :jwts1 = :jwts0 and :sessions1 = :sessions0;
select 'a jti revoked before the upgrade: probed once through the filter, refused',
       :'refused'::boolean and pg_stat_get_xact_numscans('identity.revoked_jwts_pkey'::regclass) = :jwts1 + 1;
commit;
