-- Before pg_upgrade from a Debian-built PostgreSQL 15.20 or later: remove
-- the attribute option pg_attver that its server stamps on every column it
-- creates (pg_attribute.attoptions, e.g. {pg_attver=22158952}) from the
-- columns of this database's own relations (oid >= 16384: what pg_dump
-- recreates; the system catalogs' are not carried over). A new major whose
-- server does not know the option refuses pg_upgrade's restore of it
-- ("unrecognized parameter "pg_attver""), and ALTER TABLE ... RESET cannot
-- remove it (the stamping server ignores SET and RESET of it). Other
-- attribute options (n_distinct, ...) are kept. Run as a superuser in every
-- database of the old cluster, with no client connected, right before
-- stopping it for pg_upgrade. Prints how many columns it changed.
\set ON_ERROR_STOP 1
with stripped as (
    update pg_catalog.pg_attribute a
    set attoptions = (select pg_catalog.array_agg(o) from pg_catalog.unnest(a.attoptions) o
                      where o not like 'pg\_attver=%')
    where a.attrelid >= 16384
      and exists (select 1 from pg_catalog.unnest(a.attoptions) o where o like 'pg\_attver=%')
    returning 1
)
select count(*) as stripped from stripped;
