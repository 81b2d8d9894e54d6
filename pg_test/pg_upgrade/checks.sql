-- What the data before.sql made on PostgreSQL 15 must still give after
-- pg_upgrade (pg_test/pg_upgrade.sh runs it on the new major, before and
-- after ALTER EXTENSION identity UPDATE): one row per check, "name|t".
-- Runs as the superuser.
\set ON_ERROR_STOP 1
select 'api token verifies to the same principal' as check,
       (identity.verify_api_token(v) - 'last_used_at') = (select p.v::jsonb from before p where p.k = 'principal') as ok
from before where k = 'token'
union all
select 'service user token verifies', identity.verify_api_token(v)->>'user_id' = (select s.v from before s where s.k = 'service')
from before where k = 'service_token'
union all
select 'revoked api token stays refused (28000)', public.refused(v) from before where k = 'revoked_token'
union all
select format('%s verifies', k), identity.verify_jwt(v)->>'sub' = (select u.v from before u where u.k = 'user')
from before where k in ('hs256_jwt', 'es256_jwt', 'rs256_jwt', 'eddsa_jwt', 'access_jwt')
union all
select 'jwt with a revoked jti stays refused', (identity.try_verify_jwt(v)).reason = 'jti revoked'
from before where k = 'jti_revoked_jwt'
union all
select 'jwt of a revoked session stays refused', (identity.try_verify_jwt(v)).reason = 'session revoked'
from before where k = 'session_revoked_jwt'
union all
select 'the active EdDSA key still signs (its private key decrypts)',
       (select p.v from before p where p.k = 'kid_EdDSA') = identity.decode_jwt(identity.sign_jwt('{"aud": "authenticated"}'))#>>'{header,kid}'
union all
select 'jwks unchanged', identity.jwks()::text = v from before where k = 'jwks'
union all
select 'signing keys unchanged', (select string_agg(kid || ':' || status, ',' order by kid) from identity.signing_keys) = v
from before where k = 'signing_keys'
union all
select 'system credential decrypts', identity.reveal_credential_secret(v::uuid) = 'sk-ant-pgup-system-0002'
from before where k = 'system_credential'
union all
select 'registered issuers unchanged',
       (select jsonb_agg(i - 'jwks_fetched_at' - 'jwks_failed_at' - 'jwks_error' - 'updated_at' - 'version' order by i->>'issuer')
        from identity.list_issuers() i) = v::jsonb
from before where k = 'issuers'
union all
select format('%s kept (%s rows)', k, v),
       v::bigint = case k when 'revoked_jwts' then (select count(*) from identity.revoked_jwts)
                          when 'revoked_sessions' then (select count(*) from identity.revoked_sessions)
                          when 'users' then (select count(*) from identity.users)
                          when 'api_tokens' then (select count(*) from identity.api_tokens) end
from before where k in ('revoked_jwts', 'revoked_sessions', 'users', 'api_tokens')
union all
select 'audit chain verifies over every row made before',
       (identity.verify_audit_log()->>'valid')::boolean
       and (identity.verify_audit_log()->>'rows_checked')::bigint >= (select v::bigint from before where k = 'audit_rows')
       and (select v::jsonb->>'valid' from before where k = 'audit_valid') = 'true';
-- The user's own credential, as the user (owner-only).
select set_config('request.jwt.claims', jsonb_build_object('sub', v, 'role', 'authenticated')::text, false)
from before where k = 'user' \g /dev/null
select 'own credential decrypts' as check,
       identity.reveal_credential_secret(v::uuid) = 'sk-or-v1-pgup-secret-0001' as ok
from before where k = 'credential';
select set_config('request.jwt.claims', '', false) \g /dev/null
