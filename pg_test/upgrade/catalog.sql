-- The extension's catalog as sorted text lines, for comparing an upgraded
-- database with a fresh install (pg_test/upgrade.sh). One line per object
-- property that a user or a client can observe: functions (signature,
-- result, language, symbol, volatility, strictness, parallel safety,
-- security, settings, grants as a set: not the order they were made in,
-- comment), tables and columns (type, default,
-- nullability, identity, grants), indexes, constraints, triggers (and
-- whether they fire), policies, row level security, sequences, schema
-- grants, the extension's members and the tables pg_dump keeps.
with ext as (
    select e.oid, e.extconfig from pg_catalog.pg_extension e where e.extname = 'identity'
), members as (
    select d.classid, d.objid from pg_catalog.pg_depend d, ext
    where d.refclassid = 'pg_catalog.pg_extension'::regclass and d.refobjid = ext.oid and d.deptype = 'e'
), fns as (
    select p.* from pg_catalog.pg_proc p
    join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'identity'
), rels as (
    select c.* from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'identity'
)
select line from (
    select format('function %s(%s) returns %s | %s %s | vol=%s strict=%s parallel=%s secdef=%s leakproof=%s support=%s | config=%s | acl=%s | comment=%s',
                  p.proname, pg_catalog.pg_get_function_arguments(p.oid), pg_catalog.pg_get_function_result(p.oid),
                  l.lanname, case when l.lanname in ('c', 'internal') then p.prosrc else pg_catalog.md5(p.prosrc) end,
                  p.provolatile, p.proisstrict, p.proparallel, p.prosecdef, p.proleakproof,
                  p.prosupport::pg_catalog.regproc, p.proconfig, (select pg_catalog.array_agg(x::text order by x::text) from pg_catalog.unnest(p.proacl) x), pg_catalog.obj_description(p.oid, 'pg_proc')) as line
    from fns p join pg_catalog.pg_language l on l.oid = p.prolang
    union all
    select format('relation %s kind=%s rls=%s force=%s acl=%s comment=%s', c.relname, c.relkind,
                  c.relrowsecurity, c.relforcerowsecurity, (select pg_catalog.array_agg(x::text order by x::text) from pg_catalog.unnest(c.relacl) x), pg_catalog.obj_description(c.oid, 'pg_class'))
    from rels c where c.relkind in ('r', 'p', 'v', 'm', 'S')
    union all
    select format('column %s.%s %s notnull=%s default=%s identity=%s generated=%s acl=%s', c.relname, a.attname,
                  pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated, (select pg_catalog.array_agg(x::text order by x::text) from pg_catalog.unnest(a.attacl) x))
    from rels c join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    left join pg_catalog.pg_attrdef ad on ad.adrelid = c.oid and ad.adnum = a.attnum
    where c.relkind in ('r', 'p', 'v', 'm')
    union all
    select format('index %s', pg_catalog.pg_get_indexdef(i.indexrelid))
    from pg_catalog.pg_index i join rels c on c.oid = i.indrelid
    union all
    select format('constraint %s.%s %s', c.relname, k.conname, pg_catalog.pg_get_constraintdef(k.oid))
    from pg_catalog.pg_constraint k join rels c on c.oid = k.conrelid
    union all
    select format('trigger %s enabled=%s', pg_catalog.pg_get_triggerdef(t.oid), t.tgenabled)
    from pg_catalog.pg_trigger t join rels c on c.oid = t.tgrelid where not t.tgisinternal
    union all
    select format('policy %s.%s %s %s roles=%s using=%s check=%s', p.tablename, p.policyname, p.permissive, p.cmd,
                  p.roles, p.qual, p.with_check)
    from pg_catalog.pg_policies p where p.schemaname = 'identity'
    union all
    select format('sequence %s %s start=%s inc=%s min=%s max=%s cycle=%s', c.relname,
                  pg_catalog.format_type(s.seqtypid, null), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle)
    from pg_catalog.pg_sequence s join rels c on c.oid = s.seqrelid
    union all
    select format('schema %s owner=%s acl=%s comment=%s', n.nspname, n.nspowner::regrole, (select pg_catalog.array_agg(x::text order by x::text) from pg_catalog.unnest(n.nspacl) x),
                  pg_catalog.obj_description(n.oid, 'pg_namespace'))
    from pg_catalog.pg_namespace n where n.nspname = 'identity'
    union all
    select format('member %s', pg_catalog.pg_describe_object(m.classid, m.objid, 0)) from members m
    union all
    select format('dumped %s', x::regclass) from ext, unnest(ext.extconfig) x
    union all
    select format('extension identity version=%s', e.extversion) from pg_catalog.pg_extension e where e.extname = 'identity'
) lines
order by line;
