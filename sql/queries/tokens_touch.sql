-- src/api/tokens.rs: touch
update identity.api_tokens set last_used_at = pg_catalog.now()
    where id operator(pg_catalog.=) (
    select id from identity.api_tokens
    where id operator(pg_catalog.=) $1
    and (last_used_at is null
    or last_used_at operator(pg_catalog.<)
    (pg_catalog.now() operator(pg_catalog.-) pg_catalog.make_interval(mins => 1)))
    for update skip locked)
