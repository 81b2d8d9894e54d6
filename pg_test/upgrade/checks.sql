-- What 0.1.0's data must still give (pg_test/upgrade.sh runs it with the new
-- library before ALTER EXTENSION UPDATE, and again after): one row per
-- check, "name|t". Runs as the superuser.
\set ON_ERROR_STOP 1
select 'api token verifies to the same principal' as check,
       (identity.verify_api_token(v) - 'last_used_at') = (select p.v::jsonb from before p where p.k = 'principal') as ok
from before where k = 'token'
union all
select 'service user token verifies', identity.verify_api_token(v)->>'user_id' = (select s.v from before s where s.k = 'service')
from before where k = 'service_token'
union all
select 'revoked token stays refused', public.refused(v) from before where k = 'revoked_token'
union all
select 'HS256 JWT verifies', identity.verify_jwt(v)->>'sub' = (select u.v from before u where u.k = 'user')
from before where k = 'hs256_jwt'
union all
select 'ES256 JWT verifies', identity.verify_jwt(v)->>'sub' = (select u.v from before u where u.k = 'user')
from before where k = 'es256_jwt'
union all
select 'the active key still signs', (select p.v from before p where p.k = 'kid') =
       convert_from(decode(translate(split_part(identity.sign_jwt('{"aud": "authenticated"}'), '.', 1), '-_', '+/') || '==', 'base64'), 'utf8')::jsonb->>'kid'
union all
select 'jwks unchanged', identity.jwks()::text = v from before where k = 'jwks'
union all
select 'the hook answers the same', identity.custom_access_token_hook(jsonb_build_object(
    'user_id', u.v, 'authentication_method', 'password',
    'claims', jsonb_build_object('iss', 'https://project.supabase.co/auth/v1', 'aud', 'authenticated',
        'exp', 2000000000, 'iat', 1999996400, 'sub', u.v, 'email', 'ada@upgrade.test', 'phone', '',
        'role', 'authenticated', 'aal', 'aal1', 'session_id', '4b938a09-5372-4177-a314-cfa292099ea2',
        'is_anonymous', false)))::text = h.v
from before u, before h where u.k = 'user' and h.k = 'hook'
union all
select 'system credential decrypts', identity.reveal_credential_secret(v::uuid) = 'sk-or-v1-upgrade-system-0002'
from before where k = 'system_credential'
union all
select 'rows and audit trail kept',
       (select count(*) from identity.users)::text = (select v from before where k = 'users')
   and (select count(*) from identity.api_tokens)::text = (select v from before where k = 'api_tokens')
   and (select count(*) from identity.audit_log) >= (select v::bigint from before where k = 'audit_rows');
-- The user's own credential, as the user (owner-only).
select set_config('request.jwt.claims', jsonb_build_object('sub', v, 'role', 'authenticated')::text, false)
from before where k = 'user' \g /dev/null
select 'own credential decrypts' as check,
       identity.reveal_credential_secret(v::uuid) = 'sk-or-v1-upgrade-secret-0001' as ok
from before where k = 'credential';
select set_config('request.jwt.claims', '', false) \g /dev/null
