\i pg_test/fixtures.sql
-- Every function of the extension, with every bad input cast to each of its
-- parameter types: NULL, '', 1 MB, invalid uuid text, control characters,
-- wrong JSON shapes, JSON nested 300 levels deep, token look-alikes. Each call ends in NULL, a value, or a
-- documented SQLSTATE (22xxx bad argument, 28000, 42501, P0002, 23505, 55000; 42P01 for link_supabase_auth where auth.users is missing);
-- never an internal error, and the postmaster never restarts. All inside a
-- transaction that is rolled back.
select pg_postmaster_start_time() as started \gset
begin;
create temp table inputs (label text, v text);
insert into inputs values
  ('null', null), ('empty', ''), ('1 MB', repeat('a', 1048576)), ('bad uuid', 'not-a-uuid'),
  ('control chars', E'\x01\x02\x7f'), ('json fragment', '{"a":'), ('json array', '[1,2]'),
  ('json string', '"str"'), ('json null', 'null'), ('json object', '{}'), ('jwt-ish', 'a.b.c'),
  ('token-ish', 'idt_' || repeat('0', 36)), ('unicode', 'é€😀'),
  ('deep json', repeat('[', 300) || repeat(']', 300)),
  ('deep object', repeat('{"a":', 300) || '1' || repeat('}', 300));
create temp table results (fn text, label text, state text);
do $$
declare
  f record; i record; args text; state text; argtypes oid[];
begin
  for f in
    select p.oid, p.oid::regprocedure::text as sig, p.proargtypes
    from pg_proc p
    where p.pronamespace = 'identity'::regnamespace and p.prokind = 'f'
      and p.prorettype <> 'trigger'::regtype
      -- A planner support function (internal in, internal out) is called by
      -- the planner only; SQL cannot call it at all.
      and p.prorettype <> 'internal'::regtype
    order by 2
  loop
    argtypes := f.proargtypes::oid[];
    for i in select * from inputs loop
      select string_agg(case when i.v is null then 'NULL' else quote_literal(i.v) end || '::' || format_type(t, null), ', ')
        into args from unnest(argtypes) t;
      -- Each call in a subtransaction rolled back after it (T0001), so
      -- no call's effects (a failed identity.authenticate pins nobody for
      -- its transaction) reach the next.
      begin
        execute format('select %s(%s)', f.oid::regproc, coalesce(args, ''));
        state := 'ok';
        raise sqlstate 'T0001';
      exception when sqlstate 'T0001' then
        null;
      when others then
        state := sqlstate;
      end;
      insert into results values (f.sig, i.label, state);
    end loop;
  end loop;
end $$;
-- Per function, the outcomes seen (ok = NULL or a value).
select fn, string_agg(distinct state, ' ' order by state) as outcomes from results group by fn order by fn;
-- Nothing outside the documented set.
select fn, label, state from results
where state not in ('ok', '22023', '22P02', '22007', '22008', '22015', '22021', '22001', '28000', '42501', 'P0002', '23505', '55000')
  -- link_supabase_auth on a database without auth.users.
  and not (fn = 'identity.link_supabase_auth()' and state = '42P01')
order by 1, 2;
rollback;
select pg_postmaster_start_time() = :'started' as postmaster_never_restarted;
