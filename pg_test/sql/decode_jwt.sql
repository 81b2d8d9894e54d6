\i pg_test/fixtures.sql
-- identity.decode_jwt end to end, as the roles that call it.
set role authenticated;
select identity.decode_jwt(
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c');
select identity.decode_jwt(null) is null as null_in_null_out;
-- Bad input: 22023 with a message that says what is wrong.
select t.err($$select identity.decode_jwt('')$$);
select t.err($$select identity.decode_jwt('abc.def')$$);
select t.err($$select identity.decode_jwt('a.b.c.d')$$);
select t.err($$select identity.decode_jwt('e30=.e30.')$$);
select t.err($$select identity.decode_jwt('bm90IGpzb24.e30.')$$);
select t.err($$select identity.decode_jwt('e30.WzEsMl0.')$$);
select t.err($$select identity.decode_jwt(repeat('a', 1048576))$$);
select t.err($$select identity.decode_jwt(E'\u00e9\u00e9.e30.')$$);
reset role;
-- A role without a grant cannot call it.
set role anon;
select t.err($$select identity.decode_jwt('e30.e30.')$$);
reset role;
-- grant_access: unknown level, unknown role, non-superuser caller.
select t.err($$select identity.grant_access('anon', 'root')$$);
select t.err($$select identity.grant_access('nobody_here', 'user')$$);
select t.err($$select identity.grant_access(null, 'user')$$);
set role service_role;
select t.err($$select identity.grant_access('anon', 'admin')$$);
reset role;
