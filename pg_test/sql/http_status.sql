\i pg_test/fixtures.sql
-- Inside a PostgREST request (request.method set), every error the
-- extension raises leaves as PostgREST's custom error: SQLSTATE PGRST, the
-- message the response body {code, message, details, hint} with our
-- SQLSTATE as code, the detail {status, headers}. Outside a request, the
-- same calls keep their SQLSTATEs (every other scenario file).
insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000000f7', 'http@example.com');
set role authenticated;
select set_config('request.method', 'POST', false) \gset
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-0000000000f7", "role": "authenticated"}', false) \gset
-- 28000: 401 with WWW-Authenticate.
select identity.verify_jwt('a.b.c');
\echo :LAST_ERROR_SQLSTATE
-- 22023: 400.
select identity.create_api_token('00000000-0000-0000-0000-0000000000f7', repeat('n', 300));
\echo :LAST_ERROR_SQLSTATE
-- P0002: 404.
select identity.revoke_api_token('00000000-0000-0000-0000-00000000dead');
\echo :LAST_ERROR_SQLSTATE
-- 42501: 403 (a user may not suspend themself).
select identity.suspend_user('00000000-0000-0000-0000-0000000000f7');
\echo :LAST_ERROR_SQLSTATE
-- Postgres' own refusal (no EXECUTE on an admin function) is not ours:
-- PostgREST maps it itself.
select identity.create_organization('not mine');
\echo :LAST_ERROR_SQLSTATE
-- pre_request's PT401: 401 through the same path.
select set_config('request.headers', '{"x-api-key": "idt_000000000000000000000000000000000000"}', false) \gset
select identity.pre_request();
\echo :LAST_ERROR_SQLSTATE
select set_config('request.headers', '', false) \gset
-- A handler that catches the error sees our SQLSTATE: only what leaves is
-- rewritten.
select t.err($$select identity.verify_jwt('a.b.c')$$) as caught;
-- Postgres' own errors are not ours: unchanged.
select 1 / 0;
\echo :LAST_ERROR_SQLSTATE
-- Outside a request, unchanged.
select set_config('request.method', '', false) \gset
select identity.verify_jwt('a.b.c');
\echo :LAST_ERROR_SQLSTATE
reset role;
select set_config('request.jwt.claims', '', false) \gset
