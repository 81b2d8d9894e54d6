-- src/api/admin.rs: verify_audit_log. Every row, recomputed: its own hash,
-- and its link to the previous row of its chain (that row exists, is of the
-- same chain, and has the hash this row recorded; no two rows claim the same
-- predecessor; only a chain's first row has none); then every chain's tip
-- names the last row and its hash (a deleted last row breaks that). The
-- first bad id is the smallest id that fails (for a broken tip: the id the
-- tip names). Rows not chained yet are counted as pending (verify_audit_log
-- chains every committed one first, so those are only rows committed since).
with rows as (
    select a.id, a.organization_id, a.prev_id, a.prev_hash, a.row_hash,
           a.row_hash is not distinct from identity.audit_log_hash(a) as self_ok
    from identity.audit_log a
    where a.row_hash is not null
), checked as (
    select r.id,
           not r.self_ok
           or (r.prev_id is null) <> (r.prev_hash is null)
           or (r.prev_id is not null and (p.id is null
                                          or p.row_hash is distinct from r.prev_hash
                                          or p.organization_id is distinct from r.organization_id))
           or pg_catalog.count(*) over (partition by r.organization_id, r.prev_id) > 1 as bad
    from rows r left join identity.audit_log p on p.id = r.prev_id
), tips as (
    select t.last_id as id
    from identity.audit_chain_tips t left join identity.audit_log a on a.id = t.last_id
    where a.id is null or a.row_hash is distinct from t.last_hash
       or coalesce(a.organization_id::text, '') <> t.chain
)
select pg_catalog.jsonb_build_object(
    'valid', (select pg_catalog.count(*) from checked where bad) = 0 and not exists (select from tips),
    'rows_checked', (select pg_catalog.count(*) from checked),
    'rows_pending', (select pg_catalog.count(*) from identity.audit_log where row_hash is null),
    'first_bad_id', (select pg_catalog.min(id) from (select id from checked where bad
                                                       union all select id from tips) b))
